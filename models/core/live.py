"""The live-model protocol: what a labeler or a localizer declares and returns.

The live pipeline only schedules: every hop it cuts, for each model, the window that model
declares (ending at the newest sample) plus what the model asks for in pictures, and calls the
model. A model family's live adapter (``models.core.family.Family.live``) turns an open runner
of any backend into a ``Labeler`` or ``Localizer``; :func:`runner_labeler` serves the
waveform-in labelers of every family that needs nothing more.

What a model can ask for (:class:`WindowSpec`) and give back:

* **Pictures.** Nothing (the default); one frame (``needs_frame``), the frame nearest the
  window's end or centre (``frame_at``), given as ``(H, W, 3)`` uint8; or a clip
  (``frames=N`` at ``frame_rate`` Hz, e.g. Audiovisual SlowFast), the frames nearest N instants
  ``1 / frame_rate`` apart that end at the window's end (``frame_at="end"``) or are centred on
  its centre (``"centre"``), given as ``(N, H, W, 3)`` uint8, oldest first.
* **Its own hop.** ``hop_seconds`` (a whole multiple of the pipeline's hop, the base tick):
  the model runs only when that much time has passed since its last run. None: every hop.
* **State.** A model that keeps state between calls (a streaming network) may have a
  ``reset()`` method; the scheduler calls it before the model's first run and before any run
  that does not follow its previous one by exactly one of its hops (hops skipped because
  inference fell behind, a run dropped for a missing frame, a resampling stream restarted).
* **Scores.** A labeler returns ``(C,)`` scores for its window, or a :class:`FrameScores`:
  ``(T, C)`` scores of T frames inside the window with each frame's time, so the rolling
  labels place onsets and offsets at frame resolution (a sound-event detector such as a CRNN).
* **Batches.** A model that keeps no state and whose runner takes a batch axis may offer
  ``batch(calls)``: a list of ``(audio, frame)`` pairs, each what one call would get, in one
  runner call; it returns the list of what each call would have returned. One process serving
  several streams (``realtime.multistream``) runs such a model once per hop for all streams
  due; :func:`has_batch_axis` tells whether a model's inputs allow it.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


# Where, inside the audio window, the frame a model is given was taken.
FRAME_AT_CENTRE = "centre"
FRAME_AT_END = "end"


def _finite(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class WindowSpec:
    """The input a live model asks for every time it runs.

    Attributes:
        seconds: audio window length; the window ends at the newest sample.
        sample_rate: the rate the audio must be delivered at (the pipeline resamples).
        needs_frame: whether camera pictures go with the window; set by itself when
            ``frames > 0``.
        frame_at: FRAME_AT_CENTRE or FRAME_AT_END: which instant of the window the frame shows
            (a clip: ends at the window's end, or is centred on the window's centre).
        frames: 0: one frame ``(H, W, 3)`` when ``needs_frame`` (or none); N >= 1: a clip of N
            frames ``(N, H, W, 3)``, oldest first.
        frame_rate: Hz, the rate the clip's frames are sampled at (the frames nearest instants
            ``1 / frame_rate`` apart); > 0 when ``frames > 1``, else unused.
        hop_seconds: how often the model runs, a whole multiple of the pipeline's hop (checked
            by the scheduler); None: every pipeline hop.
        align: the window ends on a multiple of this many samples of the stream (at
            ``sample_rate``): a model that keeps per-frame features between runs (a streaming
            front end, ``models.audio.streaming``) gets windows that move by whole frames. It
            delays the window's end by less than ``align`` samples. 1: the newest sample.
        exact_hops: the model takes exactly one hop (``hop_seconds``, else the pipeline's hop)
            of new audio per call and keeps the rest as state (the streaming CRNN): its windows
            move by exactly that many samples, on a grid the scheduler holds half a hop behind
            the newest sample so that resampling and capture jitter seldom break it (when they
            do, the grid is placed anew and the model reset: ``realtime.scheduler``). False:
            the window ends at the newest sample.
    """

    seconds: float
    sample_rate: int
    needs_frame: bool = False
    frame_at: str = FRAME_AT_END
    frames: int = 0
    frame_rate: float = 0.0
    hop_seconds: float | None = None
    align: int = 1
    exact_hops: bool = False

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"WindowSpec.seconds: expected > 0, found {self.seconds}")
        if self.sample_rate <= 0:
            raise ValueError(f"WindowSpec.sample_rate: expected > 0, found {self.sample_rate}")
        if self.frame_at not in (FRAME_AT_CENTRE, FRAME_AT_END):
            raise ValueError(f"WindowSpec.frame_at: expected {FRAME_AT_CENTRE!r} or {FRAME_AT_END!r}, found {self.frame_at!r}")
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 0:
            raise ValueError(f"WindowSpec.frames: expected an int >= 0 (0: no clip), found {self.frames!r}")
        if not _finite(self.frame_rate) or self.frame_rate < 0:
            raise ValueError(f"WindowSpec.frame_rate: expected Hz >= 0, found {self.frame_rate!r}")
        if self.frames > 1 and self.frame_rate <= 0:
            raise ValueError(f"WindowSpec.frame_rate: expected Hz > 0 for a clip of frames={self.frames}, "
                             f"found {self.frame_rate!r}")
        if self.hop_seconds is not None and (not _finite(self.hop_seconds) or self.hop_seconds <= 0):
            raise ValueError(f"WindowSpec.hop_seconds: expected seconds > 0 or None (every hop), "
                             f"found {self.hop_seconds!r}")
        if isinstance(self.align, bool) or not isinstance(self.align, int) or self.align < 1:
            raise ValueError(f"WindowSpec.align: expected an int >= 1 (samples), found {self.align!r}")
        if self.frames > 0 and not self.needs_frame:
            object.__setattr__(self, "needs_frame", True)  # a clip is pictures: one flag for "takes frames"

    @property
    def samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    @property
    def frame_shape_prefix(self) -> tuple[int, ...]:
        """``(N,)`` for a clip, ``()`` for one frame: the picture argument is prefix + (H, W, 3)."""
        return (self.frames,) if self.frames > 0 else ()

    def frame_offsets(self) -> tuple[float, ...]:
        """Seconds from the window's end to each picture the model gets, oldest first (<= 0 for
        ``"end"``); one value for a single frame, N for a clip, none without pictures."""
        if not self.needs_frame:
            return ()
        n = max(1, self.frames)
        step = 1.0 / self.frame_rate if n > 1 else 0.0
        anchor = -0.5 * self.seconds if self.frame_at == FRAME_AT_CENTRE else 0.0
        last = anchor + (0.5 * (n - 1) * step if self.frame_at == FRAME_AT_CENTRE else 0.0)
        return tuple(float(last - (n - 1 - i) * step) for i in range(n))

    @property
    def frame_lookback_s(self) -> float:
        """How far before the window's end the oldest picture lies (0 without pictures): what a
        frame ring must hold beyond the newest frame, besides a hop of slack."""
        offsets = self.frame_offsets()
        return max(0.0, -min(offsets)) if offsets else 0.0


@dataclass(frozen=True)
class FrameScores:
    """A labeler's scores at frame resolution (a sound-event detector's output).

    Attributes:
        scores: (T, C) float32 in [0, 1], one row per frame, in label order.
        times: (T,) float64 seconds, strictly increasing: each frame's centre **relative to the
            end of the window** the labeler was given (so <= 0; a frame centred 20 ms before the
            end is -0.02). The scheduler adds the window's end time; the labeler never needs to
            know stream time.

    The rolling labels consume, of each window, only the frames newer than those they consumed
    before (by more than half a frame), so overlapping windows never count a frame twice.
    """

    scores: np.ndarray
    times: np.ndarray

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float32)
        times = np.asarray(self.times, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[0] < 1:
            raise ValueError(f"FrameScores.scores: expected shape (frames >= 1, classes), found {scores.shape}")
        if times.shape != (scores.shape[0],):
            raise ValueError(f"FrameScores.times: expected shape ({scores.shape[0]},), one per frame, "
                             f"found {times.shape}")
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise ValueError("FrameScores.times: expected finite, strictly increasing seconds, found "
                             f"{np.array2string(times[:6], precision=4)}{' ...' if times.size > 6 else ''}")
        if times[-1] > 1e-9:
            raise ValueError(f"FrameScores.times: expected seconds relative to the window's end (<= 0), "
                             f"found a last frame at {times[-1]:+.4f} s")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "times", times)

    @classmethod
    def spaced(cls, scores: np.ndarray, frame_hop_s: float, last_time: float = 0.0) -> "FrameScores":
        """Frames ``frame_hop_s`` apart, the last one centred ``last_time`` (<= 0) from the window's end.

        Args:
            scores: (T, C) float32.
            frame_hop_s: seconds between frame centres.
            last_time: the last frame's centre relative to the window's end.
        """
        if not _finite(frame_hop_s) or frame_hop_s <= 0:
            raise ValueError(f"FrameScores.spaced frame_hop_s: expected seconds > 0, found {frame_hop_s!r}")
        t = np.asarray(scores).shape[0] if np.ndim(scores) else 0
        return cls(scores, last_time - frame_hop_s * np.arange(t - 1, -1, -1, dtype=np.float64))

    @property
    def frames(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class Heatmap:
    """Where the sound comes from, over one frame.

    Attributes:
        map: (H, W) float32 in [0, 1], at the frame's resolution.
        peak: (x, y) pixel of the maximum.
        score: the map's peak score (the model's own confidence that a source is on screen).
        threshold: below this score the map means "no source on screen".
    """

    map: np.ndarray
    peak: tuple[int, int]
    score: float
    threshold: float

    @property
    def has_source(self) -> bool:
        return self.score >= self.threshold


@runtime_checkable
class Labeler(Protocol):
    """Turns an audio window (and maybe pictures) into per-class scores.

    Optional: ``reset()`` for a labeler that keeps state between calls (see the module
    docstring); ``metadata`` (its ``ModelMetadata``), read for the rolling-label setting.
    """

    window: WindowSpec
    labels: tuple[str, ...]

    def __call__(self, audio: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray | FrameScores:
        """``audio`` (window.samples,) float32; ``frame`` (H, W, 3) uint8 RGB when
        ``window.needs_frame``, (N, H, W, 3) oldest first when ``window.frames = N > 0``, else
        None → scores (C,) float32 in [0, 1], one per label, or a :class:`FrameScores`.

        The arrays are the scheduler's buffers, reused on the next call: copy what you keep."""
        ...


