"""Sources: the world, a generated mp4 through PyAV, a fake camera through OpenCV, device specs."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import soxr

from models.io.media import MediaDecodeError, write_av_file
from models.world import BENCH, TINY, Scene
from realtime.capture import Capture
from realtime.devices import DeviceNotFound, list_devices, resolve_camera, resolve_input_device
from realtime.rings import AudioRing, FrameRing
from realtime.sources import (
    CameraSource,
    EndOfStream,
    FileSource,
    MicSource,
    SourceTimeout,
    SyntheticSource,
    make_source,
)

from conftest import PORTAUDIO, require_system

SEED = 200_003
CLIP_SECONDS = 3
FILE_RATE = 48_000  # the file's audio rate; sources resample to 16 kHz
RATE = 16_000


@pytest.fixture(scope="module")
def world_mp4(tmp_path_factory):
    """3 s of a bench scene: H.264 (or mpeg4) video at 30 fps, AAC audio at 48 kHz."""
    scene = Scene(BENCH, SEED)
    audio = scene.render_audio(0, CLIP_SECONDS * FILE_RATE, FILE_RATE)
    n_frames = CLIP_SECONDS * BENCH.fps
    path = tmp_path_factory.mktemp("media") / "world.mp4"
    write_av_file(path, (scene.render_frame(k)[0] for k in range(n_frames)), audio, BENCH.fps, FILE_RATE)
    return path, scene, audio


def _read_all(source):
    chunks = []
    with source:
        while True:
            try:
                c = source.read()
            except EndOfStream:
                return chunks
            chunks.append((None if c.audio is None else c.audio.copy(), c.audio_start,
                           None if c.frame is None else c.frame.copy(), c.frame_time, c.frame_index))


# ----------------------------------------------------------------------------------- synthetic
def test_synthetic_source_is_the_world_bit_for_bit():
    src = SyntheticSource(SEED, "tiny", RATE, seconds=1.0)
    assert (src.name, src.sample_rate, src.fps, src.frame_size) == (f"synthetic:{SEED}", RATE, 15.0, (96, 96))
    assert src.has_audio and src.has_video and not src.live
    chunks = _read_all(src)
    assert len(chunks) == 15
    starts = [c[1] for c in chunks]
    ends = [c[1] + len(c[0]) for c in chunks]
    assert starts[0] == 0 and starts[1:] == ends[:-1]  # contiguous
    scene = Scene(TINY, SEED)
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), scene.render_audio(0, RATE, RATE))
    for audio, _, frame, t, k in chunks:
        assert t == k / 15
        np.testing.assert_array_equal(frame, scene.render_frame(k)[0])


def test_synthetic_source_audio_only_and_video_only():
    a = SyntheticSource(1, "tiny", 8000, video=False)
    assert a.has_audio and not a.has_video and a.frame_size is None
    with a:
        c = a.read()
    assert c.frame is None and c.audio.shape == (8000 // 15,)
    v = SyntheticSource(1, "tiny", video=True, audio=False)
    assert v.has_video and not v.has_audio
    with v:
        c = v.read()
    assert c.audio is None and c.frame.shape == (96, 96, 3)
    with pytest.raises(ValueError, match="neither"):
        SyntheticSource(1, audio=False, video=False)
    with pytest.raises(ValueError, match="unknown world preset"):
        SyntheticSource(1, "nope")


# ----------------------------------------------------------------------------------------- file
def test_file_source_mp4_through_capture(world_mp4):
    path, scene, audio48 = world_mp4
    src = FileSource(path, RATE)
    assert (src.name, src.sample_rate, src.fps, src.frame_size) == ("world.mp4", RATE, 30.0, (224, 224))
    audio_ring = AudioRing(10 * RATE, RATE)
    frame_ring = FrameRing(CLIP_SECONDS * 30 + 10, 224, 224)
    with Capture(src, src, audio_ring, frame_ring, realtime=False) as cap:
        assert cap.wait(timeout=30)
    stats = cap.stats()
    # audio: as long as the source (AAC padding dropped), same content within AAC's error
    n = audio_ring.total_written
    assert abs(n - CLIP_SECONDS * RATE) <= 1024 // 3
    got = np.empty(n, np.float32)
    assert audio_ring.read(n, n, got)
    ref = soxr.resample(audio48, FILE_RATE, RATE)
    m = min(n, len(ref))
    xc = [float(np.dot(got[2000 : m - 2000], ref[2000 + lag : m - 2000 + lag])) for lag in range(-20, 21)]
    assert int(np.argmax(xc)) - 20 == 0  # aligned: no delay from decoding or resampling
    assert np.corrcoef(got[:m], ref[:m])[0, 1] > 0.99
    assert np.sqrt(np.mean((got[:m] - ref[:m]) ** 2)) < 0.1 * np.sqrt(np.mean(ref**2))
    # frames: exact k / fps times, the world's pictures within the codec's error
    assert stats.frames_captured == frame_ring.frames_written == CLIP_SECONDS * 30
    out = np.empty((224, 224, 3), np.uint8)
    for k in (0, 1, 45, 89):
        t, index = frame_ring.nearest(k / 30, out)
        assert (index, t) == (k, pytest.approx(k / 30, abs=1e-9))
        assert np.abs(out.astype(np.int16) - scene.render_frame(k)[0]).mean() < 6
    assert stats.audio_overwrites == 0 and stats.gap_samples == 0 and stats.errors == ()
    assert src.bad_packets == 0


def test_file_source_audio_only_and_resized_video(world_mp4):
    path, _, _ = world_mp4
    a = FileSource(path, 8000, video=False)
    assert a.has_audio and not a.has_video
    chunks = _read_all(a)
    assert all(c[2] is None for c in chunks)
    assert abs(sum(len(c[0]) for c in chunks) - CLIP_SECONDS * 8000) <= 1024 // 6
    v = FileSource(path, size=(112, 64), audio=False)
    assert v.frame_size == (112, 64) and not v.has_audio
    frames = [c for c in _read_all(v) if c[2] is not None]
    assert len(frames) == CLIP_SECONDS * 30 and frames[0][2].shape == (64, 112, 3)


def test_file_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such media file"):
        FileSource(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(MediaDecodeError, match="junk.mp4"):
        FileSource(junk)
    audio_only = write_av_file(tmp_path / "a.m4a", None, np.zeros(16000, np.float32), None, 16000)
    with pytest.raises(ValueError, match="no video stream"):
        FileSource(audio_only, audio=False)


# --------------------------------------------------------------------------------------- camera
def test_camera_source_reads_a_video_file_as_a_fake_camera(world_mp4):
    path, scene, _ = world_mp4
    cam = CameraSource(str(path), timeout=5.0)
    frames = _read_all(cam)
    assert not cam.live and cam.clock == "stream" and cam.fps == 30.0 and cam.frame_size == (224, 224)
    assert len(frames) == CLIP_SECONDS * 30
    times = np.array([f[3] for f in frames])
    np.testing.assert_allclose(times, np.arange(len(frames)) / 30, atol=1e-3)  # CAP_PROP_POS_MSEC
    for k in (0, 50):
        rgb = frames[k][2]
        ref = scene.render_frame(k)[0].astype(np.int16)
        assert np.abs(rgb - ref).mean() < 6  # RGB order: BGR would be far off on coloured objects
        assert np.abs(rgb[..., ::-1] - ref).mean() > np.abs(rgb - ref).mean() + 1
    small = _read_all(CameraSource(str(path), size=(112, 96)))
    assert small[0][2].shape == (96, 112, 3) and len(small) == len(frames)


def test_camera_source_through_capture_has_stream_timestamps(world_mp4):
    path, _, _ = world_mp4
    ring = FrameRing(8, 120, 160)
    cam = CameraSource(str(path), size=(160, 120))
    with Capture(None, cam, None, ring, realtime=False, av_offset_ms=-40) as cap:
        assert cap.wait(timeout=30)
    assert cap.stats().frames_captured == CLIP_SECONDS * 30 - 2  # frames 0 and 1 fall before 0 s
    assert cap.stats().frames_dropped == 2
    out = np.empty((120, 160, 3), np.uint8)
    t, k = ring.latest(out)
    assert t == pytest.approx(89 / 30 - 0.040, abs=1e-3)


def _missing_camera_index() -> int:
    import glob

    nodes = [int(p[len("/dev/video"):]) for p in glob.glob("/dev/video*") if p[len("/dev/video"):].isdigit()]
    return max(nodes, default=-1) + 1 + 40


def test_missing_camera_raises_device_not_found_listing_cameras():
    index = _missing_camera_index()
    with pytest.raises(DeviceNotFound, match=rf"No camera at index {index}; cameras: ") as e:
        CameraSource(index).open()
    assert isinstance(e.value, ValueError)
    with pytest.raises(DeviceNotFound, match="No camera, file or stream '/no/such/clip.mp4'.*cameras: "):
        resolve_camera("/no/such/clip.mp4")
    assert resolve_camera("rtsp://host/stream").kind == "stream"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_camera_read_timeout_on_a_stalled_stream(tmp_path):
    """A FIFO fed with a clip's bytes, then left open and silent: frames, then a clear timeout."""
    scene = Scene(TINY, 5)
    clip = write_av_file(tmp_path / "cam.nut", (scene.render_frame(k)[0] for k in range(30)), None, 15, None, video_codec="mpeg4")
    data = clip.read_bytes()
    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)
    release = threading.Event()

    def feed():  # plays a live stream that stalls
        fd = os.open(fifo, os.O_WRONLY)
        try:
            os.write(fd, data)
            release.wait(30)
        finally:
            os.close(fd)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    cam = CameraSource(str(fifo), timeout=5.0)
    try:
        cam.open()
        assert cam.live and cam.clock == "monotonic" and cam.frame_size == (96, 96)
        n = 0
        with pytest.raises(SourceTimeout, match=r"cam.fifo' delivered no frame in 0.5 s"):
            while n < 1000:
                chunk = cam.read(timeout=0.5)
                assert chunk.frame.shape == (96, 96, 3)
                n += 1
        assert n >= 1
        t = time.monotonic()
        with pytest.raises(SourceTimeout):
            cam.read(timeout=0.3)
        assert 0.25 < time.monotonic() - t < 2.0
    finally:
        release.set()
        cam.close()
        feeder.join(5)


