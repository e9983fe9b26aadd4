"""Where hop results go: JSON lines, a DCASE events TSV, an mp4 recording, a run summary.

Every sink has the same three calls, all made on the scheduler's inference thread (the one
owner): ``open(context)`` once before the first hop, ``write(result)`` for every
:class:`~realtime.scheduler.HopResult` (the last one has ``final=True`` and carries the events
closed at stop), and ``close()`` once at stop, which flushes everything, also when the run ends
by an error or Ctrl-C (``Scheduler.stop`` closes sinks in a ``finally``).

================== ==========================================================================
sink               writes
================== ==========================================================================
JsonLinesSink      one JSON object per hop (``realtime.schema``), to stdout or a file
EventsTsvSink      every ended event, DCASE strong-label TSV, at close (atomically)
Mp4RecorderSink    camera frames with the overlay + the captured audio, between
                   ``start_recording(path)`` and ``stop_recording()``, any number of times
SummarySink        counts and mean / p95 latencies per stage, at close
================== ==========================================================================
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Protocol, TextIO

import numpy as np

from models.core.events import LabeledEvent, write_strong_tsv

from . import schema
from .overlay import Overlay, OverlayConfig

logger = logging.getLogger(__name__)

__all__ = [
    "EventsTsvSink",
    "JsonLinesSink",
    "Mp4RecorderSink",
    "RecorderConfig",
    "RunSummary",
    "Sink",
    "SinkContext",
    "SummarySink",
]


@dataclass(frozen=True)
class SinkContext:
    """What a sink may need besides the results.

    Attributes:
        source_name: the stream's name (``synthetic:SEED``, a media file's basename, ``mic``).
        sample_rate: the capture rate of ``audio_ring``.
        hop_s: seconds between hops.
        audio_ring: the capture ring (``read(end_index, n, out)``).
        frame_ring: the camera ring (``nearest(t, out)``, ``latest(out)``, ``height``, ``width``) or None.
        labels: labeler name → labels.
    """

    source_name: str
    sample_rate: int
    hop_s: float
    audio_ring: Any
    frame_ring: Any
    labels: Mapping[str, tuple[str, ...]]


class Sink(Protocol):
    """The interface the scheduler calls, always from its inference thread."""

    def open(self, context: SinkContext) -> None:
        ...

    def write(self, result) -> None:
        ...

    def close(self) -> None:
        ...


# ------------------------------------------------------------------------------ JSON lines


class JsonLinesSink:
    """One ``realtime.schema`` object per hop, one per line.

    Args:
        target: ``"-"`` for stdout, a path, or an open text stream (left open at close).
        flush_each: flush after every line (default: for streams such as stdout, so a pipe sees
            each hop at once; files are flushed at close).
        validate: check every record against the schema before writing (for debugging).
    """

    def __init__(self, target: str | os.PathLike | TextIO = "-", *, flush_each: bool | None = None,
                 validate: bool = False) -> None:
        self.target = target
        self._flush_each = flush_each
        self._validate = validate
        self._stream: TextIO | None = None
        self._owned = False
        self._source = ""
        self.lines = 0

    def open(self, context: SinkContext) -> None:
        self._source = context.source_name
        if isinstance(self.target, (str, os.PathLike)) and os.fspath(self.target) == "-":
            self._stream, flush = sys.stdout, True
        elif isinstance(self.target, (str, os.PathLike)):
            self._stream, self._owned, flush = open(self.target, "w", encoding="utf-8"), True, False
        else:
            self._stream, flush = self.target, True
        if self._flush_each is None:
            self._flush_each = flush

    def write(self, result) -> None:
        obj = schema.record(result, self._source)
        if self._validate:
            schema.validate(obj)
        self._stream.write(json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n")
        self.lines += 1
        if self._flush_each:
            self._stream.flush()

    def close(self) -> None:
        if self._stream is None:
            return
        try:
            self._stream.flush()
        finally:
            if self._owned:
                self._stream.close()
            self._stream = None


# ------------------------------------------------------------------------------ events TSV


class EventsTsvSink:
    """Every ended event, written at close as a DCASE strong-label TSV (filename, onset, offset,
    event_label; filename = the source name), atomically.

    Args:
        path: the ``.tsv`` file.
        decimals: digits after the point for onsets and offsets.
    """

    def __init__(self, path: str | os.PathLike, decimals: int = 3) -> None:
        self.path = Path(path)
        self.decimals = decimals
        self.events: list[LabeledEvent] = []

    def open(self, context: SinkContext) -> None:
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"EventsTsvSink: the folder {self.path.parent} does not exist")

    def write(self, result) -> None:
        self.events.extend(result.ended)

    def close(self) -> None:
        write_strong_tsv(self.path, self.events, self.decimals)


# ------------------------------------------------------------------------------ mp4 recorder


@dataclass(frozen=True)
class RecorderConfig:
    """The recording's format.

    Attributes:
        fps: video frame rate; each output frame shows the camera frame nearest its time.
        video_codec: FFmpeg encoder ("libx264", falling back to "mpeg4").
        crf: libx264 quality (lower is better).
        preset: libx264 speed preset (the encoder runs on the inference thread: keep it fast).
        audio_chunk_s: the preallocated audio copy buffer, seconds.
        overlay: how the heatmap and labels are drawn.
    """

    fps: float = 30.0
    video_codec: str = "libx264"
    crf: int = 23
    preset: str = "veryfast"
    audio_chunk_s: float = 1.0
    overlay: OverlayConfig = OverlayConfig()


class Mp4RecorderSink:
    """Records the camera with the overlay drawn, and the captured audio, while asked to.

    ``start_recording(path)`` and ``stop_recording()`` may be called from any thread while the
    scheduler runs: they leave a request that the inference thread (the writer's one owner)
    carries out at its next hop. Recording starts at that hop's stream time and covers the
    capture from there: audio from the audio ring, sample for sample, and video at
    ``config.fps``, frame k showing the camera frame nearest ``start + k / fps`` (written once
    the camera has delivered frames that far), overlaid with the newest hop's heatmap, top
    labels and active events. At stop (or at close) the file is completed up to the last hop's
    stream time, so audio and video have the same duration, and moved into place atomically
    (``models.io.media.AvFileWriter``).

    The frame ring must keep at least ``hop_s * fps + 1`` frames for every frame to make it into
    the recording; with fewer, nearer frames repeat. Audio the ring overwrote before it was
    copied is written as silence (``dropped_samples``) to keep the timing.

    Args:
        config: format.
        path: start recording to this file at the first hop.
    """

    def __init__(self, config: RecorderConfig = RecorderConfig(), path: str | os.PathLike | None = None) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._request: tuple[str, Path | None] | None = ("start", Path(path)) if path is not None else None
        self._done = threading.Event()
        self._owner: int | None = None
        self._context: SinkContext | None = None
        self._writer = None
        self._last = None
        self.recordings: list[Path] = []  # finished files, in order
        self.dropped_samples = 0
        self.error: BaseException | None = None

    # -- requests (any thread)

    def start_recording(self, path: str | os.PathLike) -> None:
        """Start a recording at the next hop (a recording in progress is finished first).

        Raises:
            FileNotFoundError: the file's folder does not exist.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"start_recording: the folder {path.parent} does not exist")
        with self._lock:
            self._request = ("start", path)
            self._done.clear()

    def stop_recording(self, timeout: float | None = 10.0) -> Path | None:
        """Finish the recording; returns its path (None when nothing was recording).

        From the inference thread itself (or when the scheduler is not running) the file is
        finished at once; from another thread this waits up to ``timeout`` seconds for the
        inference thread to finish it.

        Raises:
            TimeoutError: the inference thread did not get to it in time.
        """
        finished_before = len(self.recordings)
        self.request_stop()
        if self._owner is None or self._owner == threading.get_ident():
            self._apply()
        elif not self._done.wait(timeout):
            raise TimeoutError(f"stop_recording: the inference thread did not finish the file within {timeout} s")
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.recordings[-1] if len(self.recordings) > finished_before else None

    def request_stop(self) -> None:
        """Ask the inference thread to finish the recording at its next hop, and return at once
        (for a GUI thread that must not wait): the file then appears in ``recordings``, or a
        failure in ``error``."""
        with self._lock:
            self._request = ("stop", None)
            self._done.clear()

    @property
    def recording(self) -> bool:
        return self._writer is not None

    # -- sink calls (inference thread)

    def open(self, context: SinkContext) -> None:
        self._owner = threading.get_ident()
        self._context = context
        fr = context.frame_ring
        self._audio = np.zeros(max(1, int(self.config.audio_chunk_s * context.sample_rate)), np.float32)
        if fr is not None:
            h, w = int(fr.height), int(fr.width)
            self._overlay = Overlay(h, w, self.config.overlay)
            self._camera = np.zeros((h, w, 3), np.uint8)  # nearest camera frame, reused
            self._drawn = np.zeros((h, w, 3), np.uint8)  # what is encoded, reused
            self._probe = np.zeros((h, w, 3), np.uint8)  # latest(), for the newest frame's time

    def write(self, result) -> None:
        self._last = result
        self._apply()
        if self._writer is not None:
            self._append(self._writer, result, flush=False)

    def close(self) -> None:
        try:
            if self._writer is not None:
                self._finish()
        finally:
            self._done.set()

    # -- internals (inference thread)

    def _apply(self) -> None:
        with self._lock:
            request, self._request = self._request, None
        if request is None:
            return
        try:
            if self._writer is not None:
                self._finish()
            if request[0] == "start" and self._last is not None:
                self._begin(request[1], self._last)
            elif request[0] == "start":  # no hop yet: keep the request for the first one
                with self._lock:
                    self._request = self._request or request
        except Exception as e:  # a failed recording must not stop inference: hand it to the caller
            logger.error("recorder: %s: %s", type(e).__name__, e)
            self.error = e
            self._writer = None
        finally:
            if request[0] == "stop":
                self._done.set()

    def _begin(self, path: Path, result) -> None:
        from models.io.media import AvFileWriter

        ctx = self._context
        fr = ctx.frame_ring
        fps = Fraction(self.config.fps).limit_denominator(1001)
        video = dict(fps=fps, width=int(fr.width), height=int(fr.height)) if fr is not None else dict(fps=None)
        self._writer = AvFileWriter(path, sample_rate=ctx.sample_rate, video_codec=self.config.video_codec,
                                    crf=self.config.crf, preset=self.config.preset, **video)
        self._fps = fps
        self._t0 = result.stream_time
        self._audio_pos = result.end_index
        self._tick = 0

    def _append(self, writer, result, flush: bool) -> None:
        ctx = self._context
        # audio, exactly up to this hop's newest sample
        while self._audio_pos < result.end_index:
            n = min(result.end_index - self._audio_pos, self._audio.size)
            part = self._audio[:n]
            if not ctx.audio_ring.read(self._audio_pos + n, n, part):
                part[:] = 0.0
                self.dropped_samples += n
            writer.write_audio(part)
            self._audio_pos += n
        if ctx.frame_ring is None:
            return
        # video ticks up to this hop's stream time, and (unless finishing) no further than the camera got
        limit = result.stream_time
        if not flush:
            newest = ctx.frame_ring.latest(self._probe)
            limit = min(limit, -np.inf if newest is None else float(newest[0]) + 0.5 / float(self._fps))
        while True:
            t = self._t0 + self._tick / self._fps
            if float(t) >= limit - 1e-9:
                break
            if ctx.frame_ring.nearest(float(t), self._camera) is None:
                self._camera[...] = 0
            self._overlay.draw(self._camera, result.heatmap, result.top, result.active, out=self._drawn,
                               stream_time=float(t))
            writer.write_frame(self._drawn)
            self._tick += 1

    def _finish(self) -> None:
        writer, self._writer = self._writer, None
        try:
            if self._last is not None:
                self._append(writer, self._last, flush=True)  # up to the last hop's stream time
            path = writer.close()
        except BaseException:
            writer.abort()
            raise
        self.recordings.append(path)
        logger.info("recorder: wrote %s", path)


# ------------------------------------------------------------------------------ summary


@dataclass(frozen=True)
class RunSummary:
    """What a run did.

    Attributes:
        source: the source name.
        stream_seconds: stream time of the last hop.
        hops, skips, late_reads, frame_overwrites, missing_frames, resyncs: final counters.
        events: events that ended (including those closed at stop).
        events_by_label: label → count.
        latency_ms: stage → {"mean", "p95", "max", "n"} over the hops where the stage ran.
    """

    source: str
    stream_seconds: float
    hops: int
    skips: int
    late_reads: int
    frame_overwrites: int
    missing_frames: int
    resyncs: int
    events: int
    events_by_label: dict[str, int]
    latency_ms: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def format(self) -> str:
        """A few human-readable lines."""
        lines = [f"{self.source}: {self.stream_seconds:.1f} s, {self.hops} hops, {self.skips} skipped, "
                 f"{self.events} events, late reads {self.late_reads}, frame overwrites {self.frame_overwrites}, "
                 f"missing frames {self.missing_frames}, resyncs {self.resyncs}"]
        for stage, s in self.latency_ms.items():
            lines.append(f"  {stage:<24} mean {s['mean']:8.2f} ms   p95 {s['p95']:8.2f} ms   max {s['max']:8.2f} ms")
        return "\n".join(lines)


class SummarySink:
    """Counts and latency statistics, printed (and optionally saved as JSON) at close.

    Args:
        stream: where the summary is printed (default stderr; None prints nothing).
        path: a ``.json`` file to write the summary to, or None.
    """

    def __init__(self, stream: TextIO | None = sys.stderr, path: str | os.PathLike | None = None) -> None:
        self.stream = stream
        self.path = None if path is None else Path(path)
        self.summary: RunSummary | None = None
        self._source = ""
        self._latency: dict[str, list[float]] = {}
        self._events: dict[str, int] = {}
        self._last = None

    def open(self, context: SinkContext) -> None:
        self._source = context.source_name

    def write(self, result) -> None:
        self._last = result
        for e in result.ended:
            self._events[e.label] = self._events.get(e.label, 0) + 1
        if not result.final:
            for stage, ms in result.latency_ms.items():
                self._latency.setdefault(stage, []).append(float(ms))

    def close(self) -> None:
        c = self._last.counters if self._last is not None else None
        latency = {}
        for stage, values in self._latency.items():
            v = np.asarray(values)
            latency[stage] = {"mean": float(v.mean()), "p95": float(np.percentile(v, 95)), "max": float(v.max()),
                              "n": int(v.size)}
        self.summary = RunSummary(
            source=self._source, stream_seconds=float(self._last.stream_time) if self._last is not None else 0.0,
            hops=c.hops if c else 0, skips=c.skips if c else 0, late_reads=c.late_reads if c else 0,
            frame_overwrites=c.frame_overwrites if c else 0, missing_frames=c.missing_frames if c else 0,
            resyncs=c.resyncs if c else 0, events=sum(self._events.values()), events_by_label=dict(self._events),
            latency_ms=latency)
        if self.stream is not None:
            print(self.summary.format(), file=self.stream, flush=True)
        if self.path is not None:
            from models.core.atomic import atomic_write_text

            atomic_write_text(self.path, json.dumps(self.summary.to_dict(), indent=2) + "\n")
