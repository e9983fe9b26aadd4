"""Where hop results go: JSON lines, a DCASE events TSV, an mp4 recording, a run summary.

Every sink has the same three calls, all made on the scheduler's inference thread (the one
owner): ``open(context)`` once before the first hop, ``write(result)`` for every
:class:`~realtime.scheduler.HopResult` (the last one has ``final=True`` and carries the events
closed at stop), and ``close()`` once at stop, which flushes everything, also when the run ends
by an error or Ctrl-C (``Scheduler.stop`` closes sinks in a ``finally``). The mp4 recorder's
``write`` only copies into a bounded queue; its own thread draws and encodes.

================== ==========================================================================
sink               writes
================== ==========================================================================
JsonLinesSink      one JSON object per hop (``realtime.schema``), to stdout or a file
EventsTsvSink      every ended event, DCASE strong-label TSV, at close (atomically)
ScoresTsvSink      one labeler's raw scores, a score table TSV (one row per frame or per run),
                   as they come
Mp4RecorderSink    camera frames with the overlay + the captured audio, between
                   ``start_recording(path)`` and ``stop_recording()``, any number of times,
                   encoded on its own thread (frames dropped when it falls behind, counted)
SummarySink        counts and mean / p95 latencies per stage, at close
================== ==========================================================================
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Protocol, TextIO

import numpy as np

from models.core.events import format_strong_tsv, read_strong_tsv, write_strong_tsv

from . import schema
from .overlay import Overlay, OverlayConfig

logger = logging.getLogger(__name__)

__all__ = [
    "EventsTsvSink",
    "JsonLinesSink",
    "Mp4RecorderSink",
    "RecorderConfig",
    "RunSummary",
    "ScoresTsvSink",
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


def _flush_and_close(stream: TextIO, owned: bool) -> None:
    """Flush a text sink's stream, and close it when the sink opened it (not stdout)."""
    try:
        stream.flush()
    finally:
        if owned:
            stream.close()


# ------------------------------------------------------------------------------ JSON lines


