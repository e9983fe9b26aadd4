"""AudioRing and FrameRing: reads equal the written stream, failures are detected and counted."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from realtime.rings import AudioRing, FrameRing


@pytest.fixture
def fast_thread_switching():
    """Switch threads every 10 µs (instead of 5 ms) so writer and reader really interleave."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def _stream(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def test_audio_ring_reads_equal_the_written_stream_across_the_wrap():
    cap = 1000
    ring = AudioRing(cap, 16000)
    x = _stream(25_000)
    rng = np.random.default_rng(1)
    out = np.empty(cap, np.float32)
    pos = 0
    wrap_reads = 0
    while pos < len(x):
        k = int(rng.integers(1, 700))
        ring.write(x[pos : pos + k])
        pos = min(pos + k, len(x))
        assert ring.total_written == pos
        for _ in range(3):
            n = int(rng.integers(1, min(cap, pos) + 1))
            end = int(rng.integers(max(n, pos - cap + n), pos + 1))
            assert ring.read(end, n, out)
            np.testing.assert_array_equal(out[:n], x[end - n : end])
            wrap_reads += (end - n) % cap > (end - 1) % cap
    assert wrap_reads > 10  # spans across the wrap were exercised
    assert ring.late_reads == 0 and ring.early_reads == 0
    assert ring.time == pytest.approx(len(x) / 16000)


def test_audio_ring_late_and_early_reads_are_detected_and_counted():
    ring = AudioRing(100, 8000)
    out = np.empty(100, np.float32)
    x = _stream(250)
    ring.write(x[:150])
    assert ring.oldest == 50
    assert not ring.read(100, 60, out)  # [40, 100): 40..49 overwritten
    assert (ring.late_reads, ring.early_reads) == (1, 0)
    assert not ring.read(160, 10, out)  # not written yet
    assert not ring.read(5, 10, out)  # before the stream start
    assert (ring.late_reads, ring.early_reads) == (3, 2)
    assert ring.read(150, 100, out)  # exactly the whole ring
    np.testing.assert_array_equal(out, x[50:150])
    ring.write(x[150:250])
    assert ring.read(250, 100, out)
    np.testing.assert_array_equal(out, x[150:250])
    assert ring.reads == 2


def test_audio_ring_overwrites_count_samples_no_reader_reached():
    ring = AudioRing(100, 8000)
    out = np.empty(10, np.float32)
    ring.write(np.zeros(100, np.float32))
    assert ring.overwrites == 0
    ring.write(np.zeros(30, np.float32))  # samples 0..29 leave unread
    assert ring.overwrites == 30
    assert ring.read(130, 10, out)  # the reader is now at 130: everything before counts as seen
    ring.write(np.zeros(100, np.float32))  # 30..129 leave, all before the reader's mark
    assert ring.overwrites == 30
    ring.write(np.zeros(20, np.float32))  # 130..149 leave unread
    assert ring.overwrites == 50


def test_audio_ring_block_longer_than_the_ring_keeps_its_tail():
    ring = AudioRing(64, 8000)
    x = _stream(200)
    ring.write(x[:10])
    ring.write(x[10:200])
    out = np.empty(64, np.float32)
    assert ring.total_written == 200
    assert ring.read(200, 64, out)
    np.testing.assert_array_equal(out, x[136:200])


def test_audio_ring_rejects_bad_arguments():
    with pytest.raises(ValueError, match="capacity_samples"):
        AudioRing(0, 16000)
    ring = AudioRing(10, 16000)
    with pytest.raises(ValueError, match=r"\(n,\) block"):
        ring.write(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="n <= capacity"):
        ring.read(10, 11, np.empty(11, np.float32))
    with pytest.raises(ValueError, match="out holds 3"):
        ring.read(10, 5, np.empty(3, np.float32))


def test_audio_ring_concurrent_writer_and_reader_never_see_torn_data(fast_thread_switching):
    """One writer, one reader, a ring barely larger than the read: every successful read holds
    exactly the samples of its span (the stream is its own index), indices are continuous.

    The writer keeps going until it has written ``total`` samples *and* the reader has checked
    ``wanted_reads`` spans (or 60 s pass), so the check does not depend on how often a loaded
    machine happens to schedule the reader while the writer runs."""
    cap, n = 4096, 3000
    ring = AudioRing(cap, 16000)
    total, wanted_reads = 2_000_000, 200
    period = 1 << 22  # stream value = sample index mod period: exact in float32
    done = threading.Event()
    problems = []
    checked = [0]

    def writer():
        rng = np.random.default_rng(2)
        pos = 0
        deadline = time.monotonic() + 60
        while (pos < total or checked[0] < wanted_reads) and time.monotonic() < deadline:
            k = int(rng.integers(1, 900))
            ring.write((np.arange(pos, pos + k) % period).astype(np.float32))
            pos += k
        done.set()

    def reader():
        out = np.empty(n, np.float32)
        last_end = 0
        while not done.is_set():
            end = ring.total_written
            if end < n:
                continue
            if ring.read(end, n, out):
                expected = (np.arange(end - n, end) % period).astype(np.float32)
                if not np.array_equal(out, expected):
                    problems.append(end)
                if end < last_end:
                    problems.append(("went back", end, last_end))
                last_end = end
                checked[0] += 1

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not problems
    assert ring.total_written >= total
    assert checked[0] >= wanted_reads, f"only {checked[0]} reads overlapped the writer in 60 s"
    assert ring.reads == checked[0]


