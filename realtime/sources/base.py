"""The one small interface every source implements.

A source is opened, read chunk by chunk and closed, by ONE thread (the capture thread that
owns it). Each :meth:`Source.read` returns a :class:`Chunk`: an audio block, a video frame, or
both, with their timestamps; the end of the stream raises :class:`EndOfStream`, a device that
delivers nothing in time raises :class:`SourceTimeout` (jetson-utils ``videoSource::Capture``:
frame / TIMEOUT / EOS / ERROR; aiortc ``MediaStreamTrack.recv``: an ended track raises).

Clocks. Audio is addressed by sample index: ``Chunk.audio_start`` is the index of the block's
first sample, so sample ``i`` is at ``i / sample_rate`` seconds of stream time and blocks are
contiguous. Frame times are seconds, either already on the stream clock (``clock ==
"stream"``: synthetic, files) or ``time.monotonic()`` at arrival (``clock == "monotonic"``:
live cameras); the capture maps the latter onto the stream clock.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

__all__ = ["Chunk", "EndOfStream", "Source", "SourceError", "SourceLost", "SourceTimeout"]

CLOCK_STREAM = "stream"
CLOCK_MONOTONIC = "monotonic"


class SourceError(RuntimeError):
    """A source failed while running (device lost, decoder error, callback exception)."""


class SourceLost(SourceError):
    """A live device went away (unplugged, its server died, a stream's sender stopped); it may
    come back: the capture keeps trying (``realtime.capture.RecoveryPolicy``)."""


class SourceTimeout(SourceError, TimeoutError):
    """A source delivered nothing within the read (or open) timeout."""


class EndOfStream(Exception):
    """Raised by :meth:`Source.read` once the stream has ended (files, finite streams)."""


@dataclass
class Chunk:
    """What one :meth:`Source.read` delivers.

    The arrays are views of buffers the source owns: valid until the next ``read`` on it, so
    copy what must outlive that (the rings do).

    Attributes:
        audio: (n,) float32 mono samples at the source's ``sample_rate``, or None.
        audio_start: Stream index of ``audio[0]``.
        frame: (height, width, 3) uint8 RGB, or None.
        frame_time: Time of ``frame`` in seconds on the source's ``clock``.
        frame_index: The source's frame counter (0, 1, ...), -1 without a frame.
    """

    audio: np.ndarray | None = None
    audio_start: int = 0
    frame: np.ndarray | None = None
    frame_time: float = 0.0
    frame_index: int = -1

    @property
    def audio_end(self) -> int:
        """Stream index one past the last sample (``audio_start`` without audio)."""
        return self.audio_start + (0 if self.audio is None else self.audio.shape[0])


class Source(abc.ABC):
    """Base class of every audio and/or video source.

    Subclasses set the attributes in ``__init__`` (``frame_size`` may wait until ``open``) and
    implement :meth:`_open`, :meth:`read` and :meth:`_close`.

    Attributes:
        name: Short name for logs and event files (``synthetic:SEED``, file basename, ``mic``).
        sample_rate: Rate of the delivered audio in Hz, None without audio.
        channels: Channels of the delivered audio (1: sources down-mix), 0 without audio.
        fps: Nominal frame rate, None without video (or unknown).
        frame_size: ``(width, height)`` of delivered frames, None without video (or until open).
        live: A device with its own clock: the capture never paces or throttles it.
        clock: ``"stream"`` or ``"monotonic"``: what ``Chunk.frame_time`` is measured on.
        reconnects_itself: A live source that gets its device back on its own after a loss
            (its reads raise :class:`SourceLost` or time out meanwhile): the capture waits
            instead of reopening it.
    """

    name: str = "source"
    sample_rate: int | None = None
    channels: int = 0
    fps: float | None = None
    frame_size: tuple[int, int] | None = None
    live: bool = False
    clock: str = CLOCK_STREAM
    reconnects_itself: bool = False

    _is_open: bool = False

    @property
    def has_audio(self) -> bool:
        return self.sample_rate is not None

    @property
    def has_video(self) -> bool:
        return self.fps is not None or self.frame_size is not None

    @property
    def is_open(self) -> bool:
        return self._is_open

    @property
    def resampler_delay(self) -> int:
        """Output samples the source's resampler holds back right now (0 without one)."""
        return 0

    @property
    def input_latency(self) -> float:
        """Seconds between a sample reaching the device and its delivery (0 when not known)."""
        return 0.0

    @property
    def overflows(self) -> int:
        """Input the source lost because its reader fell behind (device blocks / frames)."""
        return 0

    @property
    def start_monotonic(self) -> float | None:
        """``time.monotonic()`` at audio sample 0, for live audio sources once known."""
        return None

    def open(self) -> "Source":
        """Open the device or file (idempotent). Returns self."""
        if not self._is_open:
            self._open()
            self._is_open = True
        return self

    def close(self) -> None:
        """Release the device or file (idempotent; safe after a failed open)."""
        if self._is_open:
            self._is_open = False
            self._close()

    def reopen(self) -> "Source":
        """Close and open again, after the device was lost (subclasses re-scan devices here)."""
        self.close()
        return self.open()

    @abc.abstractmethod
    def read(self, timeout: float | None = None) -> Chunk:
        """The next chunk.

        Args:
            timeout: Seconds to wait for a live device (None: its default); ignored by sources
                that never wait (synthetic, files).

        Raises:
            EndOfStream: The stream has ended.
            SourceTimeout: Nothing arrived within ``timeout``.
            SourceError: The device or decoder failed.
        """

    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _close(self) -> None: ...

    def __enter__(self) -> "Source":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}"]
        if self.has_audio:
            parts.append(f"sample_rate={self.sample_rate}")
        if self.has_video:
            parts.append(f"fps={self.fps}, frame_size={self.frame_size}")
        return f"{type(self).__name__}({', '.join(parts)})"
