"""Preallocated ring buffers between the capture threads and the scheduler.

Both rings are written by ONE thread (the capture thread that owns the source) and read by one
consumer (the scheduler); other readers (a display, the mp4 recorder) copy frames with
``take=False`` (``FrameRing.latest``, ``FrameRing.nearest``) or only look at the newest
frame's time (``FrameRing.newest``), which leaves the consumer's counters alone. Everything is
allocated in the constructor; ``write`` and ``read`` only copy (two slices at the wrap). A lock
guards the indices and counters, and is held only while those are updated, never while samples
or pixels are copied. A read validates its span after copying (a sequence-lock): if the writer
started overwriting the span meanwhile, the read fails instead of returning torn data.

Stream time is one clock for both: audio sample ``i`` is at ``i / sample_rate`` seconds, frames
carry their time in the same seconds (after the A/V offset correction applied in capture).

Design after jetson-utils ``cpp/threads/RingBuffer.h`` (allocate once, newest-wins reads) and
``cpp/codec/gstBufferManager.h`` (a timestamp ring beside the frame ring).
"""
from __future__ import annotations

import threading

import numpy as np

__all__ = ["AudioRing", "FrameRing"]


class AudioRing:
    """A float32 sample ring addressed by absolute stream index.

    ``total_written`` is the index of the next sample to be written, i.e. the stream position in
    samples; the ring holds samples ``[total_written - capacity, total_written)``. Readers ask
    for a span by its end index, so a reader never needs to know where the ring wraps.

    Counters (read them any time, from any thread):

    * ``late_reads``: every :meth:`read` that returned False, i.e. whose span was (partly)
      overwritten already or not written yet (the latter are also counted in ``early_reads``).
    * ``early_reads``: reads that asked for samples not yet written (or before the stream start).
    * ``overwrites``: samples that left the ring before any read reached them (index at or past
      the highest ``end_index`` read so far). A consumer that keeps up keeps this at 0.
    * ``reads``: successful reads.

    Args:
        capacity_samples: Ring length in samples (e.g. 10 s × rate).
        sample_rate: Rate of the stream in Hz (for :attr:`time` and the consumers).

    Example:
        >>> ring = AudioRing(48000, 16000)
        >>> ring.write(np.ones(1000, np.float32))
        >>> out = np.empty(400, np.float32)
        >>> ring.read(ring.total_written, 400, out)   # the newest 400 samples
        True
    """

    def __init__(self, capacity_samples: int, sample_rate: int) -> None:
        if int(capacity_samples) <= 0:
            raise ValueError(f"AudioRing capacity_samples: expected > 0, found {capacity_samples}")
        if int(sample_rate) <= 0:
            raise ValueError(f"AudioRing sample_rate: expected > 0 Hz, found {sample_rate}")
        self.capacity = int(capacity_samples)
        self.sample_rate = int(sample_rate)
        self._buf = np.zeros(self.capacity, np.float32)
        self._lock = threading.Lock()
        self._written = 0  # published end: samples [.., _written) are complete
        self._reserved = 0  # end of the write in progress: slots of [_reserved - capacity, ..) may be torn
        self._read_mark = 0  # highest end_index a successful read asked for
        self.late_reads = 0
        self.early_reads = 0
        self.overwrites = 0
        self.reads = 0

    @property
    def total_written(self) -> int:
        """Samples written since the start = stream index of the next sample."""
        return self._written

    @property
    def time(self) -> float:
        """Stream time of the next sample, in seconds."""
        return self._written / self.sample_rate

    @property
    def oldest(self) -> int:
        """Stream index of the oldest sample still held."""
        return max(0, self._written - self.capacity)

    def write(self, block: np.ndarray) -> None:
        """Append samples (writer thread only).

        Copies ``block`` into the ring (two slices at the wrap); never allocates. A block longer
        than the ring advances the index by its full length and keeps its last ``capacity``
        samples.

        Args:
            block: (n,) float32 samples (other float dtypes are cast while copying).
        """
        if block.ndim != 1:
            raise ValueError(f"AudioRing.write: expected a (n,) block, found shape {block.shape}")
        n = block.shape[0]
        if n == 0:
            return
        cap = self.capacity
        start = self._written  # only this thread changes it
        end = start + n
        if n > cap:
            block = block[n - cap :]
        first = end - block.shape[0]  # stream index of block[0]
        with self._lock:
            self._reserved = end
            gone_lo = max(start - cap, 0, self._read_mark)
            gone_hi = end - cap
            if gone_hi > gone_lo:
                self.overwrites += gone_hi - gone_lo
        self._copy_in(first, block)
        with self._lock:
            self._written = end

    def _copy_in(self, first: int, block: np.ndarray) -> None:
        cap = self.capacity
        m = block.shape[0]
        i = first % cap
        k = min(m, cap - i)
        np.copyto(self._buf[i : i + k], block[:k], casting="same_kind")
        if k < m:
            np.copyto(self._buf[: m - k], block[k:], casting="same_kind")

    def read(self, end_index: int, n: int, out: np.ndarray) -> bool:
        """Copy samples ``[end_index - n, end_index)`` into ``out[:n]`` (reader thread).

        Args:
            end_index: Stream index one past the last sample wanted (``total_written`` for the
                newest samples).
            n: Samples wanted (at most ``capacity``).
            out: Preallocated float32 array of at least ``n`` samples.

        Returns:
            True when ``out[:n]`` holds the span. False (counted in ``late_reads``) when part of
            it was already overwritten, is overwritten while being copied, or is not written
            yet (also counted in ``early_reads``); ``out`` then holds nothing meaningful.
        """
        n = int(n)
        end_index = int(end_index)
        if not 0 < n <= self.capacity:
            raise ValueError(f"AudioRing.read: expected 0 < n <= capacity ({self.capacity}), found n={n}")
        if out.shape[0] < n:
            raise ValueError(f"AudioRing.read: out holds {out.shape[0]} samples, {n} requested")
        start = end_index - n
        with self._lock:
            written = self._written
            if start < 0 or end_index > written:
                self.early_reads += 1
                self.late_reads += 1
                return False
            if start < written - self.capacity:
                self.late_reads += 1
                return False
        cap = self.capacity
        i = start % cap
        k = min(n, cap - i)
        np.copyto(out[:k], self._buf[i : i + k])
        if k < n:
            np.copyto(out[k:n], self._buf[: n - k])
        with self._lock:
            if start < self._reserved - cap:  # the writer reached the span while we copied
                self.late_reads += 1
                return False
            if end_index > self._read_mark:
                self._read_mark = end_index
            self.reads += 1
        return True