# -------------------------------------------------------------------------------------- devices
def test_unknown_microphone_lists_the_input_devices():
    require_system(PORTAUDIO)
    with pytest.raises(DeviceNotFound, match=r"No input device matching 'no-such-mic-xyz'; input devices: "):
        resolve_input_device("no-such-mic-xyz")
    with pytest.raises(DeviceNotFound, match=r"No input device with index 977; input devices: "):
        MicSource(977).open()
    text = str(list_devices())
    assert "Microphones (--mic default|INDEX|NAME):" in text and "Cameras (--camera INDEX|PATH|URL):" in text


def test_make_source_dispatches_on_the_uri(world_mp4):
    path, _, _ = world_mp4
    s = make_source("synthetic:42:tiny", sample_rate=8000)
    assert isinstance(s, SyntheticSource) and s.name == "synthetic:42" and s.sample_rate == 8000
    assert isinstance(make_source(str(path)), FileSource)
    assert isinstance(make_source("mic:default"), MicSource)
    assert isinstance(make_source("camera:0"), CameraSource)
    with pytest.raises(ValueError, match="synthetic:SEED"):
        make_source("synthetic:abc")
    with pytest.raises(ValueError, match="(?s)unrecognised source .nothing-here..*mic:default"):
        make_source("nothing-here")
