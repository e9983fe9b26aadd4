"""The worker side of clip decoding, kept free of torch so decode workers start fast.

``decode_many`` runs :func:`decode_clip` in fresh worker processes (a crash costs one clip);
each worker imports this module and what it pickles (:class:`ClipSpec`), so nothing here may
import torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.io.media import MediaDecodeError, read_audio, read_video_frames


@dataclass(frozen=True)
class ClipSpec:
    """One clip of a dataset: a media file, its labels and an optional span in it.

    A ``ClipSpec`` is path-like (``os.fspath(spec)`` is its file), so skip reports list clips
    by their path.

    Attributes:
        path: The media file.
        labels: Its labels (class names, ontology ids...); ``()`` for unlabeled clips.
        start: First second to decode, or None for the file's start.
        stop: Second to stop before, or None for the file's end.
        key: A stable id (defaults to the file name), e.g. for writing predictions.
    """

    path: Path
    labels: tuple[str, ...] = ()
    start: float | None = None
    stop: float | None = None
    key: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "labels", tuple(self.labels))
        if not self.key:
            object.__setattr__(self, "key", self.path.name)
        if self.start is not None and self.start < 0:
            raise ValueError(f"{self.path}: start must be >= 0 s, found {self.start}")
        if self.start is not None and self.stop is not None and self.stop <= self.start:
            raise ValueError(f"{self.path}: stop ({self.stop} s) must come after start ({self.start} s)")

    def __fspath__(self) -> str:
        return os.fspath(self.path)



def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut to its first ``n`` samples, or zero-padded at the end to ``n`` (float32)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) >= n:
        return np.ascontiguousarray(x[:n])
    return np.concatenate([x, np.zeros(n - len(x), np.float32)])


def decode_clip(spec: ClipSpec, *, sample_rate: int, n_samples: int, min_samples: int, num_frames: int,
                 frame_size: tuple[int, int] | None) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Worker side of :meth:`ClipIndex.decode`: ``(audio (n_samples,), decoded length, frames or None)``."""
    wave, _ = read_audio(spec.path, sample_rate=sample_rate, mono=True, start=spec.start, stop=spec.stop)
    if len(wave) < min_samples:
        raise MediaDecodeError(spec.path, f"decoded {len(wave)} samples, fewer than the {min_samples} required")
    frames = None
    if num_frames:
        all_frames, _ = read_video_frames(spec.path, start=spec.start, stop=spec.stop, size=frame_size)
        if len(all_frames) == 0:
            raise MediaDecodeError(spec.path, "no video frames in the clip's span")
        frames = all_frames[np.linspace(0, len(all_frames) - 1, num_frames).round().astype(np.int64)]
    return fit_length(wave, n_samples), len(wave), frames
