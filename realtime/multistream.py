"""Several streams in one process: one capture feed per stream, one inference thread for all.

Data flow (one owner per thread)::

    stream 1: capture thread(s) ──▶ AudioRing 1, FrameRing 1 ─┐
    stream 2: capture thread(s) ──▶ AudioRing 2, FrameRing 2 ─┼──▶ [inference thread: MultiScheduler]
    ...                                                        │     cut the windows of every stream due
                                                               │     one call per shared model on all of them
                                                               │     (the model's ``batch``: its batch axis)
                                                               └──▶  each stream's rolling labels and sinks

Each stream has its own :class:`realtime.scheduler.Scheduler` (its rings, resampling streams,
rolling labels, counters and sinks), but none of them runs a thread: the
:class:`MultiScheduler` drives them. When a hop is due on some streams it cuts their windows
(``Scheduler._begin_hop``), groups the due runs by model, calls a model shared by several
streams once on all of their windows (``model.batch``, see ``models.core.live``), hands each
stream its share (``Scheduler._record``) and finishes each stream's hop (``_finish_hop``:
rolling labels, result, sinks) as soon as its last model ran. A model that keeps state
(``reset()``) is one adapter per stream on a shared runner
(``realtime.models.LiveModel.slot_for_stream``) and runs stream by stream. A model that runs
every n-th hop (the localizer) takes the streams in turns (``stagger``). A stream's
``model:<name>`` latency is the whole call it took part in.

:func:`run_streams` is ``avlive --source A --source B ...``: a source is a synthetic scene, a
media file or live devices (``--source camera:0+mic:default``, ``mic:DEVICE``, ``camera:CAMERA``).
The JSON lines of every stream go to one output, each line naming its stream (``source``); each
stream writes its own events TSV, scores TSV and recording (:func:`stream_output_path`).
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import re
import sys
import threading
import time
from pathlib import Path
from typing import Sequence, TextIO

from .capture import Capture
from .inference_thread import InferenceThread
from .pipeline import (DEVICE_SOURCE_FORMS, PipelineConfig, PipelineError, RunOutcome, Streams, make_sinks,
                       _stop_scheduler, build_streams, make_rings, with_device_source)
from .scheduler import HopResult, Scheduler, SchedulerConfig
from .sinks import JsonLinesSink

logger = logging.getLogger(__name__)

__all__ = ["MultiScheduler", "run_streams", "stream_output_path"]


class MultiScheduler(InferenceThread):
    """One inference thread for several :class:`Scheduler` s (never started themselves).

    Use ``start()`` / ``stop()``, or drive it with ``step()`` (tests); not both.

    Args:
        schedulers: one per stream; a model object shared by several of them (same ``id``)
            is called once per round on all of their windows when it offers ``batch``.
        thread_name: the inference thread's name.
        min_wait_s: shortest sleep while no stream has a hop due.
        gather_s: when a stream's hop is due, the streams whose hop is due within this many
            seconds are waited for (at most that long), so one call serves them all; the
            first stream's hop starts at most ``gather_s`` later. 0: never wait.
        stagger: a stateless model that runs every n-th hop (the localizer) runs for stream i
            on hop phase i mod n, so each hop serves about 1/n of the streams
            instead of all of them every n-th hop: an even load, and a lower p95 of the hop's
            cost, which every stream's labels wait for.

    Attributes:
        calls: model calls made (a batched call counts once).
        batch_sizes: batch size → how many calls had it.
    """

    def __init__(self, schedulers: Sequence[Scheduler], *, thread_name: str = "avlive-inference",
                 min_wait_s: float = 0.005, gather_s: float = 0.02, stagger: bool = True) -> None:
        self.schedulers = tuple(schedulers)
        if not self.schedulers:
            raise ValueError("MultiScheduler: expected at least one Scheduler")
        if len({id(s) for s in self.schedulers}) != len(self.schedulers):
            raise ValueError("MultiScheduler: the same Scheduler was given twice")
        self._init_thread(thread_name)
        self.min_wait_s = float(min_wait_s)
        if not gather_s >= 0:
            raise ValueError(f"MultiScheduler gather_s: expected seconds >= 0, found {gather_s!r}")
        self.gather_s = float(gather_s)
        self.stagger = bool(stagger)
        self.calls = 0
        self.batch_sizes: collections.Counter[int] = collections.Counter()

    def step(self) -> list[HopResult]:
        """One round now, on the calling thread: a hop on every stream, windows ending at each
        stream's newest sample. For tests and offline use; not while ``start()``ed."""
        self._check_steppable()
        if not self._opened:
            self._open(threaded=False)
        return self._round([(s, int(s.audio_ring.total_written)) for s in self.schedulers])

    # ---------------------------------------------------------------- thread

    def _open(self, threaded: bool) -> None:
        """Open every stream's sinks; set each stream's first hop (threaded: the next one due)
        and stagger the models that run every n-th hop."""
        self._opened = True
        for i, s in enumerate(self.schedulers):
            s._open()
            first = int(s.audio_ring.total_written) // s.hop_samples + (1 if threaded else 0)
            if threaded:
                s._next_hop = first
            if self.stagger:
                s._stagger_slots(i, first)

    def _loop(self, wait) -> None:
        self._open(threaded=True)
        gather_until = None  # monotonic deadline while waiting for streams about to be due
        while not self._stop_event.is_set():
            due, soon, sleep = [], 0, None
            for s in self.schedulers:
                total = int(s.audio_ring.total_written)
                missing = (s._next_hop * s.hop_samples - total) / s.sample_rate  # seconds
                if missing <= 0:
                    due.append((s, total))
                    continue
                soon += missing <= self.gather_s
                wait_s = min(max(missing, self.min_wait_s), s.config.hop_s)
                sleep = wait_s if sleep is None else min(sleep, wait_s)
            if due and soon:
                now = time.monotonic()
                gather_until = gather_until or now + self.gather_s
                if now < gather_until:
                    wait(min(self.min_wait_s, gather_until - now))
                    continue
            if due:
                gather_until = None
                self._round(due)
            else:
                wait(sleep)

    def _close(self) -> None:
        errors = []
        for s in self.schedulers:
            try:
                s._finish()
            except BaseException as e:  # every stream closes its sinks, whatever another did
                errors.append(e)
        if errors:
            raise errors[0]

    def _round(self, due: Sequence[tuple[Scheduler, int]]) -> list[HopResult]:
        """A hop on each ``(scheduler, end)``: cut every window; then the calls, one per shared
        model (batched across the streams that share it) and one per other run, in the order the
        streams list their models; each stream's hop is finished (rolling labels, result, sinks)
        as soon as its last model has run, so a stream whose localizer is not due this hop does
        not wait for the other streams' localizer."""
        works = [(s, s._begin_hop(end)) for s, end in due]
        groups: dict[object, list] = {}  # in order of first appearance: the labelers' calls first
        for s, work in works:
            for d in work.due:
                model = d.slot.spec.model
                shared = d.slot.reset is None and callable(getattr(model, "batch", None))
                groups.setdefault(id(model) if shared else (id(work), id(d)), []).append((s, work, d))
        waiting = {id(work): len(work.due) for _, work in works}
        outputs: dict[tuple[int, int], tuple[object, float, bool]] = {}  # (id(work), id(due)) -> (output, ms, reset)
        results: dict[int, HopResult] = {}

        def finish_ready() -> None:
            for s, work in works:
                if waiting[id(work)] == 0 and id(work) not in results:
                    for d in work.due:  # in the stream's own order, as its Scheduler would
                        s._record(work, d, *outputs[(id(work), id(d))])
                    results[id(work)] = s._finish_hop(work)

        finish_ready()  # streams with no model due this hop
        for items in groups.values():
            t0 = time.perf_counter()
            if len(items) > 1:
                outs = items[0][2].slot.spec.model.batch([s._model_args(d) for s, _w, d in items])
                if len(outs) != len(items):
                    raise ValueError(f"model {items[0][2].slot.spec.name!r}: batch() returned {len(outs)} outputs "
                                     f"for {len(items)} calls")
                resets = [False] * len(items)
            else:
                s, _work, d = items[0]
                out, reset = s._run_model(d)
                outs, resets = [out], [reset]
            ms = (time.perf_counter() - t0) * 1e3
            self.calls += 1
            self.batch_sizes[len(items)] += 1
            for (_s, work, d), out, reset in zip(items, outs, resets):
                outputs[(id(work), id(d))] = (out, ms, reset)
                waiting[id(work)] -= 1
            finish_ready()
        return [results[id(work)] for _, work in works]