class JsonLinesSink:
    """One ``realtime.schema`` object per hop, one per line.

    Args:
        target: ``"-"`` for stdout, a path, or an open text stream (left open at close).
        flush_each: flush after every line (default: yes, so a pipe sees each hop at once and a
            killed run loses no written hop; a write per hop costs microseconds).
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
            self._stream, self._owned, flush = open(self.target, "w", encoding="utf-8"), True, True
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
        if self._stream is not None:
            _flush_and_close(self._stream, self._owned)
            self._stream = None


# ------------------------------------------------------------------------------ events TSV


class EventsTsvSink:
    """Every ended event as a DCASE strong-label TSV (filename, onset, offset, event_label;
    filename = the source name).

    Events are appended as they end (flushed at once, ``fsync``'d at most every ``fsync_s``
    seconds), so a run that is killed leaves every event that ended before the last sync; at
    close the file is rewritten sorted by onset (atomically). Memory stays constant however
    long the run.

    Args:
        path: the ``.tsv`` file.
        decimals: digits after the point for onsets and offsets.
        fsync_s: longest time between an event's end and its reaching the disk.
    """

    def __init__(self, path: str | os.PathLike, decimals: int = 3, fsync_s: float = 1.0) -> None:
        self.path = Path(path)
        self.decimals = decimals
        self.fsync_s = float(fsync_s)
        self.count = 0
        self._file = None
        self._synced = 0.0

    def open(self, context: SinkContext) -> None:
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"EventsTsvSink: the folder {self.path.parent} does not exist")
        self._file = open(self.path, "w", encoding="utf-8", newline="")
        self._file.write(format_strong_tsv((), self.decimals))
        self._sync(force=True)

    def write(self, result) -> None:
        if not result.ended or self._file is None:
            return
        d = self.decimals
        self._file.write("".join(f"{e.filename}\t{e.onset:.{d}f}\t{e.offset:.{d}f}\t{e.label}\n" for e in result.ended))
        self.count += len(result.ended)
        self._sync()

    def _sync(self, force: bool = False) -> None:
        self._file.flush()
        now = time.monotonic()
        if force or now - self._synced >= self.fsync_s:
            os.fsync(self._file.fileno())
            self._synced = now

    def close(self) -> None:
        f, self._file = self._file, None
        if f is None:
            return
        try:
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        write_strong_tsv(self.path, read_strong_tsv(self.path), self.decimals)  # sorted by onset


# ------------------------------------------------------------------------------ scores TSV


class ScoresTsvSink:
    """One labeler's raw (unsmoothed) scores as a score table: the input of threshold-free
    metrics (``models.evaluation.psds.read_score_tsv``, ``sed_scores_eval``).

    The file has the header ``onset  offset  <label 1> ... <label C>`` (tab-separated, the
    labeler's labels in score order) and one row per step of the labeler, times in stream
    seconds as in the events TSV:

    * a labeler returning ``FrameScores``: one row per frame, from its centre less half the
      frame spacing to its centre plus half; of each window only the frames newer than those
      written (more than half a spacing after the newest written), and none centred before
      stream time 0, as the rolling labels take them;
    * a labeler returning ``(C,)`` scores: one row per run, from its previous run's window end
      to this run's (the first: one pipeline hop before it, not before 0).

    Rows are contiguous: each starts where the previous one ended (after skipped hops a row
    covers the gap, holding the scores that came after it), and none ends after the window it
    came from, so every row lies within the stream. Times are written with ``decimals``
    digits and a row that would end no later than the previous one (after rounding) is left
    out. The file is written as the run goes, flushed after every hop (so it can be followed
    while the run lasts), and closed at stop; it is not replaced atomically.

    Args:
        path: the ``.tsv`` file.
        labeler: the labeler's name (``SinkContext.labels``); None: the first labeler.
        decimals: digits after the point for onsets and offsets.
    """

    def __init__(self, path: str | os.PathLike, labeler: str | None = None, decimals: int = 6) -> None:
        self.path = Path(path)
        self.labeler = labeler
        self.decimals = decimals
        self.rows = 0
        self._stream: TextIO | None = None
        self._name = ""
        self._hop_s = 0.0
        self._end: float | None = None  # offset of the last row written (rounded)
        self._consumed = -math.inf  # centre of the newest frame written
        self._spacing = 0.0  # the frame spacing seen last

    def open(self, context: SinkContext) -> None:
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"ScoresTsvSink: the folder {self.path.parent} does not exist")
        if not context.labels:
            raise ValueError("ScoresTsvSink: this run has no labeler, so there are no scores to write")
        name = self.labeler if self.labeler is not None else next(iter(context.labels))
        if name not in context.labels:
            raise ValueError(f"ScoresTsvSink: no labeler {name!r} in this run (labelers: {list(context.labels)})")
        self._name, self._hop_s = name, float(context.hop_s)
        self._stream = open(self.path, "w", encoding="utf-8", newline="\n")
        self._stream.write("\t".join(("onset", "offset", *context.labels[name])) + "\n")
        self._stream.flush()

    def write(self, result) -> None:
        name = self._name
        if self._stream is None or name not in result.scores:
            return  # not run at this hop (or the final result)
        run_end = next((r.end_time for r in result.runs if r.name == name), float(result.stream_time))
        if name in result.frame_scores:
            values, times = result.frame_scores[name]
            if times.size > 1:
                self._spacing = float(np.min(np.diff(times)))
            spacing = self._spacing or self._hop_s
            new = (times > self._consumed + 0.5 * spacing) & (times >= 0.0)
            lines = []
            for i in np.flatnonzero(new):
                line = self._row(float(times[i]) - 0.5 * spacing, min(float(times[i]) + 0.5 * spacing, run_end),
                                 values[i])
                if line:
                    lines.append(line)
            if new.any():
                self._consumed = float(times[-1])
        else:
            line = self._row(run_end - self._hop_s, run_end, result.scores[name])
            lines = [line] if line else []
        if lines:
            self._stream.write("".join(lines))
            self._stream.flush()

    def _row(self, start: float, end: float, values: np.ndarray) -> str:
        """One line for a row ending at ``end`` (starting where the previous row ended, else at
        ``start``, not before 0), or "" when it would end no later than the previous one."""
        d = self.decimals
        end = round(end, d)
        start = self._end if self._end is not None else round(max(0.0, start), d)
        if not end > start:
            return ""
        self._end = end
        self.rows += 1
        return (f"{start:.{d}f}\t{end:.{d}f}\t" + "\t".join(f"{float(v):.7g}" for v in values) + "\n")

    def close(self) -> None:
        if self._stream is not None:
            _flush_and_close(self._stream, owned=True)
            self._stream = None


# ------------------------------------------------------------------------------ mp4 recorder


WHEN_FULL = ("drop", "wait")


@dataclass(frozen=True)
class RecorderConfig:
    """The recording's format, and the queue between the inference thread and the recorder thread.

    Attributes:
        fps: video frame rate; each output frame shows the camera frame nearest its time.
        video_codec: FFmpeg encoder ("libx264", falling back to "mpeg4").
        crf: libx264 quality (lower is better).
        preset: libx264 speed preset. The encoder runs on the recorder thread: a preset slower
            than the stream fills the queue, and frames are dropped (``dropped_frames``).
        queue_frames: video frames the queue holds (allocated once at ``open``:
            ``(queue_frames, H, W, 3)`` uint8, 4.5 MB for 30 frames of 224 × 224). At 30 fps the
            default holds one second, four hops of 0.25 s.
        audio_chunk_s: seconds per audio block in the queue. The queue holds enough blocks for
            the time its frames span plus two hops (``ceil((queue_frames / fps + 2 * hop_s) /
            audio_chunk_s) + 1``), so audio is not dropped while the frames still fit.
        when_full: what a full queue does to the newest frame or audio block: ``"drop"`` it
            (inference never waits; the frames are counted in ``dropped_frames``, the mp4 shows
            the previous frame longer and plays dropped audio as silence, so its timing holds),
            or ``"wait"`` for room (backpressure, for offline runs that run every hop anyway
            and want every frame). None: ``"drop"``; ``run_pipeline`` picks ``"wait"`` for its
            offline runs.
        close_timeout_s: how long ``close`` (and waiting for room at stop) gives the recorder
            thread to write what it accepted before it raises ``TimeoutError``.
        overlay: how the heatmap and labels are drawn.
    """

    fps: float = 30.0
    video_codec: str = "libx264"
    crf: int = 23
    preset: str = "veryfast"
    queue_frames: int = 30
    audio_chunk_s: float = 0.1
    when_full: str | None = None
    close_timeout_s: float = 10.0
    overlay: OverlayConfig = OverlayConfig()

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, (int, float, Fraction)) and 0 < self.fps < 1000):
            raise ValueError(f"RecorderConfig.fps: expected frames per second in (0, 1000), found {self.fps!r}")
        if isinstance(self.queue_frames, bool) or not isinstance(self.queue_frames, int) or self.queue_frames < 1:
            raise ValueError(f"RecorderConfig.queue_frames: expected an int >= 1, found {self.queue_frames!r}")
        if not (isinstance(self.audio_chunk_s, (int, float)) and self.audio_chunk_s > 0):
            raise ValueError(f"RecorderConfig.audio_chunk_s: expected seconds > 0, found {self.audio_chunk_s!r}")
        if self.when_full is not None and self.when_full not in WHEN_FULL:
            raise ValueError(f"RecorderConfig.when_full: expected one of {WHEN_FULL} or None, found {self.when_full!r}")
        if not (isinstance(self.close_timeout_s, (int, float)) and self.close_timeout_s > 0):
            raise ValueError(f"RecorderConfig.close_timeout_s: expected seconds > 0, found {self.close_timeout_s!r}")


@dataclass
class _Take:
    """The recording in progress, as the inference thread sees it (its alone).

    Attributes:
        number: 1 for the sink's first recording, 2 for the next, ...
        t0: stream time of its start, seconds.
        audio_pos: stream index of the next sample to queue.
        tick: index of the next video frame (at ``t0 + tick / fps``).
    """

    number: int
    t0: float
    audio_pos: int
    tick: int = 0


class Mp4RecorderSink:
    """Records the camera with the overlay drawn, and the captured audio, while asked to.

    Two threads, one owner each::

        inference thread (write)                          recorder thread ("avlive-recorder")
          copies the hop's audio and camera frames   ──▶    draws the overlay, encodes
          into preallocated queue slots                     (owns the PyAV container)
                       bounded queue: queue_frames frames + audio blocks

    ``write`` only copies: the audio that arrived since the previous hop (from the audio ring)
    and, at ``config.fps``, frame k = the camera frame nearest ``start + k / fps`` (read with
    ``FrameRing.nearest(..., take=False)``, so the frame ring's ``overwrites`` still counts the
    frames the models never took), each into a free slot of the queue with a reference to the
    hop's result. When no slot is free the newest item is dropped (``config.when_full``),
    counted in ``dropped_frames`` (video frames, also in the scheduler's counters, the JSON
    lines and the run summary) and ``dropped_samples`` (audio, which plays as silence); the file
    keeps its timing (frame k has pts k). At stop (the final hop, ``close``, a
    ``stop_recording`` called on the inference thread) ``write`` waits for room instead: nothing
    runs in real time any more, and the final counters are complete. The recorder thread draws
    the overlay (the hop's heatmap, top labels and active events) onto each frame and encodes
    it. It draws from the queued ``HopResult`` itself, a hop or more later: results are
    immutable, and a localizer returns a new heatmap map per call (as
    ``models.l3.network.heatmap_from_cells`` does).

    ``start_recording(path)`` and ``stop_recording()`` may be called from any thread while the
    scheduler runs: they leave a request that the inference thread carries out at its next
    hop. Recording starts at that hop's stream time and covers the capture from there (a
    ``path`` given to the constructor, as ``--record`` does, starts at stream time 0: the
    first hop's audio and frames are still in the rings then); frames are queued once the
    camera has delivered frames that far. At stop the file is completed up to the last hop's
    stream time, at close (after the final result) up to the newest sample captured, the tail
    after the last whole hop included; audio and video have the same duration (the last
    frame is shown until then when the frames there were dropped), and moved into place
    atomically (``models.io.media.AvFileWriter``) by the recorder thread. ``close`` drains the queue
    (everything accepted is written), joins the thread within ``config.close_timeout_s`` and
    raises what failed on the recorder thread unless ``stop_recording`` raised it already. A
    failed recording never stops inference: the failure is logged and left in ``error``.

    The frame ring must keep at least ``hop_s * fps + 1`` frames for every frame to make it into
    the recording; with fewer, nearer frames repeat. Audio the ring overwrote before it was
    copied is written as silence (``dropped_samples``) to keep the timing.

    Args:
        config: format and queue.
        path: record the whole run to this file, from stream time 0 (written at the first hop).
    """

    def __init__(self, config: RecorderConfig = RecorderConfig(), path: str | os.PathLike | None = None) -> None:
        self.config = config
        self.wait_when_full = config.when_full == "wait"
        self._lock = threading.Lock()  # guards the request
        self._seq = 0  # requests made
        self._request: tuple[str, Path | None, int] | None = None
        self._from_start = path is not None  # the first take covers the capture from stream time 0
        if path is not None:
            self._seq = 1
            self._request = ("start", Path(path), 1)
        self._owner: int | None = None
        self._closed = False
        self._context: SinkContext | None = None
        self._last = None
        self._take: _Take | None = None
        self._takes = 0
        # between the threads, under _cv: the queue, the free slots, what is done or failed
        self._cv = threading.Condition()
        self._items: deque = deque()
        self._free_frames: list[int] = []
        self._free_audio: list[int] = []
        self._completed = 0  # the newest request the recorder thread has carried out
        self._failed = 0  # the newest recording (take number) that failed on the recorder thread
        self._stalled = False  # a wait for room timed out: the recorder thread is stuck
        self._thread: threading.Thread | None = None
        self.recordings: list[Path] = []  # finished files, in order
        self.dropped_frames = 0
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
        self._ask("start", path)

    def stop_recording(self, timeout: float | None = 10.0) -> Path | None:
        """Finish the recording; returns its path (None when nothing was recording).

        Waits up to ``timeout`` seconds for the inference thread to reach its next hop (at once
        when called from the inference thread itself, or when the scheduler is not running) and
        for the recorder thread to write what was queued and close the file.

        Raises:
            TimeoutError: the file was not finished in time.
            Exception: what made the recording fail on the recorder thread.
        """
        finished_before = len(self.recordings)
        seq = self.request_stop()
        if self._owner is None or self._closed or self._owner == threading.get_ident():
            self._apply(wait=True)  # the caller waits for the file anyway: no frame dropped
        with self._cv:
            if not self._cv.wait_for(lambda: self._completed >= seq, timeout):
                raise TimeoutError(f"stop_recording: the recording was not finished within {timeout} s")
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.recordings[-1] if len(self.recordings) > finished_before else None

    def take_error(self) -> BaseException | None:
        """The recorder's failure, handed over once: whoever takes it reports it (the window shows
        it in its status line), and neither ``stop_recording`` nor ``close`` raises it again."""
        with self._cv:
            error, self.error = self.error, None
        return error

    def request_stop(self) -> int:
        """Ask the inference thread to finish the recording at its next hop, and return at once
        (for a GUI thread that must not wait): the file then appears in ``recordings``, or a
        failure in ``error``. Returns the request's number."""
        return self._ask("stop", None)

    def _ask(self, kind: str, path: Path | None) -> int:
        with self._lock:
            self._seq += 1
            self._request = (kind, path, self._seq)
            return self._seq

    @property
    def recording(self) -> bool:
        """A recording was started and has not been stopped or failed."""
        take = self._take
        return take is not None and take.number > self._failed

    # -- sink calls (inference thread)

    def open(self, context: SinkContext) -> None:
        """Allocate the queue and start the recorder thread."""
        self._owner = threading.get_ident()
        self._context = context
        cfg = self.config
        fr = context.frame_ring
        self._fps = Fraction(cfg.fps).limit_denominator(1001)
        block = max(1, int(round(cfg.audio_chunk_s * context.sample_rate)))
        blocks = math.ceil((cfg.queue_frames / float(self._fps) + 2 * context.hop_s) / cfg.audio_chunk_s) + 1
        self._audio = np.zeros((blocks, block), np.float32)  # (blocks, samples): queued audio
        self._free_audio = list(range(blocks))
        self._frames = None
        if fr is not None:
            h, w = int(fr.height), int(fr.width)
            self._frames = np.zeros((cfg.queue_frames, h, w, 3), np.uint8)  # (queue_frames, H, W, 3): queued frames
            self._free_frames = list(range(cfg.queue_frames))
        self._thread = threading.Thread(target=self._run, name="avlive-recorder", daemon=True)
        self._thread.start()

    def write(self, result) -> None:
        self._last = result
        wait = self.wait_when_full or result.final  # at stop nothing is dropped: there is time
        self._apply(wait)
        take = self._take
        if take is not None and take.number <= self._failed:
            self._take = None  # failed on the recorder thread (see error): queue nothing more for it
        elif take is not None:
            self._queue(take, result, flush=False, wait=wait)

    def close(self) -> None:
        """Finish the recording, let the recorder thread write everything queued, join it.

        Raises:
            TimeoutError: the recorder thread did not finish within ``config.close_timeout_s``.
            Exception: what failed on the recorder thread (not yet raised by ``stop_recording``).
        """
        self._closed = True
        try:
            with self._lock:
                request, self._request = self._request, None
            if self._take is not None:
                self._end_take(wait=True)
            if request is not None:
                self._put(("done", request[2]))
        finally:
            thread = self._thread
            if thread is not None:
                self._put(("quit",))
                thread.join(self.config.close_timeout_s)
            with self._cv:
                self._completed = self._seq  # nobody waits past the end
                self._cv.notify_all()
        if thread is not None and thread.is_alive():
            raise TimeoutError(f"Mp4RecorderSink.close: the recorder thread is still writing after "
                               f"{self.config.close_timeout_s} s ({len(self._items)} items queued)")
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    # -- internals (inference thread)

    def _apply(self, wait: bool) -> None:
        with self._lock:
            request = self._request
            if request is None or (request[0] == "start" and self._last is None):
                return  # nothing asked, or a start before the first hop: kept for it
            self._request = None
        kind, path, seq = request
        if self._take is not None:
            self._end_take(wait)
        if kind == "start":
            self._takes += 1
            r = self._last
            if seq == 1 and self._from_start:  # asked before the run (--record): the capture from its start
                self._take = _Take(self._takes, 0.0, 0)  # audio the ring no longer holds plays as silence
            else:
                self._take = _Take(self._takes, float(r.stream_time), int(r.end_index))
            self._put(("begin", self._takes, path, self._take.t0, self._take.audio_pos))
        self._put(("done", seq))

    def _end_take(self, wait: bool) -> None:
        take, self._take = self._take, None
        if take.number <= self._failed:
            return
        if self._last is not None:
            self._queue(take, self._last, flush=True, wait=wait)  # up to the last hop's stream time
        self._put(("finish", take.number, take.tick, take.audio_pos))

    def _queue(self, take: _Take, result, flush: bool, wait: bool) -> None:
        """Copy the audio up to this hop's newest sample and the frames up to its stream time
        (unless finishing, no further than the camera got) into the queue. Finishing at the
        final result, up to the newest sample captured: the tail after the last whole hop too."""
        ctx = self._context
        ring = ctx.audio_ring
        size = self._audio.shape[1]
        end = int(result.end_index)
        if flush and result.final:
            end = max(end, int(ring.total_written))
        while take.audio_pos < end:
            n = min(end - take.audio_pos, size)
            block = self._reserve(self._free_audio, wait)
            if block is not None and not ring.read(take.audio_pos + n, n, self._audio[block, :n]):
                self._release(self._free_audio, block)  # overwritten in the ring already
                block = None
            if block is None:
                self.dropped_samples += n  # the recorder thread writes silence in its place
            else:
                self._put(("audio", take.number, block, n, take.audio_pos))
            take.audio_pos += n
        fr = ctx.frame_ring
        if fr is None:
            return
        limit = end / ctx.sample_rate
        if not flush:
            newest = fr.newest()
            limit = min(limit, -math.inf if newest is None else newest[0] + 0.5 / float(self._fps))
        while True:
            t = take.t0 + take.tick / float(self._fps)
            if t >= limit - 1e-9:
                break
            slot = self._reserve(self._free_frames, wait)
            if slot is None:
                self.dropped_frames += 1
            else:
                if fr.nearest(t, self._frames[slot], take=False) is None:
                    self._frames[slot] = 0
                self._put(("frame", take.number, slot, take.tick, t, result))
            take.tick += 1

    def _reserve(self, free: list[int], wait: bool) -> int | None:
        """A free slot, or None when the queue is full (after waiting for room, with ``wait``)."""
        with self._cv:
            if not free and wait and not self._stalled and self._thread is not None and self._thread.is_alive():
                if not self._cv.wait_for(lambda: bool(free), self.config.close_timeout_s):
                    self._stalled = True
                    logger.error("recorder: no room in the queue for %s s; dropping from now on",
                                 self.config.close_timeout_s)
            return free.pop() if free else None

    def _release(self, free: list[int], slot: int) -> None:
        with self._cv:
            free.append(slot)
            self._cv.notify_all()

    def _put(self, item: tuple) -> None:
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._drop(item)  # not opened (or closed): nothing to write, only requests to answer
                return
            self._items.append(item)
            self._cv.notify_all()

    def _drop(self, item: tuple) -> None:
        """Forget an item, freeing its slot (caller holds ``_cv``)."""
        if item[0] == "frame":
            self._free_frames.append(item[2])
        elif item[0] == "audio":
            self._free_audio.append(item[2])
        elif item[0] == "done":
            self._completed = max(self._completed, item[1])
        self._cv.notify_all()

    # -- the recorder thread: owns the writer, the overlay and what it draws

    def _run(self) -> None:
        w = _Writing()
        try:
            fr = self._context.frame_ring
            if fr is not None:
                w.overlay = Overlay(int(fr.height), int(fr.width), self.config.overlay)
                w.drawn = np.zeros((int(fr.height), int(fr.width), 3), np.uint8)  # (H, W, 3): what is encoded
            w.silence = np.zeros(self._audio.shape[1], np.float32)  # (block,): written where audio was dropped
            self._loop(w)
        except BaseException as e:  # the thread itself failed: nothing more is written; close() raises it
            logger.error("recorder thread failed: %s: %s", type(e).__name__, e)
            with self._cv:
                self.error = self.error or e
        finally:
            if w.writer is not None:  # a recording without its finish (close always sends one)
                w.writer.abort()

    def _loop(self, w: "_Writing") -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(self._items))
                item = self._items.popleft()
            kind = item[0]
            if kind == "quit":
                break
            w.slot_freed = False
            try:
                if kind != "done":
                    self._handle(item, w)
            except Exception as e:  # a failed recording must not stop inference: hand it to the caller
                logger.error("recorder: %s: %s", type(e).__name__, e)
                writer, w.writer = w.writer, None
                if writer is not None:
                    writer.abort()
                with self._cv:
                    self.error = e
                    self._failed = max(self._failed, item[1])
            finally:
                if not w.slot_freed:
                    with self._cv:
                        self._drop(item)  # a slot free again, or a request carried out

    def _handle(self, item: tuple, w: "_Writing") -> None:
        kind, number = item[0], item[1]
        fps = float(self._fps)
        if kind == "begin":
            from models.io.media import AvFileWriter

            if w.writer is not None:
                w.writer.abort()
                w.writer = None
            _, _, path, _, audio_start = item
            ctx = self._context
            fr = ctx.frame_ring
            video = dict(fps=None)
            if fr is not None:
                video = dict(fps=self._fps, width=int(fr.width), height=int(fr.height))
            # fragmented MP4 with a keyframe (and so a fragment) every second, under a visible
            # .partial name until it closes: a killed run leaves a file that plays to its last second
            w.writer = AvFileWriter(path, sample_rate=ctx.sample_rate, video_codec=self.config.video_codec,
                                    crf=self.config.crf, preset=self.config.preset, partial_name=True,
                                    container_options=_fragmented(path),
                                    video_options=_keyframe_every_second(self._fps) if fr is not None else None,
                                    **video)
            w.number, w.audio_at, w.last_tick = number, audio_start, -1
            if w.drawn is not None:
                w.drawn[...] = 0
            return
        writer = w.writer
        if writer is None or number != w.number:
            return  # the recording failed (or never began): its items are let go
        if kind == "audio":
            _, _, block, n, start = item
            self._silence_until(w, start)
            writer.write_audio(self._audio[block, :n])  # (copied into the encoder's buffer)
            w.audio_at = start + n
        elif kind == "frame":
            _, _, slot, tick, t, result = item
            w.overlay.draw(self._frames[slot], result.heatmap, result.top, result.active, out=w.drawn, stream_time=t)
            with self._cv:  # drawn: the slot is free again before the slower encoding
                self._drop(item)
            w.slot_freed = True
            writer.write_frame(w.drawn, t=tick / fps)  # pts = tick: dropped frames leave gaps, not shifts
            w.last_tick = tick
        elif kind == "finish":
            _, _, end_tick, end_audio = item
            self._silence_until(w, end_audio)
            if w.drawn is not None and w.last_tick < end_tick - 1:
                # the last frames were dropped: show the last one drawn until the end, as long as the audio
                writer.write_frame(w.drawn, t=(end_tick - 1) / fps)
            w.writer = None
            try:
                path = writer.close()
            except BaseException:
                writer.abort()
                raise
            self.recordings.append(path)
            logger.info("recorder: wrote %s", path)

    @staticmethod
    def _silence_until(w: "_Writing", end: int) -> None:
        """Silence for the audio dropped before stream index ``end``, so the timing holds."""
        while w.audio_at < end:
            n = min(end - w.audio_at, w.silence.size)
            w.writer.write_audio(w.silence[:n])
            w.audio_at += n


