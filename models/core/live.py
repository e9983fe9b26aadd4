"""The live-model protocol: what a labeler or a localizer declares and returns.

The live pipeline only schedules: every hop it cuts, for each model, the window that model
declares (ending at the newest sample) plus the frame nearest the window's alignment point, and
calls the model. A model family's live adapter (``models.core.family.Family.live``) turns an open
runner of any backend into a ``Labeler`` or ``Localizer``; :func:`runner_labeler` serves the
waveform-in labelers of every family that needs nothing more.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


# Where, inside the audio window, the frame a model is given was taken.
FRAME_AT_CENTRE = "centre"
FRAME_AT_END = "end"


@dataclass(frozen=True)
class WindowSpec:
    """The input a live model asks for every time it runs.

    Attributes:
        seconds: audio window length; the window ends at the newest sample.
        sample_rate: the rate the audio must be delivered at (the pipeline resamples).
        needs_frame: whether a camera frame goes with the window.
        frame_at: FRAME_AT_CENTRE or FRAME_AT_END: which instant of the window the frame shows.
    """

    seconds: float
    sample_rate: int
    needs_frame: bool = False
    frame_at: str = FRAME_AT_END

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"WindowSpec.seconds: expected > 0, found {self.seconds}")
        if self.sample_rate <= 0:
            raise ValueError(f"WindowSpec.sample_rate: expected > 0, found {self.sample_rate}")
        if self.frame_at not in (FRAME_AT_CENTRE, FRAME_AT_END):
            raise ValueError(f"WindowSpec.frame_at: expected {FRAME_AT_CENTRE!r} or {FRAME_AT_END!r}, found {self.frame_at!r}")

    @property
    def samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))


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
    """Turns an audio window (and maybe a frame) into per-class scores."""

    window: WindowSpec
    labels: tuple[str, ...]

    def __call__(self, audio: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        """Scores (C,) float32 in [0, 1], one per label, for ``audio`` (window.samples,) float32
        and ``frame`` (H, W, 3) uint8 RGB when ``window.needs_frame``."""
        ...


@runtime_checkable
class Localizer(Protocol):
    """Turns an audio window and a frame into a sound-source heatmap."""

    window: WindowSpec

    def __call__(self, audio: np.ndarray, frame: np.ndarray) -> Heatmap:
        """``audio`` (window.samples,) float32, ``frame`` (H, W, 3) uint8 RGB → Heatmap."""
        ...


class FunctionLabeler:
    """A Labeler around any batch scoring function: a torch module's forward, an ONNX Runtime or
    TensorRT runner (the realtime layer wraps runners this way), a test double.

    Args:
        window: what the model needs.
        labels: one per score, in output order.
        predict: (1, window.samples) float32 → (1, C) scores in [0, 1].
    """

    def __init__(self, window: WindowSpec, labels, predict):
        self.window = window
        self.labels = tuple(labels)
        self._predict = predict
        self._batch = np.zeros((1, window.samples), np.float32)  # reused every call

    def __call__(self, audio: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        if audio.shape != (self.window.samples,):
            raise ValueError(f"labeler input: expected audio of shape ({self.window.samples},) at {self.window.sample_rate} Hz, received {audio.shape}")
        self._batch[0] = audio
        scores = np.asarray(self._predict(self._batch), dtype=np.float32).reshape(-1)
        if scores.shape != (len(self.labels),):
            raise ValueError(f"labeler output: expected {len(self.labels)} scores, received {scores.shape}")
        return scores


def scores_output(metadata) -> tuple[str, str]:
    """(output name, how it becomes scores in [0, 1]: "identity", "sigmoid" or "softmax")."""
    names = [o.name for o in metadata.outputs]
    for name in ("probs", "scores", "probabilities"):
        if name in names:
            return name, "identity"
    if "logits" in names:
        return "logits", "sigmoid" if metadata.extra.get("multi_label") else "softmax"
    return names[0], "identity"


def runner_labeler(runner, metadata) -> FunctionLabeler:
    """The default live adapter: a waveform-in labeler on any runner.

    Args:
        runner: an open ``engines`` runner (``infer({name: array}) -> {name: array}``).
        metadata: the model's ``ModelMetadata``; its first input takes ``(1, window samples)``
            float32, its scores come from ``probs``/``scores``/``probabilities``, or ``logits``
            through a sigmoid (``extra["multi_label"]``) or a softmax.
    """
    name, how = scores_output(metadata)
    in_name = metadata.inputs[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        y = np.asarray(runner.infer({in_name: batch})[name], np.float32)
        if how == "sigmoid":
            return 1.0 / (1.0 + np.exp(-y))
        if how == "softmax":
            e = np.exp(y - y.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        return y

    window = WindowSpec(metadata.window_seconds, metadata.sample_rate, needs_frame=False)
    return FunctionLabeler(window, metadata.labels, predict)
