"""The inference scheduler: one thread that, every hop, cuts each model's window and runs it.

Data flow (one owner per thread)::

    capture threads ──write──▶ AudioRing, FrameRing ──read──▶ [inference thread]
                                                           │  resample per rate (soxr streams)
                                                           │  window + frame copy (preallocated)
                                                           │  labelers / localizer (each at its own rate)
                                                           │  rolling labels (smoothing + hysteresis)
                                                           ├─▶ sinks (JSON lines, events TSV, summary;
                                                           │   the mp4 recorder's bounded queue ──▶ [recorder
                                                           │   thread: overlay + encoding])
                                                           └─▶ newest-result slot (the GUI reads it)

**Hops.** Hop k is due when the audio ring's ``total_written`` reaches ``k * hop_samples``.
The thread then runs one hop whose windows end at the *newest* sample at that moment (one
snapshot of ``total_written`` per hop). If inference fell behind so that whole hop boundaries
passed while it ran, those hops are skipped and counted (``Counters.skips``): the scheduler
jumps to the newest window and never works through a backlog. A model with ``every=n`` runs
on the first hop at least ``n`` hop indices after its previous run (a localizer at a third of
the labeler's rate: ``every=3``). The pipeline's hop is the base tick: a model that declares its
own hop (``WindowSpec.hop_seconds``, a whole multiple of it) runs on the first hop at least that
many ticks after its previous run.

**State.** A model with a ``reset()`` method keeps state between calls; the scheduler calls
``reset()`` just before the model's first run and before every run that is not exactly one of
the model's hops after its previous run (hops skipped because inference fell behind, a run
dropped for a missing frame or a late read, its resampling stream restarted), and counts the
calls (``Counters.resets``, in the JSON lines since schema 1.2, and ``ModelRun.reset`` per run).
Consecutive windows of such a model end at the newest sample of their hops, so they are one
model hop apart give or take a capture block (exactly, offline). A model whose state *is* the
audio before its newest hop (``WindowSpec.exact_hops``: the streaming CRNN) needs windows exactly
one hop apart: its windows end on a grid of its hop, placed at its first run half a hop behind
the newest sample, so the resampler's hold-back (6-36 ms, varying per hop) and the capture
blocks seldom move the newest sample across two grid points in one hop: each run takes the next
grid point; a hop where it is not there yet runs nothing (the next tick takes it). When two or
three grid points have arrived (jitter beyond half a hop, a skipped hop) an audio-only model
catches up: it is called on each of them in turn within the tick, oldest first, and its frame
scores are joined into one output (``ModelRun.chunks``). Further behind, after a resync, or with
pictures to fetch, the grid is placed anew and the model reset.

**Windows.** Each model gets the window its ``WindowSpec`` declares, ending at the newest
sample (or the newest multiple of its ``align``: a streaming front end's frame grid), in a
buffer allocated once per model; before the stream has that much audio the front
of the window is zeros. A model that needs a frame gets the frame nearest (``FrameRing.nearest``)
to its window's centre or end (``frame_at``), copied into a per-model frame buffer. A model
whose frame is missing (no frame yet) or whose audio was overwritten before it could be copied
does not run that hop (``missing_frames``, ``late_reads``).

**Clips.** A model whose window asks for a clip (``WindowSpec.frames = N``, ``frame_rate``) gets
the frames nearest N instants ``1 / frame_rate`` apart, ending at its window's end (or centred
on its centre, ``frame_at``), copied into a per-model ``(N, H, W, 3)`` buffer, oldest first. The
frames are copied without taking them and taken (``FrameRing.take``) only when the whole clip
is in hand, so a dropped clip leaves ``frame_overwrites`` counting its frames as unused. When
the clip reaches further back than the frame ring holds, the run is dropped
(``missing_frames``, with a warning naming ``WindowSpec.frame_lookback_s``) instead of handing
the model the wrong frames.

**Frame-level scores.** A labeler may return ``models.core.live.FrameScores`` (frame times
relative to its window's end): the scheduler puts them on the stream clock and the rolling
labels take only the frames newer than those already taken
(:meth:`realtime.rolling.RollingLabels.update_frames`), so its onsets and offsets fall on its
frame grid, not on the hop grid.

**Resampling: one ring per rate.** For every model rate that differs from the capture rate the
scheduler keeps a streaming soxr resampler (``soxr.ResampleStream``, quality "HQ") feeding an
``AudioRing`` at that rate. Each hop it resamples only the samples that arrived since the
previous hop, so every sample is resampled once however long the windows are (re-resampling
each window would cost ``window / hop`` times more and put filter edges inside every window),
and models sharing a rate share one stream. The price: soxr holds back a few milliseconds of
output (6–36 ms at 48 kHz → 16 kHz, HQ), so a resampled model's window ends that much before
the newest captured sample; its exact end time is in :class:`ModelRun` and is the time its
frame is matched to and its events are stamped with. After a gap (the source ring overwrote
samples not yet resampled) the stream restarts one window back (``resyncs``).

**Timing.** Every hop records, in milliseconds, ``copy`` (resampling + window and frame
copies), ``model:<name>`` for each model run, ``post`` (rolling labels, top labels),
``sinks`` (*the previous hop's* sinks, since this hop's result is what the sinks receive) and
``total`` (copy + models + post).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from models.core.events import LabeledEvent
from models.core.live import FrameScores, Heatmap, WindowSpec

from .inference_thread import InferenceThread
from .rolling import ActiveEvent, HysteresisConfig, RollingLabels
from .sinks import Sink, SinkContext

logger = logging.getLogger(__name__)

__all__ = [
    "Counters",
    "HopResult",
    "LabelScore",
    "ModelRun",
    "ModelSlot",
    "Scheduler",
    "SchedulerConfig",
]

KINDS = ("labeler", "localizer")
#: Seconds of earlier grid points an exact-hop model may run before its window in one tick
#: (two 80 ms hops, four 40 ms ones); further behind, its grid starts anew with a reset.
CATCH_UP_S = 0.16


@dataclass(frozen=True)
class SchedulerConfig:
    """Scheduler settings.

    Attributes:
        hop_s: seconds between hops. 0.25 s suits a 2-core CPU: onsets are quantised to ±0.125 s
            after correction, inside the 0.2 s collar of the event metrics, at 4 runs per second.
        top_k: labels (over all labelers) in ``HopResult.top``.
        resample_quality: soxr quality for the per-rate streams ("HQ", "VHQ", "MQ", "LQ", "QQ").
        rate_ring_margin_s: seconds each per-rate ring holds beyond the longest window at its rate.
        min_wait_s: shortest sleep while waiting for the next hop's audio (capture delivers blocks of
            10–33 ms, so waking more often only polls).
        max_frame_age_s: a model's frame (or a clip's newest frame) farther than this from the
            time it should show is stale: the run is dropped (``missing_frames``), so a camera
            that stalls leaves no heatmap computed from its last picture (nor does a camera the
            capture reports lost, at once: ``watch_capture``).
        thread_name: the inference thread's name.
    """

    hop_s: float = 0.25
    top_k: int = 3
    resample_quality: str = "HQ"
    rate_ring_margin_s: float = 1.0
    min_wait_s: float = 0.005
    max_frame_age_s: float = 1.0
    thread_name: str = "avlive-inference"

    def __post_init__(self) -> None:
        if not self.hop_s > 0:
            raise ValueError(f"SchedulerConfig.hop_s: expected seconds > 0, found {self.hop_s!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"SchedulerConfig.top_k: expected an int >= 0, found {self.top_k!r}")
        if self.resample_quality not in ("HQ", "VHQ", "MQ", "LQ", "QQ"):
            raise ValueError(f"SchedulerConfig.resample_quality: expected a soxr quality, found {self.resample_quality!r}")
        if not self.rate_ring_margin_s > 0:
            raise ValueError(f"SchedulerConfig.rate_ring_margin_s: expected seconds > 0, found {self.rate_ring_margin_s!r}")
        if not self.max_frame_age_s > 0:
            raise ValueError(f"SchedulerConfig.max_frame_age_s: expected seconds > 0, found {self.max_frame_age_s!r}")


@dataclass(frozen=True)
class ModelSlot:
    """One model the scheduler runs.

    Attributes:
        name: unique; keys the scores, timings (``model:<name>``) and runs.
        model: a ``models.core.live.Labeler`` or ``Localizer``.
        every: run on every n-th hop; 1 for a model that declares its own hop
            (``window.hop_seconds``).
        hysteresis: rolling-label setting for a labeler; None takes
            ``HysteresisConfig.from_metadata`` of ``model.metadata`` when the model has one,
            else the defaults.
        kind: "labeler" or "localizer"; None: a labeler when the model has ``labels``.
    """

    name: str
    model: Any
    every: int = 1
    hysteresis: HysteresisConfig | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ModelSlot.name: expected a non-empty str, found {self.name!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"ModelSlot.every ({self.name}): expected an int >= 1, found {self.every!r}")
        if not isinstance(getattr(self.model, "window", None), WindowSpec):
            raise ValueError(f"ModelSlot.model ({self.name}): expected a live model with a WindowSpec `window`, "
                             f"found {type(self.model).__name__}")
        hop_seconds = self.model.window.hop_seconds
        if hop_seconds is not None and self.every != 1:
            raise ValueError(f"ModelSlot.every ({self.name}): expected 1 for a model that declares its own hop "
                             f"(window.hop_seconds = {hop_seconds:g} s), found {self.every!r}")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"ModelSlot.kind ({self.name}): expected one of {KINDS} or None, found {self.kind!r}")

    @property
    def resolved_kind(self) -> str:
        if self.kind is not None:
            return self.kind
        return "labeler" if getattr(self.model, "labels", None) else "localizer"


@dataclass(frozen=True)
class LabelScore:
    """One of the top labels: ``label`` from labeler ``model`` at smoothed ``score``."""

    label: str
    score: float
    model: str


@dataclass(frozen=True)
class ModelRun:
    """What one model was given at one hop.

    Attributes:
        name: the slot's name.
        kind: "labeler" or "localizer".
        sample_rate: the window's rate.
        end_index: sample index (at ``sample_rate``, from the stream start) one past the window's
            last sample.
        end_time: ``end_index / sample_rate``, seconds.
        frame_time: timestamp of the frame it was given (a clip's newest), or None.
        frame_index: that frame's index in the frame ring's stream, or None.
        ms: the call's duration (with its ``reset()``, when one was due).
        frame_times: a clip's frame timestamps, oldest first (empty without a clip).
        frame_indices: a clip's frame indices, oldest first (empty without a clip).
        reset: whether the model's ``reset()`` was called before this run.
        chunks: how many of its own hops the run covered: 1, or more when an ``exact_hops``
            model caught up on grid points that arrived together (called once per point).
    """

    name: str
    kind: str
    sample_rate: int
    end_index: int
    end_time: float
    frame_time: float | None
    frame_index: int | None
    ms: float
    frame_times: tuple[float, ...] = ()
    frame_indices: tuple[int, ...] = ()
    reset: bool = False
    chunks: int = 1


@dataclass(frozen=True)
class Counters:
    """Running totals since the start.

    Attributes:
        hops: hops run.
        skips: hops skipped because inference fell behind.
        late_reads: the audio ring's ``late_reads`` (reads of samples already overwritten).
        frame_overwrites: the frame ring's ``overwrites`` (frames replaced before a model took
            them; the recorder's and a display's reads do not take frames).
        missing_frames: model runs dropped because no frame was available.
        resyncs: restarts of a resampling stream after a gap.
        recorder_dropped_frames: video frames the mp4 recorder sinks dropped because their
            queue was full (``Mp4RecorderSink.dropped_frames``), as of the previous hop's sinks.
        resets: ``reset()`` calls of stateful models (at their first run and after gaps); in the
            JSON lines since schema 1.2 (``realtime.schema.COUNTERS``).
        gap_samples, input_overflows, device_losses, device_recoveries: the capture's
            (``realtime.capture.CaptureStats``; 0 without one): silence written for missing
            audio, input the devices lost, live devices lost and back (schema 1.3).
    """

    hops: int = 0
    skips: int = 0
    late_reads: int = 0
    frame_overwrites: int = 0
    missing_frames: int = 0
    resyncs: int = 0
    recorder_dropped_frames: int = 0
    resets: int = 0
    gap_samples: int = 0
    input_overflows: int = 0
    device_losses: int = 0
    device_recoveries: int = 0


@dataclass(frozen=True)
class HopResult:
    """Everything one hop produced; handed to every sink and kept in the newest-result slot.

    Arrays here are owned by the result (copies), except ``heatmap.map``, which is the
    localizer's own output array (the L³ localizer makes a new one per call).

    Attributes:
        hop: the hop index k (the window ends in ``[k, k+1) * hop_s``).
        stream_time: seconds; ``end_index / sample_rate`` of the capture stream.
        end_index: the newest captured sample when the hop began (the windows end there).
        scores: labeler name → (C,) float32 raw scores, for labelers run this hop (a labeler
            returning ``FrameScores``: its newest frame's).
        frame_scores: labeler name → ``((T, C) float32 scores, (T,) float64 stream seconds of
            each frame's centre)``, the whole ``FrameScores`` of the labelers that returned one
            this hop (overlapping windows repeat frames: a sink keeps only those newer than it
            has seen, as the rolling labels do). For sinks (``realtime.sinks.ScoresTsvSink``);
            not in the JSON lines.
        smoothed: labeler name → (C,) float64 smoothed scores (every labeler, newest values).
        top: the ``top_k`` labels by smoothed score over all labelers, best first.
        active: events going on (longer than their ``min_duration_s``), over all labelers.
        ended: events that ended at this hop (at stop: every event still open).
        heatmap: the newest heatmap (maybe from an earlier hop), or None.
        heatmap_time: end time of the window the heatmap was computed on, or None.
        heatmap_fresh: whether the localizer ran at this hop.
        runs: the models run at this hop.
        latency_ms: stage → milliseconds (see the module docstring).
        counters: totals so far.
        lag_ms: audio that arrived while this hop computed (how far behind real time it ends).
        final: True for the last result, made at stop, that closes the open events.
        lost: names of the live sources lost at this hop (the capture's ``lost``).
    """

    hop: int
    stream_time: float
    end_index: int
    scores: Mapping[str, np.ndarray]
    smoothed: Mapping[str, np.ndarray]
    top: tuple[LabelScore, ...]
    active: tuple[ActiveEvent, ...]
    ended: tuple[LabeledEvent, ...]
    heatmap: Heatmap | None
    heatmap_time: float | None
    heatmap_fresh: bool
    runs: tuple[ModelRun, ...]
    latency_ms: Mapping[str, float]
    counters: Counters
    lag_ms: float
    final: bool = False
    lost: tuple[str, ...] = ()
    frame_scores: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=lambda: MappingProxyType({}))


# ------------------------------------------------------------------------------ internals


class _RateStream:
    """Capture ring → soxr stream → ring at another rate. Owned by the inference thread.

    Stream index of a sample in ``ring`` = its ring index + ``offset``; the current segment
    (since the last resync) starts at ring index ``segment_start``.
    """

    def __init__(self, source, ring_class, in_rate: int, out_rate: int, capacity: int, lookback: int,
                 quality: str, chunk: int) -> None:
        import soxr

        self._soxr = soxr
        self.source = source
        self.in_rate, self.out_rate = in_rate, out_rate
        self.ring = ring_class(capacity, out_rate)
        self._quality = quality
        self._resampler = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        self._chunk = np.zeros(chunk, np.float32)  # source samples, reused every hop
        self._lookback = lookback
        self._step = in_rate // math.gcd(in_rate, out_rate)  # input samples per whole output sample period
        self._fed: int | None = None  # source index fed up to
        self.offset = 0
        self.segment_start = 0
        self.resyncs = 0

    def _restart(self, end: int) -> None:
        if self._fed is not None:
            self.resyncs += 1
            self._resampler = self._soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32",
                                                        quality=self._quality)
        start = max(0, end - self._lookback)
        start -= start % self._step  # on the common grid of both rates: the offset stays a whole sample
        self._fed = start
        self.segment_start = self.ring.total_written
        # soxr's output is aligned with its input: output sample j is at time j / out_rate after `start`.
        self.offset = int(round(start * self.out_rate / self.in_rate)) - self.ring.total_written

    def advance(self, end: int) -> None:
        """Resample the capture stream up to source index ``end``."""
        if self._fed is None or end - self._fed > self._lookback:
            self._restart(end)  # first call, or further behind than any window needs
        retried = False
        while self._fed < end:
            n = min(end - self._fed, len(self._chunk))
            part = self._chunk[:n]
            if not self.source.read(self._fed + n, n, part):
                if retried:
                    return  # still overwritten: the producer outruns us; try again next hop
                retried = True
                self._restart(end)
                continue
            self.ring.write(self._resampler.resample_chunk(part))  # soxr allocates its output (≈ hop samples)
            self._fed += n

    @property
    def end_index(self) -> int:
        return self.ring.total_written + self.offset


@dataclass
class _Slot:
    """A model's preallocated state (mutable; the inference thread's alone)."""

    spec: ModelSlot
    kind: str
    window: WindowSpec
    audio: np.ndarray  # (window.samples,) float32
    frame: np.ndarray | None  # (H, W, 3) uint8, or (N, H, W, 3) for a clip
    stream: _RateStream | None
    ticks: int = 1  # base hops between runs
    offsets: np.ndarray | None = None  # (P,) seconds from the window's end to each picture
    clip_times: np.ndarray | None = None  # (N,) float64, the clip's frame times (clips only)
    clip_index: np.ndarray | None = None  # (N,) int64, the clip's frame indices (clips only)
    reset: Any = None  # the model's reset(), when it keeps state
    step: int = 0  # window.exact_hops: samples between consecutive windows (its hop at its rate)
    grid_end: int | None = None  # window.exact_hops: where the previous window ended
    catch_up: np.ndarray | None = None  # (CATCH_UP_S / hop, window.samples) float32: exact hops, audio only
    resyncs_seen: int = 0  # the resampling stream's resyncs at the previous run
    warned: bool = False  # the frame ring was too short for the clip (logged once)
    rolling: RollingLabels | None = None
    labels: tuple[str, ...] = ()
    next_hop: int | None = None
    runs: int = 0
    active: tuple[ActiveEvent, ...] = ()
    smoothed: np.ndarray | None = field(default=None)


@dataclass
class _Due:
    """A model due at this hop, with what was cut for it."""

    slot: _Slot
    end_index: int
    end_time: float
    frame_info: tuple[float, int] | None  # (time, index) of its (newest) frame
    gap: bool  # not exactly one of its hops after its previous run: reset() first
    catch_up: int = 0  # exact hops: earlier grid points in slot.catch_up[:catch_up], run first


@dataclass
class _HopWork:
    """One hop between its cut and its result (the inference thread's alone).

    Attributes:
        hop, end: the hop index and the capture index its windows end at.
        capture: the capture's counters taken once for this hop (or None).
        due: the models due, with what was cut for them.
        t_start: ``perf_counter()`` when the hop began.
        latency: stage → ms so far (``copy``, then ``model:<name>`` per run).
        scores, frame_scores, runs, fresh: the models' outputs as recorded.
    """

    hop: int
    end: int
    capture: Any
    due: list[_Due]
    t_start: float
    latency: dict[str, float]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    frame_scores: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    runs: list[ModelRun] = field(default_factory=list)
    fresh: bool = False


def _default_ring_class():
    from .rings import AudioRing

    return AudioRing


class Scheduler(InferenceThread):
    """Runs live models on a capture stream, one hop at a time, on its own thread.

    Use ``start()`` / ``stop()`` (a context manager does both), or drive it synchronously with
    ``step()`` (offline runs, tests) and finish with ``stop()``; not both. Several streams of one
    process are driven by ``realtime.multistream.MultiScheduler`` instead, through the hop's parts
    (``_begin_hop``, ``_call`` or ``_record``, ``_finish_hop``), on its one thread.

    Args:
        audio_ring: the capture ring (``realtime.rings.AudioRing``: ``total_written``,
            ``read(end_index, n, out)``, ``late_reads``, ``sample_rate``).
        frame_ring: the camera ring (``FrameRing``: ``nearest(t, out)``, ``height``, ``width``,
            ``overwrites``), or None for audio only.
        models: the models to run.
        sinks: receive every :class:`HopResult` on the inference thread, then a final one at stop;
            closed (flushed) at stop, also after an error or Ctrl-C.
        config: settings.
        source_name: what events are attributed to (``synthetic:SEED``, a media file's basename,
            ``mic``).
        ring_class: the ring type for the per-rate resampled streams (default
            ``realtime.rings.AudioRing``).

    Raises:
        ValueError: duplicate model names, a model needing frames without a frame ring, a
            labeler without labels, a model hop that is not a whole multiple of the hop.

    Example::

        slots = [ModelSlot("labeler", labeler), ModelSlot("l3", localizer, every=3)]
        with Scheduler(audio_ring, frame_ring, slots, [JsonLinesSink("-")]) as scheduler:
            ...  # capture runs; scheduler.latest() is the newest HopResult
    """

    def __init__(self, audio_ring, frame_ring, models: Sequence[ModelSlot], sinks: Sequence[Sink] = (),
                 config: SchedulerConfig = SchedulerConfig(), *, source_name: str = "mic", ring_class=None) -> None:
        models = tuple(models)
        if not models:
            raise ValueError("Scheduler: expected at least one ModelSlot")
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Scheduler: model names must be unique, found {duplicates} more than once")
        self.audio_ring = audio_ring
        self.frame_ring = frame_ring
        self.sinks = tuple(sinks)
        self._recorders = tuple(s for s in self.sinks if hasattr(s, "start_recording"))
        self.config = config
        self.source_name = source_name
        self.sample_rate = int(audio_ring.sample_rate)
        self.hop_samples = max(1, int(round(config.hop_s * self.sample_rate)))
        ring_class = ring_class or _default_ring_class()

        # One resampling stream per rate other than the capture rate, shared by its models.
        longest: dict[int, int] = {}
        for m in models:
            rate = m.model.window.sample_rate
            longest[rate] = max(longest.get(rate, 0), m.model.window.samples)
        self._streams: dict[int, _RateStream] = {}
        capacity = int(getattr(audio_ring, "capacity", 0)) or None
        for rate, samples in longest.items():
            lookback = int(np.ceil((samples / rate + (0.0 if rate == self.sample_rate else 0.25)) * self.sample_rate))
            if capacity is not None and capacity < lookback + self.hop_samples:
                raise ValueError(f"Scheduler: the audio ring holds {capacity / self.sample_rate:.2f} s; the "
                                 f"{samples / rate:.2f} s windows at {rate} Hz need at least "
                                 f"{(lookback + self.hop_samples) / self.sample_rate:.2f} s (a few seconds more "
                                 f"leave room for a slow hop)")
            if rate == self.sample_rate:
                continue
            margin = int(round(config.rate_ring_margin_s * rate))
            # the lookback adds 0.25 s to the window for soxr's hold-back (≤ 40 ms) and its start-up
            self._streams[rate] = _RateStream(audio_ring, ring_class, self.sample_rate, rate, samples + margin, lookback,
                                              config.resample_quality, chunk=max(self.hop_samples, 4096))

        self._slots: list[_Slot] = []
        for m in models:
            kind = m.resolved_kind
            window = m.model.window
            slot = _Slot(m, kind, window, np.zeros(window.samples, np.float32), None,
                         self._streams.get(window.sample_rate), ticks=self._ticks(m))
            if window.needs_frame or kind == "localizer":
                if frame_ring is None:
                    raise ValueError(f"Scheduler: model {m.name!r} needs camera frames but no frame_ring was given")
                shape = (*window.frame_shape_prefix, int(frame_ring.height), int(frame_ring.width), 3)
                slot.frame = np.zeros(shape, np.uint8)
                # a localizer gets its frame even when its window does not say needs_frame
                pictures = window if window.needs_frame else dataclasses.replace(window, needs_frame=True)
                slot.offsets = np.array(pictures.frame_offsets(), np.float64)
                if window.frames > 0:
                    slot.clip_times = np.zeros(window.frames, np.float64)
                    slot.clip_index = np.zeros(window.frames, np.int64)
            reset = getattr(m.model, "reset", None)
            slot.reset = reset if callable(reset) else None
            if window.exact_hops:
                slot.step = int(round(slot.ticks * self.config.hop_s * window.sample_rate))
                if slot.frame is None:
                    points = max(1, int(round(CATCH_UP_S * window.sample_rate / slot.step)))
                    slot.catch_up = np.zeros((points, window.samples), np.float32)
            if kind == "labeler":
                slot.labels = tuple(m.model.labels)
                if not slot.labels:
                    raise ValueError(f"Scheduler: labeler {m.name!r} has no labels")
                hysteresis = m.hysteresis
                if hysteresis is None:
                    metadata = getattr(m.model, "metadata", None)
                    hysteresis = HysteresisConfig.from_metadata(metadata) if metadata is not None else HysteresisConfig()
                slot.rolling = RollingLabels(slot.labels, hysteresis, filename=source_name)
                slot.smoothed = np.zeros(len(slot.labels))
            self._slots.append(slot)

        self._labels = MappingProxyType({s.spec.name: s.labels for s in self._slots if s.kind == "labeler"})
        self._latest: HopResult | None = None
        self._init_thread(self.config.thread_name)
        self._next_hop: int | None = None  # grid index of the next due hop
        self._last_end = 0
        self._last_hop = 0
        self._hops = 0
        self._skips = 0
        self._resets = 0
        self._missing_frames = 0
        self._sinks_ms = 0.0
        self._heatmap: Heatmap | None = None
        self._heatmap_time: float | None = None
        self._capture_stats = None  # () -> realtime.capture.CaptureStats, see watch_capture

    def _ticks(self, m: ModelSlot) -> int:
        """Base hops between the runs of ``m``: ``every``, or its own hop in pipeline hops."""
        own = m.model.window.hop_seconds
        if own is None:
            return m.every
        hop = self.config.hop_s
        ratio = own / hop
        n = int(round(ratio))
        if n < 1 or abs(ratio - n) > 1e-6 * max(1.0, ratio):
            raise ValueError(f"Scheduler: model {m.name!r} window.hop_seconds: expected a whole multiple of the "
                             f"pipeline hop {hop:g} s (the base tick: {hop:g}, {2 * hop:g}, {3 * hop:g} s, ...), "
                             f"found {own:g} s ({ratio:.4g} hops)")
        return n

    # ---------------------------------------------------------------- public

    @property
    def labels(self) -> Mapping[str, tuple[str, ...]]:
        """Labeler name → its labels in score order."""
        return self._labels

    def latest(self) -> HopResult | None:
        """The newest result (safe from any thread: one reference, replaced whole each hop)."""
        return self._latest

    def watch_capture(self, stats) -> None:
        """Report the capture's counters and lost devices in every result: ``stats()`` returns a
        ``realtime.capture.CaptureStats`` (``Capture.stats``); call before :meth:`start`."""
        self._capture_stats = stats

    def _capture_now(self):
        return self._capture_stats() if self._capture_stats is not None else None

    def counters(self, capture=None) -> Counters:
        """Totals so far (``capture``: a ``CaptureStats`` already taken this hop)."""
        capture = capture if capture is not None else self._capture_now()
        return Counters(
            hops=self._hops, skips=self._skips,
            late_reads=int(getattr(self.audio_ring, "late_reads", 0)),
            frame_overwrites=int(getattr(self.frame_ring, "overwrites", 0)) if self.frame_ring is not None else 0,
            missing_frames=self._missing_frames, resyncs=sum(s.resyncs for s in self._streams.values()),
            recorder_dropped_frames=sum(int(getattr(r, "dropped_frames", 0)) for r in self._recorders),
            resets=self._resets,
            **({} if capture is None else dict(gap_samples=capture.gap_samples, input_overflows=capture.source_overflows,
                                               device_losses=capture.device_losses,
                                               device_recoveries=capture.device_recoveries)))

    def model_runs(self) -> dict[str, int]:
        """Model name → how many times it ran."""
        return {s.spec.name: s.runs for s in self._slots}

    def step(self) -> HopResult:
        """Run one hop now, on the calling thread, with windows ending at the newest sample.

        For offline runs and tests; the first call opens the sinks. Not while ``start()``ed.
        """
        self._check_steppable()
        if not self._opened:
            self._open()
        return self._hop(int(self.audio_ring.total_written))

    def start_recording(self, path) -> None:
        """Ask the (first) recorder sink to start recording to ``path``; see ``Mp4RecorderSink``."""
        self._recorder().start_recording(path)

    def stop_recording(self, timeout: float | None = 10.0):
        """Ask the recorder sink to finish its file; returns the file's path (or None)."""
        return self._recorder().stop_recording(timeout=timeout)

    # ---------------------------------------------------------------- thread

    def _recorder(self):
        if self._recorders:
            return self._recorders[0]
        raise RuntimeError("Scheduler: no recorder sink (add a realtime.sinks.Mp4RecorderSink)")

    def _open(self) -> None:
        self._opened = True
        context = SinkContext(source_name=self.source_name, sample_rate=self.sample_rate, hop_s=self.config.hop_s,
                              audio_ring=self.audio_ring, frame_ring=self.frame_ring, labels=dict(self._labels))
        for sink in self.sinks:
            sink.open(context)

    def _loop(self, wait) -> None:
        self._open()
        self._next_hop = int(self.audio_ring.total_written) // self.hop_samples + 1
        while not self._stop_event.is_set():
            total = int(self.audio_ring.total_written)
            due = self._next_hop * self.hop_samples
            if total < due:
                # Sleep about as long as the missing audio takes to arrive (real-time sources),
                # waking at once on stop.
                wait(min(max((due - total) / self.sample_rate, self.config.min_wait_s), self.config.hop_s))
                continue
            self._hop(total)

    def _close(self) -> None:
        """Final result (open events closed at the last hop's time), then close every sink."""
        errors = []
        try:
            t = self._last_end / self.sample_rate
            ended = []
            for slot in self._slots:
                if slot.rolling is not None:
                    end_time = t if slot.stream is None else slot.stream.end_index / slot.window.sample_rate
                    ended.extend(slot.rolling.finish(end_time))
                    slot.active = ()
            final = self._result(hop=self._last_hop, end=self._last_end, scores={}, ended=tuple(ended),
                                 runs=(), latency={}, fresh=False, lag_ms=0.0, final=True)
            self._latest = final
            for sink in self.sinks:
                try:
                    sink.write(final)
                except BaseException as e:
                    errors.append(e)
        finally:
            for sink in self.sinks:  # every sink flushes, whatever happened before
                try:
                    sink.close()
                except BaseException as e:
                    errors.append(e)
        if errors:
            raise errors[0]

    # ---------------------------------------------------------------- one hop

    def _read_audio(self, slot: _Slot, out: np.ndarray, end_index: int, newest_end: int) -> bool:
        """Copy the window ending at ``end_index`` (at the slot's rate; ``newest_end`` is the
        newest sample there) into ``out``; False when the ring overwrote it first."""
        if slot.stream is None:
            return self._read_window(out, self.audio_ring, end_index, 0)
        ring = slot.stream.ring
        return self._read_window(out, ring, ring.total_written - (newest_end - end_index), slot.stream.segment_start)

    @staticmethod
    def _read_window(out: np.ndarray, ring, end: int, segment_start: int) -> bool:
        """Copy the ``out.size`` samples ending at ring index ``end``, zeros before the segment
        start."""
        n = out.size
        available = end - segment_start
        if available >= n:
            return bool(ring.read(end, n, out))
        out[: n - available] = 0.0
        return available <= 0 or bool(ring.read(end, available, out[n - available:]))

    def _read_pictures(self, slot: _Slot, end_time: float) -> tuple[float, int] | None:
        """Copy the frame (or clip) ``slot`` asks for, for a window ending at ``end_time``, into
        its buffer; ``(time, index)`` of the (newest) frame, or None when the model cannot run."""
        ring = self.frame_ring
        if slot.clip_index is None:
            target = end_time + slot.offsets[0]
            got = ring.nearest(target, slot.frame)
            return None if got is None or abs(got[0] - target) > self.config.max_frame_age_s else got
        for i in range(slot.offsets.size):
            got = ring.nearest(end_time + slot.offsets[i], slot.frame[i], take=False)
            if got is None:
                return None
            slot.clip_times[i], slot.clip_index[i] = got
        if abs(slot.clip_times[-1] - (end_time + slot.offsets[-1])) > self.config.max_frame_age_s:
            return None
        if not self._clip_in_reach(slot, end_time + slot.offsets[0]):
            return None
        for k in slot.clip_index:  # the model gets them all: now they count as taken
            ring.take(int(k))
        return float(slot.clip_times[-1]), int(slot.clip_index[-1])

    def _clip_in_reach(self, slot: _Slot, oldest_target: float) -> bool:
        """False when the clip's oldest frame should be one the ring no longer holds (the ring is
        shorter than ``window.frame_lookback_s``); logs that once per model."""
        if slot.clip_times[0] <= oldest_target:
            return True  # the ring holds a frame at or before the target
        oldest, newest = self.frame_ring.oldest(), self.frame_ring.newest()
        if oldest is None or newest is None or oldest[1] == 0 or newest[1] == oldest[1]:
            return True  # no frame was ever dropped from the ring (or only one is held)
        if oldest[1] != slot.clip_index[0]:
            return True  # the nearest frame was not the oldest held: the ring reaches far enough
        period = (newest[0] - oldest[0]) / (newest[1] - oldest[1])
        if oldest_target >= oldest[0] - 0.5 * period:
            return True
        if not slot.warned:
            slot.warned = True
            logger.warning("model %r: its clip reaches %.2f s before the window's end (WindowSpec.frame_lookback_s) "
                           "but the frame ring holds %.2f s; its runs are dropped (missing_frames) until the ring "
                           "holds more", slot.spec.name, slot.window.frame_lookback_s, newest[0] - oldest[0])
        return False

    def _cut(self, hop: int, end: int, capture) -> list[_Due]:
        """The models due at ``hop`` with their windows and pictures cut (windows ending at
        capture index ``end``)."""
        due: list[_Due] = []
        camera_lost = capture is not None and capture.video_lost
        for slot in self._slots:
            if slot.next_hop is not None and hop < slot.next_hop:
                continue
            align = slot.window.align
            resyncs = 0 if slot.stream is None else slot.stream.resyncs
            newest_end = end if slot.stream is None else slot.stream.end_index
            end_index = newest_end - newest_end % align  # on the model's frame grid
            regridded, behind = False, 0
            if slot.step:
                end_index, regridded, behind = self._exact_hop_end(slot, end_index, resyncs != slot.resyncs_seen)
                if end_index is None:  # the next grid point is not there yet: the next tick takes it
                    slot.next_hop = hop + 1
                    continue
            ok = self._read_audio(slot, slot.audio, end_index, newest_end)
            for k in range(behind):  # earlier grid points, oldest first
                ok = ok and self._read_audio(slot, slot.catch_up[k], end_index - (behind - k) * slot.step, newest_end)
            if not ok:  # overwritten before we got to it; the ring counts it in late_reads
                slot.grid_end = None  # an exact-hop model starts its grid anew (others have none)
                continue
            end_time = end_index / slot.window.sample_rate
            frame_info = None
            if slot.frame is not None:
                frame_info = None if camera_lost else self._read_pictures(slot, end_time)
                if frame_info is None:
                    self._missing_frames += 1
                    slot.grid_end = None  # its chunk was not run: an exact-hop model starts anew
                    continue
            if slot.step:
                gap = regridded
            else:
                gap = slot.next_hop is None or hop > slot.next_hop or resyncs != slot.resyncs_seen
            slot.next_hop, slot.resyncs_seen = hop + slot.ticks, resyncs
            due.append(_Due(slot, end_index, end_time, frame_info, gap, behind))
        return due

    @staticmethod
    def _exact_hop_end(slot: _Slot, newest: int, resynced: bool) -> tuple[int | None, bool, int]:
        """Where the window of an ``exact_hops`` model ends this hop, given the newest usable
        end ``newest`` (on its frame grid): ``(end, regridded, behind)``, or ``(None, False, 0)``
        when the next grid point is not there yet. ``behind`` grid points before ``end`` arrived
        too (an audio-only model runs them first; at most ``CATCH_UP_S`` of them). At the first run,
        after a resync, or further behind than that, the grid is placed anew half a step behind
        the newest end and ``regridded`` says so (the model is reset before its run)."""
        step, previous = slot.step, slot.grid_end
        if previous is not None and not resynced:
            ahead = (newest - previous) // step
            if ahead < 1:
                return None, False, 0
            if ahead <= 1 + (0 if slot.catch_up is None else len(slot.catch_up)):
                slot.grid_end = previous + ahead * step
                return slot.grid_end, False, ahead - 1
        start = max(0, newest - step // 2)
        slot.grid_end = start - start % slot.window.align
        return slot.grid_end, True, 0

    def _stagger_slots(self, phase: int, first_hop: int) -> None:
        """Delay the first run of each stateless model that runs every n-th hop from hop
        ``first_hop`` by ``phase mod n`` hops (``realtime.multistream``: the streams of one
        process take turns)."""
        for slot in self._slots:
            if slot.ticks > 1 and slot.reset is None and slot.next_hop is None and phase % slot.ticks:
                slot.next_hop = first_hop + phase % slot.ticks

    def _reset_if_due(self, d: _Due) -> bool:
        """Call a stateful model's ``reset()`` when a gap came before this run; whether it did."""
        if not (d.gap and d.slot.reset is not None):
            return False
        d.slot.reset()
        self._resets += 1
        return True

    @staticmethod
    def _model_args(d: _Due) -> tuple[np.ndarray, np.ndarray | None]:
        """What a due model is called with: its window and its frame (clip), or None for a
        labeler that got no picture."""
        slot = d.slot
        if slot.kind == "labeler":
            return slot.audio, slot.frame if d.frame_info is not None else None
        return slot.audio, slot.frame

    def _run_model(self, d: _Due) -> tuple[Any, bool]:
        """Call one due model on its own: its ``reset()`` when a gap came before, the grid points
        it catches up on (exact hops), then its window; ``(output, reset)``. Caught-up frame
        scores are joined with the window's, on the window's clock; other outputs are the
        window's alone."""
        reset = self._reset_if_due(d)
        if not d.catch_up:
            return d.slot.spec.model(*self._model_args(d)), reset
        return self._caught_up(d), reset

    def _caught_up(self, d: _Due) -> Any:
        """Run an exact-hop model on the grid points it is behind, then on its window; the joined
        frame scores (or the window's output alone when they are not frame scores)."""
        model = d.slot.spec.model
        earlier = []
        for k in range(d.catch_up):  # copies: a runner may reuse its output buffers on the next call
            o = model(d.slot.catch_up[k], None)
            earlier.append(FrameScores(o.scores.copy(), o.times.copy()) if isinstance(o, FrameScores) else o)
        out = model(*self._model_args(d))
        if isinstance(out, FrameScores) and all(isinstance(o, FrameScores) for o in earlier):
            rate, step = d.slot.window.sample_rate, d.slot.step
            shifts = [-(d.catch_up - k) * step / rate for k in range(d.catch_up)]  # their window ends, relative
            chunks = [(o.scores, o.times + s) for o, s in zip(earlier, shifts)] + [(out.scores, out.times)]
            # Each chunk's frames newer than the last one kept: a model that has not yet seen its
            # look-ahead (right after a reset) gives its oldest frame again, at the same time.
            scores, times, newest = [], [], -np.inf
            for values, at in chunks:
                keep = at > newest + 1e-6
                scores.append(values[keep])
                times.append(at[keep])
                newest = max(newest, float(at[-1]))
            out = FrameScores(np.concatenate(scores), np.concatenate(times))
        return out

    def _call(self, work: "_HopWork", d: _Due) -> None:
        """Call one due model and record its run."""
        t0 = time.perf_counter()
        out, reset = self._run_model(d)
        self._record(work, d, out, (time.perf_counter() - t0) * 1e3, reset)

    def _record(self, work: "_HopWork", d: _Due, out: Any, ms: float, reset: bool = False) -> None:
        """Take one model's output into the hop: its scores or heatmap, and its :class:`ModelRun`
        (``ms``: how long the call took, for a batched call the whole call)."""
        slot = d.slot
        if slot.kind == "labeler":
            if isinstance(out, FrameScores):
                # copies: runners may hand back views of buffers they reuse on the next call
                work.frame_scores[slot.spec.name] = (out.scores.copy(), d.end_time + out.times)
                work.scores[slot.spec.name] = work.frame_scores[slot.spec.name][0][-1]
            else:
                work.scores[slot.spec.name] = np.array(out, dtype=np.float32, copy=True).reshape(-1)
        else:
            if not isinstance(out, Heatmap):
                raise TypeError(f"localizer {slot.spec.name!r}: expected a models.core.live.Heatmap, "
                                f"received {type(out).__name__}")
            self._heatmap, self._heatmap_time, work.fresh = out, d.end_time, True
        slot.runs += 1
        clip = slot.clip_index is not None and d.frame_info is not None
        run = ModelRun(slot.spec.name, slot.kind, slot.window.sample_rate, int(d.end_index), float(d.end_time),
                       None if d.frame_info is None else float(d.frame_info[0]),
                       None if d.frame_info is None else int(d.frame_info[1]), ms,
                       frame_times=tuple(slot.clip_times.tolist()) if clip else (),
                       frame_indices=tuple(slot.clip_index.tolist()) if clip else (), reset=reset,
                       chunks=1 + d.catch_up)
        work.latency[f"model:{run.name}"] = run.ms
        work.runs.append(run)

    def _roll(self, d: _Due, scores: dict, frame_scores: dict) -> list[LabeledEvent]:
        """Feed a labeler's output to its rolling labels; the events that ended."""
        slot, name = d.slot, d.slot.spec.name
        expected = len(slot.labels)
        if name in frame_scores:
            values, times = frame_scores[name]
            if values.shape[1] != expected:
                raise ValueError(f"labeler {name!r}: expected FrameScores.scores of shape (frames, {expected}), "
                                 f"received {values.shape}")
            active, just_ended = slot.rolling.update_frames(values, times, d.end_time)
        else:
            if scores[name].shape != (expected,):
                raise ValueError(f"labeler {name!r}: expected {expected} scores, received shape {scores[name].shape}")
            active, just_ended = slot.rolling.update(scores[name], d.end_time)
        slot.active = tuple(active)
        slot.smoothed = slot.rolling.smoothed.copy()
        return just_ended

    def _hop(self, end: int) -> HopResult:
        work = self._begin_hop(end)
        for d in work.due:
            self._call(work, d)
        return self._finish_hop(work)

    def _begin_hop(self, end: int) -> "_HopWork":
        """The first part of a hop: count it (and the hops skipped before it), resample what
        arrived, and cut every due model's window and pictures (windows ending at ``end``)."""
        t_start = time.perf_counter()
        hop = end // self.hop_samples
        skipped = 0 if self._next_hop is None else max(0, hop - self._next_hop)
        self._next_hop = hop + 1 if self._next_hop is None else max(self._next_hop, hop + 1)
        self._skips += skipped
        self._hops += 1
        self._last_end, self._last_hop = end, hop
        for stream in self._streams.values():
            stream.advance(end)
        capture = self._capture_now()  # once a hop: the cut and the result see the same counters
        due = self._cut(hop, end, capture)
        return _HopWork(hop, end, capture, due, t_start, {"copy": (time.perf_counter() - t_start) * 1e3})

    def _finish_hop(self, work: "_HopWork") -> HopResult:
        """The last part of a hop, once every due model ran (:meth:`_record`): rolling labels,
        the result, the sinks."""
        t_models = time.perf_counter()
        ended: list[LabeledEvent] = []
        for d in work.due:
            if d.slot.kind == "labeler":
                ended.extend(self._roll(d, work.scores, work.frame_scores))
        lag_ms = (int(self.audio_ring.total_written) - work.end) / self.sample_rate * 1e3
        t_post = time.perf_counter()
        latency = work.latency
        latency["post"] = (t_post - t_models) * 1e3
        latency["sinks"] = self._sinks_ms
        latency["total"] = (t_post - work.t_start) * 1e3

        result = self._result(hop=work.hop, end=work.end, scores=work.scores, ended=tuple(ended),
                              runs=tuple(work.runs), latency=latency, fresh=work.fresh, lag_ms=lag_ms,
                              frame_scores=work.frame_scores, capture=work.capture)
        self._latest = result
        t0 = time.perf_counter()
        for sink in self.sinks:
            sink.write(result)
        self._sinks_ms = (time.perf_counter() - t0) * 1e3
        return result

    def _result(self, *, hop: int, end: int, scores, ended, runs, latency, fresh: bool, lag_ms: float,
                final: bool = False, frame_scores=None, capture=None) -> HopResult:
        smoothed = {}
        candidates: list[LabelScore] = []
        active: list[ActiveEvent] = []
        k = self.config.top_k
        for slot in self._slots:
            if slot.kind != "labeler":
                continue
            smoothed[slot.spec.name] = slot.smoothed
            active.extend(slot.active)
            if k and slot.rolling is not None and slot.rolling.started:
                s = slot.smoothed
                best = np.argsort(-s, kind="stable")[:k]
                candidates.extend(LabelScore(slot.labels[i], float(s[i]), slot.spec.name) for i in best)
        candidates.sort(key=lambda x: -x.score)
        capture = capture if capture is not None else self._capture_now()
        return HopResult(
            hop=int(hop), stream_time=end / self.sample_rate, end_index=int(end),
            scores=MappingProxyType(scores), smoothed=MappingProxyType(smoothed), top=tuple(candidates[:k]),
            active=tuple(active), ended=ended, heatmap=self._heatmap, heatmap_time=self._heatmap_time,
            heatmap_fresh=fresh, runs=runs, latency_ms=MappingProxyType(latency), counters=self.counters(capture),
            lag_ms=float(lag_ms), final=final, lost=capture.lost if capture is not None else (), frame_scores=MappingProxyType(dict(frame_scores or {})))
