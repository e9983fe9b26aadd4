"""The live-model protocol: what a labeler or a localizer declares and returns.

The live pipeline only schedules: every hop it cuts, for each model, the window that model
declares (ending at the newest sample) plus the frame nearest the window's alignment point, and
calls the model. Every model family (Slow-Fast, L³, the baseline, later ones) provides adapters
that implement these protocols and registers a factory in ``LIVE_MODELS``.

Factories take ``(source, *, backend="torch", device="cpu", threads=2)`` where ``source`` is a
run folder, an exported model with its sidecar, or a checkpoint file, and return a ``Labeler``
or a ``Localizer``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .registry import Registry

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


LIVE_MODELS: Registry = Registry("live model")
