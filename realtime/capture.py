"""Capture: one thread per source feeds the audio ring and the frame ring.

Each source is owned by ONE capture thread: it opens the source, reads it chunk by chunk,
writes audio into the :class:`~realtime.rings.AudioRing` and frames into the
:class:`~realtime.rings.FrameRing`, and closes it (aiortc MediaPlayer: a named worker thread
per container, a stop event, a join). A source that gives both audio and video (the
synthetic world, a file) is read by one thread that feeds both rings. Rings never block, so a
slow consumer never stalls capture; it shows up in the rings' counters instead.

Pacing. With ``realtime=True``, sources without their own clock (synthetic, files, a video
file standing in for a camera) are released at real-time pace: a chunk is written when
``time.monotonic()`` reaches ``start + its stream time`` (a start time, not summed sleeps, so
errors do not accumulate). Audio is released in blocks of at most :data:`PACED_BLOCK_S`, each at
its own time, as a sound card delivers it: a file decodes in packets of up to ~0.1 s, longer than
a streaming labeler's hop, and a packet written at once made two hops due together (one skipped,
the model's state reset). Live devices are never paced. ``realtime=False`` runs as fast as
the sources decode (files, tests).

Clock. Stream time is audio sample index / sample rate. Frames of synthetic and file sources
already carry stream seconds; a live camera's arrival times (``time.monotonic()``) are mapped
onto the stream clock through the microphone's estimated start (sample 0), or the pacing start
for a paced audio source, or the first frame when there is no audio. ``av_offset_ms`` is then
added to every frame time: a camera whose pictures lag the sound by 70 ms needs ``-70``.
Frames that land before stream time 0 are dropped (counted).

Devices that go away. A live source (microphone, camera) that delivers nothing for
``RecoveryPolicy.loss_after_s`` seconds, or reports that its device is gone
(:class:`~realtime.sources.SourceLost`, a failed stream), is *lost*, not fatal: the capture
says so (``on_status``, one line), keeps the stream clock going, reopens the source with
backoff and carries on when it delivers again (``device_losses`` / ``device_recoveries`` in
:class:`CaptureStats`). While the microphone is lost, silence is written at real-time pace
(counted in ``gap_samples``), so hops go on and the labels fall; while the camera is lost no
frame is written, so the scheduler finds none near the window and runs no localizer on a stale
picture. The first audio after a recovery lands at its wall-clock position (silence fills the
rest of the gap). ``give_up_after_s`` ends the run instead after that long without the device.
Files and the world are never retried: their errors end the run.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .rings import AudioRing, FrameRing
from .sources.base import CLOCK_STREAM, Chunk, EndOfStream, Source, SourceError, SourceLost, SourceTimeout

__all__ = ["Capture", "CaptureStats", "RecoveryPolicy"]

logger = logging.getLogger(__name__)

#: A wait that returns this much later than asked means the process itself was not running.
PAUSE_S = 0.5
#: A lost source that stays silent without reporting an error this long is reopened anyway.
REOPEN_SILENT_S = 3.0
#: Paced audio is written in blocks of at most this many seconds (see "Pacing" above).
PACED_BLOCK_S = 0.02


@dataclass(frozen=True)
class RecoveryPolicy:
    """What the capture does when a live device stops delivering.

    Attributes:
        loss_after_s: A live source silent this long counts as lost (a device that reports
            its loss counts at once).
        retry_min_s, retry_max_s: Backoff between attempts to reopen it (doubling from the
            first to the second; the second bounds how late a returning device is noticed).
        give_up_after_s: End the run (:class:`~realtime.sources.SourceLost`) after this long
            without the device; None: keep trying until stopped.
    """

    loss_after_s: float = 0.75
    retry_min_s: float = 0.1
    retry_max_s: float = 0.5
    give_up_after_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("loss_after_s", "retry_min_s", "retry_max_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"RecoveryPolicy.{name}: expected seconds > 0, found {value!r}")
        if self.retry_max_s < self.retry_min_s:
            raise ValueError(f"RecoveryPolicy: retry_max_s ({self.retry_max_s}) < retry_min_s ({self.retry_min_s})")
        if self.give_up_after_s is not None and not self.give_up_after_s > 0:
            raise ValueError(f"RecoveryPolicy.give_up_after_s: expected seconds > 0 or None, found {self.give_up_after_s!r}")


@dataclass(frozen=True)
class CaptureStats:
    """A snapshot of the capture's counters.

    Attributes:
        samples_captured: Audio samples written to the audio ring (= its stream position).
        frames_captured: Frames written to the frame ring.
        frames_dropped: Frames not written: before stream time 0, or before the microphone's
            first sample was known.
        gap_samples: Silence written where a source skipped samples (should stay 0).
        audio_time: Stream seconds of audio captured.
        resampler_latency: Seconds of audio the audio source's resampler holds back.
        source_overflows: Input the sources lost before capture read it (microphone staging or
            PortAudio overflows, live camera frames dropped for newer ones).
        audio_overwrites: The audio ring's ``overwrites`` (samples no reader reached).
        frame_overwrites: The frame ring's ``overwrites`` (frames no reader took).
        errors: One line per source error.
        device_losses: Times a live source was lost (see :class:`RecoveryPolicy`).
        device_recoveries: Times a lost source delivered again.
        lost: Names of the sources lost right now.
        video_lost: Whether the video source is lost right now (its last frame is stale).
    """

    samples_captured: int
    frames_captured: int
    frames_dropped: int
    gap_samples: int
    audio_time: float
    resampler_latency: float
    source_overflows: int
    audio_overwrites: int
    frame_overwrites: int
    errors: tuple[str, ...]
    device_losses: int = 0
    device_recoveries: int = 0
    lost: tuple[str, ...] = ()
    video_lost: bool = False


class _Feed:
    """One capture thread's job: a source and which rings it feeds."""

    def __init__(self, source: Source, audio: bool, video: bool) -> None:
        self.source = source
        self.audio = audio
        self.video = video
        self.opened = threading.Event()
        self.open_error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.audio_offset = 0  # added to the source's audio indices (moves at each recovery)
        self.lost_since: float | None = None  # time.monotonic() when it was lost; None: delivering
        self.delivered = False  # a first chunk came (before it, silence is an error, not a loss)


