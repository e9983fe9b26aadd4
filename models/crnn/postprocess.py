"""From frame probabilities to events: per-class thresholds, median filtering, runs of frames.

The DCASE baseline's decoding: threshold the frame probabilities (0.5 by default, or one value
per class), median-filter each class's binary track (7 frames in the 2021 baseline), and turn
every run of active frames into an event from its first frame's start to its last frame's end.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from models.core.events import LabeledEvent
from models.crnn.frames import FrameGrid


def class_thresholds(thresholds: float | Sequence[float], classes: int) -> np.ndarray:
    """``(C,)`` thresholds from one value or one per class (ValueError otherwise)."""
    out = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (classes,)) if np.ndim(thresholds) == 0 \
        else np.asarray(thresholds, dtype=np.float64)
    if out.shape != (classes,):
        raise ValueError(f"thresholds: expected one value or {classes}, found {np.shape(thresholds)}")
    if np.any((out < 0) | (out > 1)):
        raise ValueError(f"thresholds: expected values in [0, 1], found {out.tolist()}")
    return out


def median_filter_binary(active: np.ndarray, frames: int) -> np.ndarray:
    """Centred median filter of odd length ``frames`` along axis 0 of a ``(T, C)`` boolean track
    (edges: the window shrinks, as a majority over the frames that exist)."""
    if frames <= 1:
        return active.copy()
    if frames % 2 == 0:
        raise ValueError(f"median filter: expected an odd length, found {frames}")
    half = frames // 2
    counts = np.cumsum(np.pad(active.astype(np.int32), ((half + 1, half), (0, 0))), axis=0)
    ones = counts[frames:] - counts[:-frames]  # active frames in each window (T, C)
    t = active.shape[0]
    idx = np.arange(t)
    size = (np.minimum(idx + half, t - 1) - np.maximum(idx - half, 0) + 1)[:, None]
    return 2 * ones > size


def frames_to_events(probs: np.ndarray, grid: FrameGrid, classes: Sequence[str], filename: str, *,
                     thresholds: float | Sequence[float] = 0.5, median_frames: int = 7,
                     start_offset: float = 0.0) -> list[LabeledEvent]:
    """Events of one clip from its ``(T, C)`` frame probabilities.

    A frame spans ``centre ± frame_seconds / 2`` (:meth:`FrameGrid.centres`); ``start_offset``
    is added to every time (a clip cut from a longer stream).
    """
    t, c = probs.shape
    active = median_filter_binary(probs >= class_thresholds(thresholds, c)[None], median_frames)
    centres = grid.centres(t) + start_offset
    half = grid.frame_seconds / 2
    events = []
    for k in range(c):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], active[:, k].astype(np.int8), [0]])))
        for on, off in zip(edges[::2], edges[1::2]):
            events.append(LabeledEvent(filename, max(0.0, float(centres[on] - half)), float(centres[off - 1] + half),
                                       classes[k]))
    return sorted(events, key=lambda e: (e.onset, e.label))