def _frame(value: int, h: int = 8, w: int = 12) -> np.ndarray:
    return np.full((h, w, 3), value % 256, np.uint8)


def test_frame_ring_latest_is_newest_and_counts_unread_overwrites():
    ring = FrameRing(4, 8, 12)
    out = np.empty((8, 12, 3), np.uint8)
    assert ring.latest(out) is None
    assert ring.nearest(0.0, out) is None
    for k in range(10):
        ring.write(_frame(k), k / 30)
    assert ring.frames_written == 10
    assert ring.overwrites == 6  # frames 0..5 left the ring unread
    t, k = ring.latest(out)
    assert (k, t) == (9, 9 / 30)
    assert (out == 9).all()
    assert ring.latest(out, after=9) is None  # nothing newer: never the same frame twice
    ring.write(_frame(10), 10 / 30)  # overwrites frame 6 (unread)
    assert ring.latest(out, after=9) == (10 / 30, 10)
    ring.write(_frame(11), 11 / 30)  # overwrites frame 7 (unread)
    ring.write(_frame(12), 12 / 30)  # overwrites frame 8 (unread)
    ring.write(_frame(13), 13 / 30)  # overwrites frame 9 (read): not counted
    ring.write(_frame(14), 14 / 30)  # overwrites frame 10 (read): not counted
    assert ring.overwrites == 9


def test_frame_ring_nearest_finds_the_closest_held_frame():
    ring = FrameRing(5, 8, 12)
    out = np.empty((8, 12, 3), np.uint8)
    for k in range(12):
        ring.write(_frame(k), 0.1 * k)  # holds frames 7..11
    assert ring.nearest(0.92, out) == (pytest.approx(0.9), 9)
    assert (out == 9).all()
    assert ring.nearest(0.96, out)[1] == 10
    assert ring.nearest(0.0, out)[1] == 7  # older than anything held: the oldest
    assert ring.nearest(5.0, out)[1] == 11


def test_frame_ring_watchers_leave_the_overwrite_count_to_the_consumer():
    """Reads with take=False (a display, the recorder) and newest() copy or look without marking
    frames read: the overwrites count what the consumer never took, watched or not."""
    watched, alone = FrameRing(4, 8, 12), FrameRing(4, 8, 12)
    out = np.empty((8, 12, 3), np.uint8)
    assert watched.newest() is None
    for k in range(12):
        for ring in (watched, alone):
            ring.write(_frame(k), k / 30)
        assert watched.newest() == (k / 30, k)
        assert watched.nearest(k / 30, out, take=False) == (k / 30, k) and (out == k).all()
        assert watched.latest(out, take=False) == (k / 30, k)
        if k == 5:
            for ring in (watched, alone):  # the consumer takes frame 4
                assert ring.nearest(4 / 30, out) == (4 / 30, 4)
    assert watched.overwrites == alone.overwrites == 7  # frames 0..7 left the ring, frame 4 was taken
    watched.nearest(10 / 30, out)  # a consuming read marks it: its overwrite is not counted
    for k in range(12, 16):
        watched.write(_frame(k), k / 30)
    assert watched.overwrites == 7 + 3


def test_frame_ring_rejects_a_frame_of_another_size():
    ring = FrameRing(3, 8, 12)
    with pytest.raises(ValueError, match=r"size=\(12, 8\)"):
        ring.write(np.zeros((12, 8, 3), np.uint8), 0.0)
    with pytest.raises(ValueError, match="slots"):
        FrameRing(1, 8, 12)


def test_frame_ring_concurrent_writer_and_reader(fast_thread_switching):
    """Frames are uniform images of their counter: a torn copy or a wrong timestamp shows.
    As in the audio test, the writer goes on until the reader has checked enough frames."""
    ring = FrameRing(3, 48, 64)
    n_frames, wanted_reads = 6000, 50
    done = threading.Event()
    problems = []
    got = []

    def writer():
        k = 0
        deadline = time.monotonic() + 60
        while (k < n_frames or len(got) < wanted_reads) and time.monotonic() < deadline:
            ring.write(_frame(k, 48, 64), float(k))
            k += 1
        done.set()

    def reader():
        out = np.empty((48, 64, 3), np.uint8)
        last = -1
        while not done.is_set():
            r = ring.latest(out, after=last) if len(got) % 2 else ring.nearest(float(ring.frames_written), out)
            if r is None:
                time.sleep(0)
                continue
            t, k = r
            if t != float(k) or not (out == k % 256).all() or k < last:
                problems.append((t, k, int(out.min()), int(out.max())))
            last = k
            got.append(k)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not problems
    assert ring.frames_written >= n_frames
    assert len(got) >= wanted_reads, f"only {len(got)} reads overlapped the writer in 60 s"