@dataclass
class _Writing:
    """The recorder thread's state (its alone).

    Attributes:
        writer: the open ``AvFileWriter``, or None.
        number: the take it writes.
        audio_at: stream index of the next sample it writes.
        last_tick: the newest video frame written (-1: none yet).
        slot_freed: the current item's queue slot was freed already.
        overlay, drawn: the ``Overlay`` and its (H, W, 3) uint8 output (None without video).
        silence: (block,) float32 zeros.
    """

    writer: Any = None
    number: int = 0
    audio_at: int = 0
    last_tick: int = -1
    slot_freed: bool = False
    overlay: Overlay | None = None
    drawn: np.ndarray | None = None
    silence: np.ndarray | None = None


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
        latency_ms: stage → {"mean", "p95", "max", "n"} over the hops where the stage ran (p95
            from a fixed histogram: within 1 % of the exact value, in constant memory).
        recorder_dropped_frames: video frames the mp4 recorder dropped (its queue was full).
        gap_samples, input_overflows, device_losses, device_recoveries: the capture's counters
            (silence written for missing audio, input lost by the devices, devices lost / back).
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
    recorder_dropped_frames: int = 0
    gap_samples: int = 0
    input_overflows: int = 0
    device_losses: int = 0
    device_recoveries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def format(self) -> str:
        """A few human-readable lines."""
        lines = [f"{self.source}: {self.stream_seconds:.1f} s, {self.hops} hops, {self.skips} skipped, "
                 f"{self.events} events, late reads {self.late_reads}, frame overwrites {self.frame_overwrites}, "
                 f"missing frames {self.missing_frames}, resyncs {self.resyncs}, "
                 f"recorder dropped frames {self.recorder_dropped_frames}",
                 f"  audio gaps {self.gap_samples} samples, input overflows {self.input_overflows}, "
                 f"devices lost {self.device_losses}, back {self.device_recoveries}"]
        for stage, s in self.latency_ms.items():
            lines.append(f"  {stage:<24} mean {s['mean']:8.2f} ms   p95 {s['p95']:8.2f} ms   max {s['max']:8.2f} ms")
        return "\n".join(lines)