class FrameRing:
    """Fixed slots of RGB frames with stream timestamps and a monotonic frame counter.

    Frame ``k`` (the k-th written, from 0) lives in slot ``k % slots``. Readers take the newest
    frame (:meth:`latest`, newest wins, stale frames are skipped) or the frame nearest to a
    stream time (:meth:`nearest`); both copy into the caller's preallocated array.

    Counters: ``frames_written``; ``overwrites`` = frames overwritten before any read took them.
    Only the consumer's reads take frames (the default, ``take=True``); a reader that only
    watches (a display, the recorder) passes ``take=False``, so ``overwrites`` keeps counting
    the frames the models never saw.

    Args:
        slots: Number of frames held (≥ 2; 4 is plenty for newest-wins, more for ``nearest``
            to look back further).
        height: Frame height in pixels.
        width: Frame width in pixels.
    """

    def __init__(self, slots: int, height: int, width: int) -> None:
        if int(slots) < 2:
            raise ValueError(f"FrameRing slots: expected >= 2, found {slots}")
        if int(height) <= 0 or int(width) <= 0:
            raise ValueError(f"FrameRing frame size: expected positive, found {width}x{height}")
        self.slots = int(slots)
        self.height = int(height)
        self.width = int(width)
        self._frames = np.zeros((self.slots, self.height, self.width, 3), np.uint8)
        self._times = np.full(self.slots, np.inf, np.float64)  # +inf marks an empty or torn slot
        self._index = np.full(self.slots, -1, np.int64)  # frame counter held by each slot, -1 = none
        self._taken = np.zeros(self.slots, bool)  # slot read at least once
        self._scratch = np.empty(self.slots, np.float64)  # reader-only
        self._lock = threading.Lock()
        self._written = 0
        self.overwrites = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, 3) of every frame."""
        return (self.height, self.width, 3)

    @property
    def frames_written(self) -> int:
        """Frames written since the start (the counter of the next frame)."""
        return self._written

    def write(self, frame: np.ndarray, timestamp: float) -> None:
        """Copy a frame into the next slot (writer thread only).

        Args:
            frame: (height, width, 3) uint8 RGB.
            timestamp: Stream time of the frame in seconds.
        """
        if frame.shape != self.shape:
            raise ValueError(
                f"FrameRing.write: expected a frame of shape {self.shape}, found {frame.shape} "
                f"(open the source with size=({self.width}, {self.height}))"
            )
        k = self._written  # only this thread changes it
        slot = k % self.slots
        with self._lock:
            if self._index[slot] >= 0 and not self._taken[slot]:
                self.overwrites += 1
            self._index[slot] = -1
            self._times[slot] = np.inf
            self._taken[slot] = False
        np.copyto(self._frames[slot], frame)
        with self._lock:
            self._times[slot] = timestamp
            self._index[slot] = k
            self._written = k + 1

    def latest(self, out: np.ndarray, after: int = -1, *, take: bool = True) -> tuple[float, int] | None:
        """Copy the newest frame into ``out``.

        Safe from any thread, each with its own ``out`` (a display reads this way beside the
        scheduler).

        Args:
            out: Preallocated (height, width, 3) uint8.
            after: Return None unless the newest frame's counter is greater (pass the last
                index you got to never see a frame twice).
            take: Mark the frame as read. A viewer passes False, so ``overwrites`` still counts
                the frames the consumer never took.

        Returns:
            ``(timestamp, index)`` of the frame copied, or None when there is none (newer than
            ``after``).
        """
        for _ in range(4):  # the writer can lap a slow copy only with very few slots
            with self._lock:
                k = self._written - 1
                if k < 0 or k <= after:
                    return None
                slot = k % self.slots
                t = float(self._times[slot])
            np.copyto(out, self._frames[slot])
            if self._commit(slot, k, take):
                return t, k
        return None

    def newest(self) -> tuple[float, int] | None:
        """``(timestamp, index)`` of the newest frame, or None before the first; copies no
        pixels and marks nothing taken (safe from any thread)."""
        with self._lock:
            k = self._written - 1
            if k < 0:
                return None
            # the writer publishes a slot and the counter under one lock, so slot k is whole
            return float(self._times[k % self.slots]), k

    def oldest(self) -> tuple[float, int] | None:
        """``(timestamp, index)`` of the oldest whole frame held, or None before the first; copies
        no pixels and marks nothing taken (safe from any thread). With :meth:`newest` it tells
        how far back the ring reaches."""
        with self._lock:
            if self._written == 0:
                return None
            k = max(0, self._written - self.slots)
            if self._index[k % self.slots] != k:  # that slot is being rewritten: the next is the oldest
                k += 1
            return float(self._times[k % self.slots]), k

    def take(self, index: int) -> bool:
        """Mark frame ``index`` read, as a ``take=True`` read would have.

        For a consumer that copies several frames with ``take=False`` and takes them only once
        it uses them all (the scheduler's clips), so frames of a clip it drops still count in
        ``overwrites``.

        Returns:
            False when the frame has left the ring meanwhile (it was counted as overwritten).
        """
        slot = int(index) % self.slots
        with self._lock:
            if self._index[slot] != index:
                return False
            self._taken[slot] = True
        return True

    def nearest(self, timestamp: float, out: np.ndarray, *, take: bool = True) -> tuple[float, int] | None:
        """Copy the held frame whose time is closest to ``timestamp`` into ``out``.

        Call it from one thread only (it uses the ring's scratch array): the scheduler and the
        recorder both read this way, on the inference thread.

        Args:
            timestamp: Stream time in seconds.
            out: Preallocated (height, width, 3) uint8.
            take: Mark the frame as read. Readers other than the models' consumer (the mp4
                recorder) pass False, so ``overwrites`` still counts the frames the models
                never took.

        Returns:
            ``(timestamp, index)`` of the frame copied, or None when the ring is empty.
        """
        s = self._scratch
        for _ in range(4):
            with self._lock:
                np.copyto(s, self._times)
            np.subtract(s, timestamp, out=s)
            np.abs(s, out=s)  # empty/torn slots stay +inf
            slot = int(np.argmin(s))
            if not np.isfinite(s[slot]):
                return None
            with self._lock:
                k = int(self._index[slot])
                t = float(self._times[slot])
            if k < 0:
                continue  # being rewritten right now: look again
            np.copyto(out, self._frames[slot])
            if self._commit(slot, k, take):
                return t, k
        return None

    def _commit(self, slot: int, k: int, take: bool = True) -> bool:
        """After a copy: True (and, with ``take``, mark the slot read) if the slot still holds frame ``k``."""
        with self._lock:
            if self._index[slot] != k:
                return False
            if take:
                self._taken[slot] = True
        return True
