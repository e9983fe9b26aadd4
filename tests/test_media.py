"""models.io.media (PyAV read/write) and models.io.decode_pool (crash-isolated decoding), on real files."""
from __future__ import annotations

import os
import pickle
import signal
import time
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from models.io.decode_pool import ClipSkippedWarning, SkipReport, decode_many
from models.io.media import (
    AvFileWriter,
    MediaDecodeError,
    MediaInfo,
    probe,
    read_audio,
    read_video_frames,
    write_av_file,
)

FPS = 30
SR = 48_000
W, H = 64, 48
N_FRAMES = 60  # 2 s
TONE_HZ = 1000.0
AAC_FRAME = 1024


def _levels(n: int, offset: int = 0) -> np.ndarray:
    """A brightness per frame, in a scrambled order (so order errors show)."""
    return np.array([40 + ((k + offset) * 53) % 170 for k in range(n)], dtype=np.float64)


def _gray_frames(levels) -> list[np.ndarray]:
    return [np.full((H, W, 3), int(v), np.uint8) for v in levels]


def _tone(n: int, hz: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(n) / sr)).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


@pytest.fixture(scope="module")
def av_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    write_av_file(path, _gray_frames(_levels(N_FRAMES)), _tone(N_FRAMES * SR // FPS, TONE_HZ), FPS, SR)
    return path


# ---------------------------------------------------------------------------------------------
# media


def test_probe(av_clip):
    info = probe(av_clip)
    assert isinstance(info, MediaInfo)
    assert info.has_audio and info.has_video
    assert (info.width, info.height, info.sample_rate, info.n_channels) == (W, H, SR, 1)
    assert info.fps == pytest.approx(FPS)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.video_codec in ("h264", "mpeg4") and info.audio_codec == "aac"
    with pytest.raises(Exception):
        info.duration = 3.0  # frozen


def test_video_frames_timestamps_and_order(av_clip):
    frames, ts = read_video_frames(av_clip)
    assert frames.shape == (N_FRAMES, H, W, 3) and frames.dtype == np.uint8
    assert ts.shape == (N_FRAMES,)
    np.testing.assert_allclose(ts, np.arange(N_FRAMES) / FPS, atol=1e-3)
    brightness = frames.reshape(N_FRAMES, -1).mean(axis=1)
    np.testing.assert_allclose(brightness, _levels(N_FRAMES), atol=4)
    assert np.array_equal(np.argsort(brightness, kind="stable"), np.argsort(_levels(N_FRAMES), kind="stable"))


def test_video_window_and_max_frames(av_clip):
    frames, ts = read_video_frames(av_clip, start=0.5, stop=1.0)
    np.testing.assert_allclose(ts * FPS, np.arange(15, 30), atol=0.03)
    np.testing.assert_allclose(frames.reshape(len(frames), -1).mean(1), _levels(N_FRAMES)[15:30], atol=4)
    small, ts5 = read_video_frames(av_clip, max_frames=5, size=(32, 24))
    assert small.shape == (5, 24, 32, 3) and len(ts5) == 5


def test_audio_length_and_tone(av_clip):
    audio, sr = read_audio(av_clip)
    n_in = N_FRAMES * SR // FPS
    assert sr == SR and audio.dtype == np.float32 and audio.ndim == 1
    assert n_in <= len(audio) <= n_in + 2 * AAC_FRAME  # one codec frame + priming at most
    assert _peak_hz(audio, sr) == pytest.approx(TONE_HZ, abs=2)
    rms = float(np.sqrt(np.mean(audio[2048:-2048] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_audio_resample_16k(av_clip):
    full, _ = read_audio(av_clip)
    audio, sr = read_audio(av_clip, sample_rate=16_000)
    assert sr == 16_000 and audio.dtype == np.float32
    assert abs(len(audio) - len(full) / 3) <= 1
    assert _peak_hz(audio, sr) == pytest.approx(TONE_HZ, abs=2)


def test_audio_window_is_the_same_samples(av_clip):
    full, _ = read_audio(av_clip)
    win, sr = read_audio(av_clip, start=0.5, stop=1.5)
    assert len(win) == SR
    np.testing.assert_allclose(win[AAC_FRAME:], full[SR // 2 + AAC_FRAME: SR // 2 + SR], atol=2e-3)


def test_stereo_mono_downmix(tmp_path):
    n = SR // 2
    stereo = np.stack([_tone(n, 500), _tone(n, 1500)], axis=1)
    path = write_av_file(tmp_path / "st.m4a", None, stereo, None, SR)
    info = probe(path)
    assert info.n_channels == 2 and not info.has_video
    both, _ = read_audio(path, mono=False)
    assert both.shape[1] == 2
    assert _peak_hz(both[:, 0], SR) == pytest.approx(500, abs=4)
    assert _peak_hz(both[:, 1], SR) == pytest.approx(1500, abs=4)
    mono, _ = read_audio(path)
    np.testing.assert_allclose(mono, both.mean(axis=1), atol=1e-6)


def test_writer_odd_chunks_interleaved(tmp_path):
    fps, sr, n_frames = 25, 44_100, 50  # 2 s; 44100 is no multiple of the AAC frame
    n_audio = 2 * sr
    audio = np.concatenate([_tone(sr, 500, sr), _tone(sr, 1500, sr)])  # 500 Hz then 1500 Hz
    rng = np.random.default_rng(7)
    path = tmp_path / "live.mp4"
    levels = _levels(n_frames, offset=3)
    with AvFileWriter(path, fps, sr, W, H) as w:
        a_pos, k = 0, 0
        while a_pos < n_audio or k < n_frames:
            if k < n_frames and (a_pos >= n_audio or rng.random() < 0.4):
                w.write_frame(np.full((H, W, 3), int(levels[k]), np.uint8))
                k += 1
            else:
                size = int(rng.choice([1, 7, 333, 1023, 1025, 4097]))
                w.write_audio(audio[a_pos:a_pos + size])
                a_pos += size
            assert not path.exists()  # atomic: nothing at the final path until close
        w.write_audio(np.zeros(0, np.float32))
    assert w.frames_written == n_frames and w.samples_written == n_audio
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp file gone
    back, got_sr = read_audio(path)
    assert got_sr == sr and n_audio <= len(back) <= n_audio + 2 * AAC_FRAME
    assert _peak_hz(back[:sr], sr) == pytest.approx(500, abs=3)
    assert _peak_hz(back[sr:2 * sr], sr) == pytest.approx(1500, abs=3)
    frames, ts = read_video_frames(path)
    assert len(frames) == n_frames
    np.testing.assert_allclose(ts, np.arange(n_frames) / fps, atol=1e-3)
    np.testing.assert_allclose(frames.reshape(n_frames, -1).mean(1), levels, atol=4)


def test_writer_timed_frames_and_mpeg4(tmp_path):
    path = tmp_path / "timed.avi"
    with AvFileWriter(path, Fraction(30), None, W, H, video_codec="mpeg4") as w:
        for t in (0.0, 0.034, 0.05, 0.2):  # 0.05 rounds onto slot 1 -> pushed to slot 2
            w.write_frame(np.zeros((H, W, 3), np.uint8), t=t)
    _, ts = read_video_frames(path)
    np.testing.assert_allclose(ts * 30, [0, 1, 2, 6], atol=0.01)
    assert probe(path).video_codec == "mpeg4"


def test_writer_atomic_on_error(tmp_path):
    path = tmp_path / "keep.mp4"
    path.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="boom"):
        with AvFileWriter(path, FPS, SR, W, H) as w:
            w.write_frame(np.zeros((H, W, 3), np.uint8))
            w.write_audio(np.zeros(5000, np.float32))
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="even"):
        AvFileWriter(tmp_path / "odd.mp4", FPS, None, 63, 48)
    with pytest.raises(ValueError, match="encoder"):
        AvFileWriter(tmp_path / "x.mp4", FPS, None, W, H, video_codec="no_such_codec")
    with AvFileWriter(tmp_path / "y.mp4", FPS, SR, W, H) as w:
        with pytest.raises(ValueError, match="shape"):
            w.write_frame(np.zeros((H + 2, W, 3), np.uint8))
        with pytest.raises(TypeError, match="uint8"):
            w.write_frame(np.zeros((H, W, 3), np.float32))
        with pytest.raises(ValueError, match="channel"):
            w.write_audio(np.zeros((10, 2), np.float32))
        w.write_frame(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="no frames and no audio"):
        write_av_file(tmp_path / "z.mp4", [], None, FPS, SR)
    assert not (tmp_path / "z.mp4").exists()


def test_read_errors(tmp_path, av_clip):
    missing = tmp_path / "nope.mp4"
    for reader in (probe, read_audio, read_video_frames):
        with pytest.raises(FileNotFoundError, match="nope.mp4"):
            reader(missing)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(20_000))
    for reader in (probe, read_audio, read_video_frames):
        with pytest.raises(MediaDecodeError) as ei:
            reader(junk)
        assert ei.value.path == str(junk) and ei.value.reason
    err = pickle.loads(pickle.dumps(ei.value))
    assert (err.path, err.reason) == (ei.value.path, ei.value.reason)
    audio_only = write_av_file(tmp_path / "a.m4a", None, _tone(SR // 4, 440), None, SR)
    with pytest.raises(MediaDecodeError, match="no video stream"):
        read_video_frames(audio_only)


# ---------------------------------------------------------------------------------------------
# decode_pool; the worker function must be importable in a fresh (spawned) process


def _decode_or_misbehave(path):
    """Decode a clip, or simulate a decoder that crashes or hangs on particular names."""
    name = os.path.basename(os.fspath(path))
    if name.startswith("abort"):
        os.abort()  # SIGABRT, like an FFmpeg assertion
    if name.startswith("segv"):
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(5)
    if name.startswith("exit139"):
        os._exit(139)
    if name.startswith("hang"):
        time.sleep(60)
    frames, _ = read_video_frames(path)
    audio, sr = read_audio(path, sample_rate=16_000)
    return len(frames), float(frames.mean()), len(audio)


def test_decode_many_contains_failures(tmp_path, av_clip):
    good = []
    for i, level in enumerate((60, 120, 200)):
        p = tmp_path / f"good{i}.mp4"
        write_av_file(p, _gray_frames([level] * 10), _tone(SR // 3, 440), FPS, SR)
        good.append((p, level))
    data = Path(av_clip).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "random.mp4"
    junk.write_bytes(np.random.default_rng(1).bytes(30_000))
    missing = tmp_path / "missing.mp4"
    crash_files = {}
    for stem in ("abort", "segv", "exit139", "hang"):
        p = tmp_path / f"{stem}.mp4"
        p.write_bytes(data)  # a valid file: only the (simulated) decoder misbehaves
        crash_files[stem] = p
    paths = [good[0][0], truncated, crash_files["abort"], junk, crash_files["hang"], good[1][0], missing,
             crash_files["segv"], crash_files["exit139"], good[2][0]]

    report = SkipReport()
    t0 = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = list(decode_many(paths, _decode_or_misbehave, workers=2, timeout_s=3.0, report=report))
    elapsed = time.monotonic() - t0

    assert [p for p, _ in out] == [g for g, _ in good]  # input order, the same path objects
    for (p, res), (_, level) in zip(out, good):
        n_frames, mean, n_audio = res
        assert n_frames == 10 and abs(mean - level) < 3  # each result belongs to its own clip
        assert abs(n_audio - 16_000 // 3) <= 2 * AAC_FRAME // 3
    assert report.count == 7 and report.n_ok == 3
    assert set(report.paths) == set(paths) - {g for g, _ in good}
    reasons = {Path(p).name: r for p, r in report.skipped}
    assert reasons["truncated.mp4"].startswith("error: MediaDecodeError")
    assert reasons["random.mp4"].startswith("error: MediaDecodeError")
    assert reasons["missing.mp4"].startswith("error: FileNotFoundError")
    assert reasons["abort.mp4"] == "crash: worker killed by SIGABRT"
    assert reasons["segv.mp4"] == "crash: worker killed by SIGSEGV"
    assert reasons["exit139.mp4"] == "crash: worker exited with code 139"
    assert reasons["hang.mp4"].startswith("timeout:")
    summary = report.summary()
    assert summary.splitlines()[0] == "skipped 7 of 10 clips:"
    for p in report.paths:
        assert str(p) in summary
    skip_warnings = [w for w in caught if issubclass(w.category, ClipSkippedWarning)]
    assert len(skip_warnings) == 7
    assert elapsed < 40


def test_decode_many_rejects_unpicklable_fn():
    with pytest.raises(TypeError, match="picklable"):
        decode_many(["a.mp4"], lambda p: p)
    assert SkipReport().summary() == "no clips skipped (0 decoded)"