def _keyframe_every_second(fps) -> dict[str, str]:
    """A keyframe (a fragment boundary) every second, and no B-frames (no reordering delay in
    a recording that is watched live)."""
    return {"g": str(max(1, round(float(fps)))), "bf": "0"}


def _fragmented(path) -> dict[str, str] | None:
    """Muxer options that keep a recording playable when the process dies (MP4 and MOV: fragments;
    Matroska is written as it goes anyway). ``negative_cts_offsets``: without an edit list the
    AAC encoder's priming delay would otherwise shift every video frame after the first by
    1024 samples (measured: frame 1 at 97 ms instead of 33 ms at 30 fps, 16 kHz)."""
    if Path(path).suffix.lower() in (".mp4", ".mov"):
        return {"movflags": "+frag_keyframe+delay_moov+default_base_moof", "flush_packets": "1"}
    return None


class LatencyHistogram:
    """Mean, max and percentiles of milliseconds in constant memory, for runs of any length:
    log-spaced bins from 1 µs to 1000 s, 1 % wide, so a percentile is within 1 % of the exact
    one (the sample at the percentile's rank is reported as its bin's geometric centre)."""

    LOW_MS, HIGH_MS, RATIO = 1e-3, 1e6, 1.01
    _PER_LOG = 1.0 / math.log(RATIO)  # bins per unit of log(ms)

    def __init__(self) -> None:
        self._bins = math.ceil(math.log(self.HIGH_MS / self.LOW_MS) * self._PER_LOG) + 2
        self.counts = np.zeros(self._bins, np.int64)
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, ms: float) -> None:
        self.n += 1
        self.total += ms
        self.max = max(self.max, ms)
        # math on one float each hop and stage (numpy's ufuncs cost microseconds on scalars)
        k = 0 if ms <= self.LOW_MS else min(self._bins - 1, 1 + int(math.log(ms / self.LOW_MS) * self._PER_LOG))
        self.counts[k] += 1

    def percentile(self, q: float) -> float:
        rank = int(np.ceil(q / 100.0 * self.n))
        k = int(np.searchsorted(np.cumsum(self.counts), max(rank, 1)))
        if k == 0:
            return self.LOW_MS
        return min(self.max, self.LOW_MS * self.RATIO ** (k - 0.5))

    def stats(self) -> dict[str, float]:
        return {"mean": self.total / self.n, "p95": self.percentile(95), "max": self.max, "n": self.n}


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
        self._latency: dict[str, LatencyHistogram] = {}
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
                histogram = self._latency.get(stage)
                if histogram is None:
                    histogram = self._latency[stage] = LatencyHistogram()
                histogram.add(float(ms))

    def close(self) -> None:
        c = self._last.counters if self._last is not None else None
        latency = {stage: h.stats() for stage, h in self._latency.items() if h.n}
        self.summary = RunSummary(
            source=self._source, stream_seconds=float(self._last.stream_time) if self._last is not None else 0.0,
            hops=c.hops if c else 0, skips=c.skips if c else 0, late_reads=c.late_reads if c else 0,
            frame_overwrites=c.frame_overwrites if c else 0, missing_frames=c.missing_frames if c else 0,
            resyncs=c.resyncs if c else 0, events=sum(self._events.values()), events_by_label=dict(self._events),
            latency_ms=latency, recorder_dropped_frames=c.recorder_dropped_frames if c else 0,
            gap_samples=c.gap_samples if c else 0, input_overflows=c.input_overflows if c else 0,
            device_losses=c.device_losses if c else 0, device_recoveries=c.device_recoveries if c else 0)
        if self.stream is not None:
            print(self.summary.format(), file=self.stream, flush=True)
        if self.path is not None:
            from models.core.atomic import atomic_write_text

            atomic_write_text(self.path, json.dumps(self.summary.to_dict(), indent=2) + "\n")