class Capture:
    """Feeds the rings from an audio source and/or a video source.

    Args:
        audio_source: Source whose audio feeds ``audio_ring`` (None: video only).
        video_source: Source whose frames feed ``frame_ring`` (None: audio only). May be the
            same object as ``audio_source``; one thread then feeds both rings.
        audio_ring: Ring at the audio source's sample rate (required with ``audio_source``).
        frame_ring: Ring of the video source's frame size (required with ``video_source``).
        realtime: Pace sources without their own clock in real time; False: as fast as
            possible.
        av_offset_ms: Added to every frame's stream time (negative when the picture lags).
        duration: Stop after this many stream seconds (audio is cut to exactly
            ``round(duration × rate)`` samples, frames at or after it are not written).
        read_timeout: Seconds a source that is not live (a file, the world), or a live one before
            its first chunk, may deliver nothing before the capture fails with
            :class:`~realtime.sources.SourceTimeout`.
        open_timeout: Seconds :meth:`start` waits for every source to open.
        recovery: What happens when a live source stops delivering (:class:`RecoveryPolicy`).
        on_status: Called with one line (from a capture thread) when a device is lost or
            delivers again; None: logged as a warning.

    Example:
        >>> src = SyntheticSource(200000)
        >>> audio, frames = AudioRing(10 * 16000, 16000), FrameRing(4, 224, 224)
        >>> with Capture(src, src, audio, frames, duration=5.0) as cap:
        ...     cap.wait()
    """

    def __init__(
        self,
        audio_source: Source | None,
        video_source: Source | None,
        audio_ring: AudioRing | None = None,
        frame_ring: FrameRing | None = None,
        *,
        realtime: bool = True,
        av_offset_ms: float = 0.0,
        duration: float | None = None,
        read_timeout: float = 2.0,
        open_timeout: float = 10.0,
        recovery: RecoveryPolicy = RecoveryPolicy(),
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        if audio_source is None and video_source is None:
            raise ValueError("Capture: expected an audio source, a video source or both, found neither")
        if audio_source is not None and audio_ring is None:
            raise ValueError("Capture: an audio source needs an audio_ring")
        if video_source is not None and frame_ring is None:
            raise ValueError("Capture: a video source needs a frame_ring")
        if duration is not None and duration <= 0:
            raise ValueError(f"Capture duration: expected > 0 s or None, found {duration}")
        self.audio_source = audio_source
        self.video_source = video_source
        self.audio_ring = audio_ring
        self.frame_ring = frame_ring
        self.realtime = bool(realtime)
        self.av_offset = float(av_offset_ms) / 1000.0
        self.duration = duration
        self.read_timeout = float(read_timeout)
        self.open_timeout = float(open_timeout)
        self.recovery = recovery
        self._on_status = on_status
        if audio_source is not None and audio_source is video_source:
            self._feeds = [_Feed(audio_source, True, True)]
        else:
            self._feeds = [_Feed(s, s is audio_source, s is video_source) for s in (audio_source, video_source) if s is not None]
        self._stop = threading.Event()
        self._go = threading.Event()
        self._lock = threading.Lock()
        self._errors: list[tuple[str, BaseException]] = []
        self._t0: float | None = None
        self._started = False
        self._zeros = np.zeros(4096, np.float32)
        self._paced_block = max(1, int(round(PACED_BLOCK_S * audio_ring.sample_rate))) if audio_ring is not None else 1
        self.samples_captured = 0
        self.frames_captured = 0
        self.frames_dropped = 0
        self.gap_samples = 0
        self.resampler_latency = 0.0  # seconds, updated by the audio thread after each block
        self._first_frame_time: float | None = None  # arrival of the first live frame without audio
        self._audio_anchor: float | None = None  # time.monotonic() of stream sample 0 (a live microphone)
        self.device_losses = 0
        self.device_recoveries = 0

    # ------------------------------------------------------------------------------ control
    def start(self) -> "Capture":
        """Open every source (each in its own thread) and start capturing.

        Raises:
            RuntimeError: Started twice.
            Exception: Whatever opening a source raised (DeviceNotFound, FileNotFoundError,
                PortAudioNotFound, a rate or frame-size mismatch as ValueError, ...); the
                other sources are closed again.
        """
        self.open_sources()
        return self.go()

    def open_sources(self) -> "Capture":
        """The first half of :meth:`start`: open every source (each in its own thread), without
        starting the clock. Several captures that should share a clock (the streams of one
        process) open first, then :meth:`go` together.

        Raises:
            See :meth:`start`.
        """
        if self._started:
            raise RuntimeError("Capture.start: already started (make a new Capture)")
        self._started = True
        for feed in self._feeds:
            feed.thread = threading.Thread(target=self._run, args=(feed,), name=f"capture:{feed.source.name}", daemon=True)
            feed.thread.start()
        deadline = time.monotonic() + self.open_timeout
        for feed in self._feeds:
            if not feed.opened.wait(max(0.0, deadline - time.monotonic())):
                self.stop()
                raise SourceTimeout(f"Capture.start: {feed.source.name} did not open within {self.open_timeout:g} s")
        failed = [f.open_error for f in self._feeds if f.open_error is not None]
        if failed:
            self.stop()
            raise failed[0]
        return self

    def go(self, t0: float | None = None) -> "Capture":
        """The second half of :meth:`start`: stream time 0 is now (or ``t0``, a ``time.monotonic()``
        value), and capturing begins."""
        if not self._started:
            raise RuntimeError("Capture.go: call open_sources() first")
        self._t0 = time.monotonic() if t0 is None else float(t0)
        self._go.set()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every capture thread and join it (each closes its source). Errors the sources
        raised stay available through :attr:`error` / :meth:`check`."""
        self._stop.set()
        self._go.set()
        deadline = time.monotonic() + timeout
        for feed in self._feeds:
            t = feed.thread
            if t is not None and t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every source has ended (end of stream, ``duration`` or an error).

        Returns:
            True when capture has finished, False on timeout.

        Raises:
            Exception: The first error a source raised.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for feed in self._feeds:
            if feed.thread is not None:
                feed.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self.check()
        return self.finished

    def check(self) -> None:
        """Raise the first error a source raised, if any (the original exception)."""
        with self._lock:
            err = self._errors[0][1] if self._errors else None
        if err is not None:
            raise err

    @property
    def error(self) -> BaseException | None:
        """The first error a source raised, or None."""
        with self._lock:
            return self._errors[0][1] if self._errors else None

    @property
    def running(self) -> bool:
        return any(f.thread is not None and f.thread.is_alive() for f in self._feeds)

    @property
    def finished(self) -> bool:
        return self._started and not self.running

    @property
    def thread_names(self) -> tuple[str, ...]:
        """One capture thread per source, named ``capture:<source name>``."""
        return tuple(f"capture:{f.source.name}" for f in self._feeds)

    @property
    def start_time(self) -> float | None:
        """``time.monotonic()`` at stream time 0 of paced sources (set by :meth:`start`)."""
        return self._t0

    def stats(self) -> CaptureStats:
        """The counters now (safe from any thread)."""
        rate = self.audio_ring.sample_rate if self.audio_ring is not None else 1
        with self._lock:
            errors = tuple(f"{name}: {type(e).__name__}: {e}" for name, e in self._errors)
        return CaptureStats(
            samples_captured=self.samples_captured,
            frames_captured=self.frames_captured,
            frames_dropped=self.frames_dropped,
            gap_samples=self.gap_samples,
            audio_time=self.samples_captured / rate if self.audio_ring is not None else 0.0,
            resampler_latency=self.resampler_latency,
            source_overflows=sum(f.source.overflows for f in self._feeds),
            audio_overwrites=self.audio_ring.overwrites if self.audio_ring is not None else 0,
            frame_overwrites=self.frame_ring.overwrites if self.frame_ring is not None else 0,
            errors=errors,
            device_losses=self.device_losses,
            device_recoveries=self.device_recoveries,
            lost=tuple(f.source.name for f in self._feeds if f.lost_since is not None),
            video_lost=any(f.video and f.lost_since is not None for f in self._feeds),
        )

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()
        if exc_type is None:
            self.check()

    # ------------------------------------------------------------------------ capture thread
    def _fail(self, feed: _Feed, e: BaseException) -> None:
        with self._lock:
            self._errors.append((feed.source.name, e))
        self._stop.set()

    def _check_source(self, feed: _Feed) -> None:
        s = feed.source
        if feed.audio:
            if not s.has_audio:
                raise ValueError(f"audio source {s.name!r} has no audio")
            if s.sample_rate != self.audio_ring.sample_rate:
                raise ValueError(
                    f"audio source {s.name!r} delivers {s.sample_rate} Hz, the audio ring holds "
                    f"{self.audio_ring.sample_rate} Hz; open the source with sample_rate={self.audio_ring.sample_rate}"
                )
        if feed.video:
            if not s.has_video:
                raise ValueError(f"video source {s.name!r} has no video")
            r = self.frame_ring
            if s.frame_size is not None and tuple(s.frame_size) != (r.width, r.height):
                w, h = s.frame_size
                raise ValueError(
                    f"video source {s.name!r} delivers {w}x{h} frames, the frame ring holds "
                    f"{r.width}x{r.height}; open the source with size=({r.width}, {r.height})"
                )

    def _run(self, feed: _Feed) -> None:
        src = feed.source
        try:
            src.open()
            self._check_source(feed)
        except BaseException as e:
            feed.open_error = e
            feed.opened.set()
            try:
                src.close()
            except Exception:
                pass
            return
        feed.opened.set()
        try:
            self._go.wait()
            if not self._stop.is_set():
                self._loop(feed)
        except BaseException as e:
            self._fail(feed, e)
        finally:
            try:
                src.close()
            except Exception as e:
                self._fail(feed, e)

    def _read(self, feed: _Feed, limit: int | None) -> Chunk | None:
        """The next chunk; None once stopped. Waits in short slices so stop() is prompt.

        Raises:
            EndOfStream: a file or the world ended.
            SourceTimeout: a source that is not live delivered nothing for ``read_timeout``.
            SourceLost: a live source stayed lost for ``recovery.give_up_after_s``.
        """
        src = feed.source
        if src.live and feed.delivered:
            return self._read_live(feed, limit)
        deadline = time.monotonic() + self.read_timeout
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            try:
                chunk = src.read(timeout=min(0.2, max(remaining, 0.001)))
                feed.delivered = True
                return chunk
            except SourceTimeout as e:
                if time.monotonic() >= deadline:
                    raise SourceTimeout(f"{src.name} delivered nothing for {self.read_timeout:g} s") from e
        return None

    def _read_live(self, feed: _Feed, limit: int | None) -> Chunk | None:
        src = feed.source
        awake = time.monotonic()
        deadline = awake + self.recovery.loss_after_s
        while not self._stop.is_set():
            try:
                return src.read(timeout=min(0.1, max(deadline - time.monotonic(), 0.001)))
            except SourceTimeout:
                now = time.monotonic()
                if now - awake > PAUSE_S:  # this process was stopped (suspend, SIGSTOP) or starved, not
                    deadline += now - awake  # the device: give it its full time again
                awake = now
                if now >= deadline:
                    return self._ride_out_loss(feed, limit, f"delivered nothing for {self.recovery.loss_after_s:g} s",
                                               reopen=False)
            except (SourceError, EndOfStream) as e:  # SourceLost included; the end of a live stream is a loss
                return self._ride_out_loss(feed, limit, " ".join(str(e).split()) or type(e).__name__, reopen=True)
        return None

    def _status(self, line: str) -> None:
        if self._on_status is not None:
            self._on_status(line)
        else:
            logger.warning("%s", line)

    def _ride_out_loss(self, feed: _Feed, limit: int | None, reason: str, *, reopen: bool) -> Chunk | None:
        """Wait for a lost live source to deliver again (reopening it with backoff when it
        failed, unless it reconnects by itself) while the stream clock goes on; the first chunk
        after the loss, or None once stopped.

        Raises:
            SourceLost: lost for longer than ``recovery.give_up_after_s``.
        """
        src, policy = feed.source, self.recovery
        lost_at = feed.lost_since = time.monotonic()
        self.device_losses += 1
        give_up = policy.give_up_after_s
        self._status(f"{src.name} lost: {reason}; " + ("waiting for it" if src.reconnects_itself else "reopening it")
                     + (f" for up to {give_up:g} s" if give_up is not None else " until it is back"))
        must_reopen = reopen and not src.reconnects_itself
        delay, next_try, last_error = policy.retry_min_s, lost_at, None
        chunk = None
        while chunk is None:
            if self._stop.is_set():
                return None
            now = time.monotonic()
            if give_up is not None and now - lost_at >= give_up:
                detail = f" (last attempt: {type(last_error).__name__}: {last_error})" if last_error is not None else ""
                raise SourceLost(f"{src.name} lost for {give_up:g} s, giving up (give_up_after_s){detail}")
            if feed.audio:
                self._fill_lost_audio(now, limit)
            if must_reopen:
                if now < next_try:
                    self._stop.wait(min(0.05, next_try - now))
                    continue
                try:
                    src.reopen()
                    self._check_source(feed)
                    must_reopen = False
                    next_try = time.monotonic() + REOPEN_SILENT_S  # reopened: give it time to deliver
                except Exception as e:  # not back yet (DeviceNotFound, SourceError, PortAudio errors ...)
                    last_error = e
                    next_try = time.monotonic() + delay
                    delay = min(2 * delay, policy.retry_max_s)
                continue
            try:
                chunk = src.read(timeout=0.05)
            except SourceTimeout:
                if not src.reconnects_itself and now - lost_at >= REOPEN_SILENT_S and now >= next_try:
                    must_reopen = True  # silent without an error for long: a device gone without a word
                continue
            except (SourceError, EndOfStream) as e:
                last_error = e
                if src.reconnects_itself:
                    self._stop.wait(0.05)
                else:  # failed again: reopen, after the backoff if it was just reopened
                    must_reopen, next_try = True, min(next_try, time.monotonic() + delay)
        feed.lost_since = None
        self.device_recoveries += 1
        if feed.audio and chunk.audio is not None:
            self._place_after_loss(feed, chunk)
        self._status(f"{src.name} is back after {time.monotonic() - lost_at:.1f} s")
        return chunk

    def _wall_index(self, now: float) -> int | None:
        """The stream sample index recorded at ``now`` (from the microphone's sample 0)."""
        anchor = self._audio_anchor if self._audio_anchor is not None else self._t0
        if anchor is None or self.audio_ring is None:
            return None
        return int((now - anchor) * self.audio_ring.sample_rate)

    def _fill_lost_audio(self, now: float, limit: int | None) -> None:
        """Silence up to a quarter second before now: the clock (and the hops) go on while the
        microphone is lost; the quarter second is left for the audio that brings it back."""
        wall = self._wall_index(now)
        if wall is None:
            return
        target = wall - self.audio_ring.sample_rate // 4
        if limit is not None:
            target = min(target, limit)
        n = target - self.audio_ring.total_written
        if n > 0:
            self._write_silence(n)

    def _place_after_loss(self, feed: _Feed, chunk: Chunk) -> None:
        """Move the source's indices so its first block after a loss lands where it was recorded
        on the stream clock: it ends now less the device's input latency and the resampler's
        hold-back (never before what is already written). Reopened devices restart their count,
        and one that went quiet and resumed may have lost what it never recorded, so the block's
        arrival, not its index, says where it goes."""
        src, rate = feed.source, self.audio_ring.sample_rate
        pos = self.audio_ring.total_written
        wall = self._wall_index(time.monotonic())
        start = pos
        if wall is not None:
            held = chunk.audio.shape[0] + src.resampler_delay + int(round(src.input_latency * rate))
            start = max(pos, wall - held)
        feed.audio_offset = start - chunk.audio_start

    def _loop(self, feed: _Feed) -> None:
        src = feed.source
        paced = self.realtime and not src.live
        ring = self.audio_ring
        rate = ring.sample_rate if feed.audio else 1
        limit = None if (self.duration is None or not feed.audio) else int(round(self.duration * rate))
        audio_done = not feed.audio
        video_done = not feed.video
        while not (audio_done and video_done):
            try:
                chunk = self._read(feed, limit)
            except EndOfStream:
                return
            if chunk is None:
                return
            audio = None
            gap = 0
            due = None
            if not audio_done and chunk.audio is not None and chunk.audio.shape[0]:
                audio = chunk.audio
                pos = ring.total_written
                start = chunk.audio_start + feed.audio_offset
                if self._audio_anchor is None and src.live:
                    self._audio_anchor = src.start_monotonic
                if start > pos:  # the source skipped samples
                    gap = start - pos
                elif start < pos:  # overlap with what was written: drop it
                    audio = audio[pos - start :]
                if limit is not None:
                    room = limit - pos
                    gap = min(gap, room)
                    audio = audio[: max(room - gap, 0)]
                due = (pos + gap + audio.shape[0]) / rate
            frame_t = None
            if not video_done and chunk.frame is not None:
                frame_t = self._stream_time(src, chunk)
                if frame_t is None or frame_t < 0:
                    self.frames_dropped += 1
                    frame_t = None
                elif self.duration is not None and frame_t >= self.duration:
                    video_done = True
                    frame_t = None
                else:
                    due = frame_t if due is None else max(due, frame_t)
            if paced and audio is not None and audio.shape[0] > self._paced_block:
                if gap:
                    if self._wait_until((pos + gap) / rate):
                        return
                    self._write_silence(gap)
                    gap = 0
                for k in range(0, audio.shape[0], self._paced_block):
                    piece = audio[k:k + self._paced_block]
                    if self._wait_until((ring.total_written + piece.shape[0]) / rate):
                        return
                    ring.write(piece)
                    self.samples_captured += piece.shape[0]
                self.resampler_latency = src.resampler_delay / rate
                audio = None
            if paced and due is not None and self._wait_until(due):
                return
            if gap:
                self._write_silence(gap)
            if audio is not None and audio.shape[0]:
                ring.write(audio)
                self.samples_captured += audio.shape[0]
                self.resampler_latency = src.resampler_delay / rate
            if limit is not None and ring.total_written >= limit:
                audio_done = True
            if frame_t is not None:
                self.frame_ring.write(chunk.frame, frame_t)
                self.frames_captured += 1
            if self._stop.is_set():
                return

    def _wait_until(self, stream_s: float) -> bool:
        """Sleep until stream time ``stream_s`` of the pacing clock; True when stopped meanwhile."""
        wait = self._t0 + stream_s - time.monotonic()
        return wait > 0 and self._stop.wait(wait)

    def _write_silence(self, n: int) -> None:
        while n > 0:
            k = min(n, self._zeros.shape[0])
            self.audio_ring.write(self._zeros[:k])
            self.samples_captured += k
            self.gap_samples += k
            n -= k

    def _stream_time(self, src: Source, chunk: Chunk) -> float | None:
        """The frame's stream time in seconds, or None while it cannot be placed yet."""
        if src.clock == CLOCK_STREAM:
            return chunk.frame_time + self.av_offset
        a = self.audio_source
        if a is not None and a is not src and a.live:
            # the microphone's sample 0 (its first opening: a reopened device restarts its own count)
            anchor = self._audio_anchor if self._audio_anchor is not None else a.start_monotonic
        elif a is not None and a is not src and self.realtime:
            anchor = self._t0  # a paced audio source starts at the pacing start
        else:
            if self._first_frame_time is None:
                self._first_frame_time = chunk.frame_time
            anchor = self._first_frame_time
        if anchor is None:
            return None
        return chunk.frame_time - anchor + self.av_offset