@runtime_checkable
class Localizer(Protocol):
    """Turns an audio window and a frame into a sound-source heatmap."""

    window: WindowSpec

    def __call__(self, audio: np.ndarray, frame: np.ndarray) -> Heatmap:
        """``audio`` (window.samples,) float32, ``frame`` (H, W, 3) uint8 RGB → Heatmap."""
        ...


def has_batch_axis(metadata) -> bool:
    """Whether every input of a model's metadata has a free first axis (named, e.g. ``"batch"``),
    so one runner call can take the windows of several streams."""
    return bool(metadata.inputs) and all(spec.shape and isinstance(spec.shape[0], str) for spec in metadata.inputs)


class FunctionLabeler:
    """A Labeler around any batch scoring function: a torch module's forward, an ONNX Runtime or
    TensorRT runner (the realtime layer wraps runners this way), a test double.

    Args:
        window: what the model needs.
        labels: one per score, in output order.
        predict: (B, window.samples) float32 → (B, C) scores in [0, 1]; B is 1 unless
            ``batchable``.
        batchable: ``predict`` takes any B (then :meth:`batch` is offered; else it is None).
    """

    def __init__(self, window: WindowSpec, labels, predict, *, batchable: bool = False):
        self.window = window
        self.labels = tuple(labels)
        self._predict = predict
        self._batch = np.zeros((1, window.samples), np.float32)  # reused every call; grown by batch()
        self.batch = self._batch_call if batchable else None

    def __call__(self, audio: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        if audio.shape != (self.window.samples,):
            raise ValueError(f"labeler input: expected audio of shape ({self.window.samples},) at {self.window.sample_rate} Hz, received {audio.shape}")
        self._batch[0] = audio
        scores = np.asarray(self._predict(self._batch[:1]), dtype=np.float32).reshape(-1)
        if scores.shape != (len(self.labels),):
            raise ValueError(f"labeler output: expected {len(self.labels)} scores, received {scores.shape}")
        return scores

    def _batch_call(self, calls) -> list[np.ndarray]:
        """``calls``: ``[(audio (window.samples,), frame or None), ...]`` → one ``(C,)`` array per
        call, from one ``predict`` call on the ``(B, window.samples)`` stack."""
        n = len(calls)
        if self._batch.shape[0] < n:
            self._batch = np.zeros((n, self.window.samples), np.float32)
        batch = self._batch[:n]
        for i, (audio, _frame) in enumerate(calls):
            if audio.shape != (self.window.samples,):
                raise ValueError(f"labeler input: expected audio of shape ({self.window.samples},) at "
                                 f"{self.window.sample_rate} Hz, received {audio.shape}")
            batch[i] = audio
        scores = np.asarray(self._predict(batch), dtype=np.float32).reshape(n, -1)
        if scores.shape[1] != len(self.labels):
            raise ValueError(f"labeler output: expected {len(self.labels)} scores per window, received {scores.shape}")
        return list(scores.copy())


def scores_output(metadata) -> tuple[str, str]:
    """(output name, how it becomes scores in [0, 1]: "identity", "sigmoid" or "softmax")."""
    names = [o.name for o in metadata.outputs]
    for name in ("probs", "scores", "probabilities"):
        if name in names:
            return name, "identity"
    if "logits" in names:
        return "logits", "sigmoid" if metadata.extra.get("multi_label") else "softmax"
    return names[0], "identity"


def as_scores(y, how: str) -> np.ndarray:
    """A model output as scores in [0, 1]: ``how`` from :func:`scores_output`."""
    y = np.asarray(y, np.float32)
    if how == "sigmoid":
        return 1.0 / (1.0 + np.exp(-y))
    if how == "softmax":
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return y


def runner_labeler(runner, metadata) -> FunctionLabeler:
    """The default live adapter: a waveform-in labeler on any runner (a features-in export,
    ``extra["frontend_outside"]``, gets ``models.audio.streaming.StreamingLabeler`` instead:
    ``models.families.live_adapter`` chooses).

    Args:
        runner: an open ``engines`` runner (``infer({name: array}) -> {name: array}``).
        metadata: the model's ``ModelMetadata``; its first input takes ``(1, window samples)``
            float32, its scores come from ``probs``/``scores``/``probabilities``, or ``logits``
            through a sigmoid (``extra["multi_label"]``) or a softmax.
    """
    name, how = scores_output(metadata)
    in_name = metadata.inputs[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        return as_scores(runner.infer({in_name: batch})[name], how)

    window = WindowSpec(metadata.window_seconds, metadata.sample_rate, needs_frame=False)
    return FunctionLabeler(window, metadata.labels, predict, batchable=has_batch_axis(metadata))
