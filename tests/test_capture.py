"""Capture: the world and a virtual PulseAudio microphone, through real threads and rings."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soxr
from pulse_fixture import write_wav_int16
from scipy import signal

from models.world import BENCH, TINY, Scene
from realtime.capture import Capture
from realtime.rings import AudioRing, FrameRing
from realtime.sources import FileSource, MicSource, SyntheticSource

RATE = 16_000
SEED = 200_001


def test_synthetic_world_through_capture_is_bit_exact():
    """30 s of the bench world as fast as it renders: the ring holds Scene.render_audio of the
    same span bit for bit, frames are render_frame(k) at k / fps, nothing lost."""
    seconds = 30.0
    n = int(seconds * RATE)
    src = SyntheticSource(SEED, "bench", RATE)
    audio_ring = AudioRing(n + RATE, RATE)
    frame_ring = FrameRing(16, BENCH.frame_height, BENCH.frame_width)
    seen = []  # (index, time, frame) a concurrent newest-wins reader got
    stop = threading.Event()

    def consumer():
        out = np.empty(frame_ring.shape, np.uint8)
        last = -1
        while not stop.is_set():
            r = frame_ring.latest(out, after=last)
            if r is None:
                time.sleep(0.01)
                continue
            t, last = r
            if len(seen) < 40:
                seen.append((last, t, out.copy()))
            time.sleep(0.05)

    reader = threading.Thread(target=consumer)
    reader.start()
    try:
        with Capture(src, src, audio_ring, frame_ring, realtime=False, duration=seconds) as cap:
            assert cap.wait(timeout=80)
    finally:
        stop.set()
        reader.join()
    stats = cap.stats()
    assert stats.samples_captured == audio_ring.total_written == n
    assert stats.audio_time == seconds
    assert stats.audio_overwrites == 0 and stats.gap_samples == 0 and stats.errors == ()
    scene = Scene(BENCH, SEED)
    got = np.empty(n, np.float32)
    assert audio_ring.read(n, n, got)
    np.testing.assert_array_equal(got, scene.render_audio(0, n, RATE))
    # a window anywhere in the stream, addressed by its end index, is the same span
    win = np.empty(RATE, np.float32)
    assert audio_ring.read(12_345 + RATE, RATE, win)
    np.testing.assert_array_equal(win, scene.render_audio(12_345, RATE, RATE))

    assert stats.frames_captured == frame_ring.frames_written == int(seconds * BENCH.fps)
    assert stats.frames_dropped == 0
    assert len(seen) >= 2 and [k for k, _, _ in seen] == sorted({k for k, _, _ in seen})
    out = np.empty(frame_ring.shape, np.uint8)
    held = [frame_ring.nearest(k / BENCH.fps, out) for k in range(int(seconds * BENCH.fps) - 16, int(seconds * BENCH.fps))]
    checks = seen[:8] + seen[-4:]
    for k in range(int(seconds * BENCH.fps) - 16, int(seconds * BENCH.fps), 5):
        t, index = frame_ring.nearest(k / BENCH.fps, out)
        checks.append((index, t, out.copy()))
    assert [h[1] for h in held] == list(range(int(seconds * BENCH.fps) - 16, int(seconds * BENCH.fps)))
    for k, t, frame in checks:
        assert t == k / BENCH.fps
        np.testing.assert_array_equal(frame, scene.render_frame(k)[0])


def test_realtime_pacing_follows_the_stream_clock():
    """Paced on time.monotonic() against the start: 1 s of stream takes 1 s, and a reader that
    keeps up sees the newest samples arrive on time."""
    src = SyntheticSource(SEED, "tiny", RATE)
    audio_ring = AudioRing(2 * RATE, RATE)
    frame_ring = FrameRing(4, TINY.frame_height, TINY.frame_width)
    lags = []
    with Capture(src, src, audio_ring, frame_ring, realtime=True, duration=1.0) as cap:
        t0 = cap.start_time
        while cap.running:
            lags.append((time.monotonic() - t0) - audio_ring.time)
            time.sleep(0.05)
        cap.wait(timeout=5)
        elapsed = time.monotonic() - t0
    assert audio_ring.total_written == RATE and frame_ring.frames_written == TINY.fps
    assert 0.95 < elapsed < 2.0
    assert min(lags) > -0.01  # never ahead of the wall clock
    assert np.median(lags) < 0.2  # and not falling behind


def test_audio_only_and_video_only_captures():
    src = SyntheticSource(3, "tiny", RATE)
    ring = AudioRing(RATE, RATE)
    with Capture(src, None, ring, None, realtime=False, duration=0.5) as cap:
        cap.wait(timeout=10)
    assert ring.total_written == RATE // 2 and cap.stats().frames_captured == 0

    src = SyntheticSource(3, "tiny", RATE)
    frames = FrameRing(4, 96, 96)
    with Capture(None, src, None, frames, realtime=False, duration=0.5, av_offset_ms=10) as cap:
        cap.wait(timeout=10)
    assert frames.frames_written == 8 and cap.stats().samples_captured == 0
    out = np.empty((96, 96, 3), np.uint8)
    assert frames.latest(out) == (pytest.approx(7 / 15 + 0.010), 7)


def test_two_sources_two_threads(tmp_path):
    """Audio from one source, video from another: one thread each, one clock."""
    from models.io.media import write_av_file

    scene = Scene(TINY, 9)
    clip = write_av_file(tmp_path / "v.mp4", (scene.render_frame(k)[0] for k in range(15)), None, 15, None)
    audio = SyntheticSource(9, "tiny", RATE, video=False)
    video = FileSource(clip, audio=False)
    ring, frames = AudioRing(RATE, RATE), FrameRing(20, 96, 96)
    cap = Capture(audio, video, ring, frames, realtime=False, duration=0.9)
    assert cap.thread_names == ("capture:synthetic:9", "capture:v.mp4")
    cap.start()
    cap.wait(timeout=10)
    assert ring.total_written == int(0.9 * RATE) and frames.frames_written == 14  # 0 .. 13/15 s
    assert not video.is_open and not audio.is_open  # each thread closed its source


def test_configuration_errors_raise_from_start(tmp_path):
    src = SyntheticSource(1, "tiny", 8000)
    with pytest.raises(ValueError, match="delivers 8000 Hz, the audio ring holds 16000 Hz"):
        Capture(src, None, AudioRing(RATE, RATE)).start()
    assert not src.is_open
    src = SyntheticSource(1, "tiny", RATE)
    with pytest.raises(ValueError, match=r"delivers 96x96 frames.*size=\(224, 224\)"):
        Capture(None, src, None, FrameRing(4, 224, 224)).start()
    with pytest.raises(ValueError, match="needs an audio_ring"):
        Capture(src, None)
    video_only = SyntheticSource(1, "tiny", audio=False)
    with pytest.raises(ValueError, match="has no audio"):
        Capture(video_only, None, AudioRing(RATE, RATE)).start()


def test_stop_is_prompt_and_clean():
    src = SyntheticSource(4, "tiny", RATE)
    ring = AudioRing(10 * RATE, RATE)
    cap = Capture(src, src, ring, FrameRing(4, 96, 96), realtime=True).start()
    time.sleep(0.3)
    t = time.monotonic()
    cap.stop()
    assert time.monotonic() - t < 1.0
    assert not cap.running and cap.finished and not src.is_open
    assert 0.1 * RATE < ring.total_written < 1.0 * RATE
    cap.check()  # no error


def test_virtual_microphone_capture_matches_what_was_played(pulse_mic, tmp_path):
    """≥ 30 s of world audio played into a private PulseAudio null sink comes back through
    PortAudio, MicSource (48 kHz device → soxr stream → 16 kHz) and Capture, sample for sample
    up to the resampler's rounding. Runs in real time (the null sink is clocked)."""
    world = Scene(BENCH, SEED).render_audio(0, 30 * pulse_mic.rate, pulse_mic.rate)
    lead, tail = int(0.5 * pulse_mic.rate), int(1.5 * pulse_mic.rate)
    played = write_wav_int16(tmp_path / "clip.wav", np.concatenate([np.zeros(lead), world / max(1.0, np.abs(world).max()), np.zeros(tail)]), pulse_mic.rate)

    mic = MicSource(pulse_mic.device, RATE, device_rate=pulse_mic.rate, channels=1)
    capture_seconds = 31.0  # ends inside the trailing silence, before the sink goes idle
    ring = AudioRing(int(40 * RATE), RATE)
    cap = Capture(mic, None, ring, None, duration=capture_seconds, read_timeout=10.0)
    cap.start()
    player = pulse_mic.play(tmp_path / "clip.wav")
    try:
        assert cap.wait(timeout=60)
    finally:
        cap.stop()
        player.wait(timeout=30)
    stats = cap.stats()
    assert mic.device_rate == pulse_mic.rate and mic.device.name == "pulse"
    n = ring.total_written
    assert stats.samples_captured == n == int(capture_seconds * RATE)
    assert stats.gap_samples == 0 and stats.source_overflows == 0 and stats.audio_overwrites == 0
    assert 0 < stats.resampler_latency < 0.05
    rec = np.empty(n, np.float32)
    assert ring.read(n, n, rec)

    # The recording starts when the stream does: find the lag, at each of the 3 phases a 48 kHz
    # delay can have against 16 kHz, by full cross-correlation.
    best = None
    for phase in range(3):
        ref = soxr.resample(played[phase:], pulse_mic.rate, RATE)
        xc = signal.correlate(rec, ref, mode="full", method="fft")
        lag = int(signal.correlation_lags(len(rec), len(ref), mode="full")[np.argmax(xc)])
        a, b = rec[max(lag, 0):], ref[max(-lag, 0):]
        m = min(len(a), len(b))
        a, b = a[RATE // 10 : m], b[RATE // 10 : m]  # skip the resampler's start-up transient
        corr = float(np.corrcoef(a, b)[0, 1])
        if best is None or corr > best[0]:
            best = (corr, lag, a, b)
    corr, lag, a, b = best
    print(f"mic: lag {lag} samples, corr {corr:.7f}, max|diff| {np.abs(a - b).max():.2e}, resampler latency {stats.resampler_latency * 1e3:.2f} ms")
    # rec[i] = ref[i - lag]: the recording spans ref[-lag, n - lag); the world sits in
    # ref[lead / 3, (lead + len(world)) / 3)
    covered = min(n - lag, (lead + len(world)) // 3) - max(-lag, lead // 3)
    assert covered >= 30 * RATE - 1, f"only {covered / RATE:.2f} s of the 30 s of world audio were captured (lag {lag})"
    assert corr > 0.9999
    assert np.abs(a - b).max() < 1e-3