# ------------------------------------------------------------------------------ the avlive run


def stream_output_path(path: str | Path, name: str) -> Path:
    """``out/events.tsv`` for stream ``synthetic:200001`` → ``out/events.synthetic-200001.tsv``."""
    path = Path(path)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "stream"
    return path.with_name(f"{path.stem}.{slug}{path.suffix}")


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: collections.Counter[str] = collections.Counter()
    out = []
    for n in names:
        seen[n] += 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def stream_configs(config: PipelineConfig, sources: Sequence[str]) -> list[PipelineConfig]:
    """One config per stream: ``config`` with the stream's source, a device source
    (``--source camera:0+mic:default``) turned into that stream's devices."""
    return [with_device_source(dataclasses.replace(config, source=src)) for src in sources]


def check_multistream(config: PipelineConfig, sources: Sequence[str]) -> None:
    """Fail fast on what several streams in one process cannot do.

    Raises:
        PipelineError: fewer than two sources, ``--mic``/``--camera`` (which would not say whose
            devices they are: each stream names its own, ``--source camera:0+mic:default``), a
            malformed device source, or ``--no-realtime``; each names what to do instead.
    """
    if len(sources) < 2:
        raise PipelineError("several streams: expected at least two --source values")
    if config.mic is not None or config.camera not in (None, "none"):
        raise PipelineError(f"--mic/--camera with several --source: name each stream's devices as a source instead "
                            f"({DEVICE_SOURCE_FORMS}, e.g. --source camera:0+mic:default)")
    stream_configs(config, sources)
    if not config.realtime:
        raise PipelineError("--no-realtime with several --source: not supported; several streams run at "
                            "real-time pace (run one avlive per file for offline scoring)")


def run_streams(config: PipelineConfig, sources: Sequence[str], models, *, log: TextIO | str | None = "stderr",
                stop: threading.Event | None = None) -> list[RunOutcome]:
    """Run every source as its own stream, one inference thread for all, until every stream
    ended, ``config.duration``, Ctrl-C or ``stop``.

    Args:
        config: the options (its ``source`` is ignored; ``events_out`` names one TSV per stream,
            :func:`stream_output_path`; ``jsonl`` receives every stream's lines).
        sources: the streams' ``--source`` values (synthetic scenes or media files).
        models: loaded models (closed by the caller); stateless ones are shared by the streams.
        log: where one-line notes go.
        stop: set it from another thread to end the run as Ctrl-C does.

    Returns:
        One outcome per stream, in order.
    """
    check_multistream(config, sources)
    if config.scores_out is not None and not models.labelers:
        raise PipelineError(f"--scores-out {config.scores_out}: this run has no labeler, so there are no scores to write")
    stop = stop or threading.Event()
    log = sys.stderr if log == "stderr" else log

    def note(line: str) -> None:
        if log is not None:
            print(f"avlive: {line}", file=log, flush=True)

    streams: list[Streams] = []
    try:
        for stream_config in stream_configs(config, sources):
            streams.append(build_streams(stream_config, models))
    except BaseException:
        for st in streams:
            st.close()
        raise
    names = _unique_names([st.name for st in streams])
    jsonl_target, jsonl_owned = None, False
    if config.jsonl == "-":
        jsonl_target = sys.stdout
    elif config.jsonl is not None:
        jsonl_target, jsonl_owned = open(config.jsonl, "w", encoding="utf-8"), True
    schedulers, captures, outputs = [], [], []
    try:
        for i, (st, name) in enumerate(zip(streams, names)):
            for line in st.notes:
                note(f"{name}: {line}")
            audio_ring, frame_ring = make_rings(st, models, config.hop_s)
            # each stream its own files (out/events.tsv -> out/events.<stream>.tsv); one JSON-lines output
            own = dataclasses.replace(config, jsonl=None, **{
                key: str(stream_output_path(getattr(config, key), name)) if getattr(config, key) else None
                for key in ("events_out", "scores_out", "record")})
            sinks, _, events, recorder, summary = make_sinks(own)
            jsonl = JsonLinesSink(jsonl_target, flush_each=True) if jsonl_target is not None else None
            if jsonl is not None:
                sinks.insert(0, jsonl)
            slots = models.stream_slots(config.localizer_every, first=i == 0)
            if frame_ring is None:
                slots = [s for s in slots if s.resolved_kind != "localizer"]
            try:
                scheduler = Scheduler(audio_ring, frame_ring, slots, sinks, SchedulerConfig(hop_s=config.hop_s),
                                      source_name=name)
            except ValueError as e:
                raise PipelineError(f"{name}: {str(e).splitlines()[0]} (pipeline hop --hop {config.hop_s:g} s)") from None
            capture = Capture(st.audio, st.video, audio_ring, frame_ring, realtime=True,
                              av_offset_ms=config.av_offset_ms, duration=config.duration, recovery=config.recovery,
                              on_status=lambda line, name=name: note(f"{name}: {line}"))
            scheduler.watch_capture(capture.stats)
            schedulers.append(scheduler)
            captures.append(capture)
            outputs.append((jsonl, events, recorder, summary))
        multi = MultiScheduler(schedulers)
        described = ", ".join(m.describe() for m in models.all)
        note(f"{len(streams)} streams ({', '.join(names)}) -> {described}; hop {config.hop_s:g} s, live, one inference "
             f"thread" + (f", {config.duration:g} s" if config.duration else ""))
        interrupted = _run(captures, multi, stop, note)
        if interrupted:
            note("Interrupted by user: stopped, every output flushed")
        shared = ", ".join(f"{n}×{b}" for b, n in sorted(multi.batch_sizes.items()))
        note(f"model calls: {multi.calls} (calls × batch size: {shared})")
    finally:
        for st in streams:
            st.close()
        if jsonl_owned:
            jsonl_target.close()
    return [RunOutcome(summary.summary, interrupted, tuple(recorder.recordings) if recorder else (),
                       jsonl.lines if jsonl else 0, events.count if events else 0)
            for jsonl, events, recorder, summary in outputs]


def _run(captures: Sequence[Capture], multi: MultiScheduler, stop: threading.Event, note) -> bool:
    """Capture every stream, infer on one thread; True when interrupted."""
    interrupted = False
    started: list[Capture] = []
    try:
        for c in captures:  # open every source first, then start every clock at one instant
            c.open_sources()
            started.append(c)
        t0 = time.monotonic()
        for c in captures:
            c.go(t0)
        multi.start()
        while not stop.is_set():
            if all(c.wait(timeout=0) for c in captures):  # every stream ended; raises a source's error
                _drain(multi)
                break
            if not multi.running:  # the inference thread failed; stop() re-raises its error
                break
            stop.wait(0.1)
        else:
            interrupted = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            for c in started:
                c.stop()
        finally:
            _stop_scheduler(multi, note)
    return interrupted or stop.is_set()


def _drain(multi: MultiScheduler, timeout: float = 5.0) -> None:
    """After capture ended: let the inference thread reach every stream's last whole hop."""
    deadline = time.monotonic() + timeout
    while multi.running and time.monotonic() < deadline:
        behind = [s for s in multi.schedulers
                  if (s.latest() is None or s.latest().hop < int(s.audio_ring.total_written) // s.hop_samples)]
        if not behind:
            return
        time.sleep(0.01)
