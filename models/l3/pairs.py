"""Audio-visual correspondence pairs: frame augmentation and the AVC pairs dataset."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from models.l3.network import preprocess_frames
from models.l3.sources import AVSource

#: ``kind`` of an item: a positive, a negative from another source, a negative from the same source.
KIND_POSITIVE, KIND_OTHER_SOURCE, KIND_SAME_SOURCE = 0, 1, 2


@dataclass(frozen=True)
class FrameAugment:
    """Training-time frame augmentation.

    Attributes:
        crop_min: smallest side of the random square crop, as a fraction of the shorter side
            (1.0: no crop).
        flip: random horizontal flip with p = 0.5.
        jitter: brightness, contrast and saturation each scaled by U(1 − jitter, 1 + jitter).
    """

    crop_min: float = 0.8
    flip: bool = True
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.crop_min <= 1.0:
            raise ValueError(f"FrameAugment.crop_min: expected in (0, 1], found {self.crop_min!r}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"FrameAugment.jitter: expected in [0, 1), found {self.jitter!r}")


def augment_frame(frame: np.ndarray, image_size: int, aug: FrameAugment | None,
                  rng: np.random.Generator | None) -> torch.Tensor:
    """A frame as the vision input, augmented when ``aug`` is given.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        image_size: side ``S`` of the input.
        aug: the augmentation, or None for the plain :func:`~models.l3.network.preprocess_frames`.
        rng: the item's generator (needed with ``aug``).

    Returns:
        ``(3, S, S)`` float32 in [-1, 1].
    """
    if aug is None:
        return preprocess_frames(frame, image_size)[0]
    h, w = frame.shape[:2]
    side = min(h, w)
    crop = max(1, int(round(side * rng.uniform(aug.crop_min, 1.0))))
    y0 = int(rng.integers(0, h - crop + 1))
    x0 = int(rng.integers(0, w - crop + 1))
    patch = frame[y0 : y0 + crop, x0 : x0 + crop]
    if aug.flip and rng.random() < 0.5:
        patch = patch[:, ::-1]
    patch = np.ascontiguousarray(patch)
    interp = cv2.INTER_AREA if crop > image_size else cv2.INTER_LINEAR
    x = cv2.resize(patch, (image_size, image_size), interpolation=interp).astype(np.float32)
    b, c, s = (float(v) for v in rng.uniform(1.0 - aug.jitter, 1.0 + aug.jitter, 3))
    x *= b  # brightness
    x = x.mean() + (x - x.mean()) * c  # contrast
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * s  # saturation
    x = np.clip(x, 0.0, 255.0) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))


class AVCPairs(Dataset):
    """Positive and negative (frame, second of audio) pairs, items addressed by ``(epoch, index)``.

    Item ``(epoch, index)`` is a pure function of ``(seed, epoch, index)`` (of ``(seed, index)``
    when ``fixed``): even indices are positives, odd ones negatives.

    Args:
        sources: at least two sources with eligible frames.
        size: items per epoch.
        image_size: side of the vision input.
        seed: seeds every draw.
        same_video_negatives: fraction of negatives whose audio comes from the frame's own source.
        same_video_min_gap: seconds between the frame and such a negative's centre, at least.
        augment: frame augmentation, or None.
        gain: audio volume × U(1 − gain, 1 + gain) when > 0.
        fixed: ignore the epoch (evaluation sets).
        positives_only: every item is a positive (with ``batch_negatives`` the batch's cross-source
            combinations are the negatives, so the dataset's own negatives add nothing).
        group_size: with ``positives_only``, consecutive runs of ``group_size`` indices (index //
            group_size) share one source and take frames at least ``same_video_min_gap`` seconds
            apart (as far as the source allows), so that a batch cut in index order holds
            same-source pairs at different times: the recipe's ``scene_groups`` negatives.

    Items are dicts: ``frames (3, S, S)`` float32, ``audio (48000,)`` float32, ``label`` int64
    (1 = corresponds), ``kind`` int64 (:data:`KIND_POSITIVE`, :data:`KIND_OTHER_SOURCE`,
    :data:`KIND_SAME_SOURCE`), and the addresses ``frame_source``, ``frame_index``,
    ``audio_source``, ``audio_index`` (int64; source index and frame index within it: the
    audio is the second centred on that frame), ``frame_time`` (float64 seconds of the frame in
    its source).

    Raises:
        ValueError: fewer than two sources with eligible frames, or a bad argument.
    """

    def __init__(self, sources: Sequence[AVSource], size: int, image_size: int, seed: int = 0, *,
                 same_video_negatives: float = 0.0, same_video_min_gap: float = 2.0,
                 augment: FrameAugment | None = None, gain: float = 0.0, fixed: bool = False,
                 positives_only: bool = False, group_size: int = 1):
        if size < 1:
            raise ValueError(f"AVCPairs.size: expected >= 1, found {size}")
        if not 0.0 <= same_video_negatives <= 1.0:
            raise ValueError(f"same_video_negatives: expected a fraction in [0, 1], found {same_video_negatives!r}")
        if not 0.0 <= gain < 1.0:
            raise ValueError(f"gain: expected in [0, 1), found {gain!r}")
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1 \
                or (group_size > 1 and not positives_only):
            raise ValueError(f"group_size: expected a positive int, and 1 unless positives_only, found {group_size!r} "
                             f"(positives_only={positives_only})")
        self.group_size = group_size
        self.sources = list(sources)
        self.pool = [i for i, s in enumerate(self.sources) if len(s.eligible)]
        if len(self.pool) < 2:
            raise ValueError(f"AVCPairs: expected at least 2 sources with seconds above the energy floor, found "
                             f"{len(self.pool)} of {len(self.sources)}")
        self.size, self.image_size, self.seed = int(size), int(image_size), int(seed)
        self.same_video_negatives, self.same_video_min_gap = float(same_video_negatives), float(same_video_min_gap)
        self.augment, self.gain, self.fixed = augment, float(gain), bool(fixed)
        self.positives_only = bool(positives_only)

    def __len__(self) -> int:
        return self.size

    def address(self, epoch: int, index: int) -> tuple[int, int, int, int, int, np.random.Generator]:
        """``(kind, frame_source, frame_index, audio_source, audio_index, rng)`` of an item; the
        generator continues with the augmentation draws."""
        rng = np.random.default_rng([self.seed, 0 if self.fixed else int(epoch), int(index)])
        if self.group_size > 1:
            a, frames = self._group(epoch, index // self.group_size)
            k = frames[index % self.group_size]
            return KIND_POSITIVE, a, k, a, k, rng
        a = self.pool[int(rng.integers(len(self.pool)))]
        src = self.sources[a]
        k = int(src.eligible[int(rng.integers(len(src.eligible)))])
        if index % 2 == 0 or self.positives_only:
            return KIND_POSITIVE, a, k, a, k, rng
        if rng.random() < self.same_video_negatives:
            far = np.abs(src.frame_times[src.eligible] - src.frame_times[k]) >= self.same_video_min_gap
            choices = src.eligible[far]
            if len(choices):
                return KIND_SAME_SOURCE, a, k, a, int(choices[int(rng.integers(len(choices)))]), rng
        b = self.pool[int(rng.integers(len(self.pool) - 1))]
        b = b if b != a else self.pool[-1]  # uniform over the other sources
        other = self.sources[b]
        return KIND_OTHER_SOURCE, a, k, b, int(other.eligible[int(rng.integers(len(other.eligible)))]), rng

    def _group(self, epoch: int, group: int) -> tuple[int, list[int]]:
        """The source of a group and its ``group_size`` frame indices, spread ``same_video_min_gap`` apart
        where the source allows (a frame that cannot be placed after 32 draws is taken anyway)."""
        rng = np.random.default_rng([self.seed, 0 if self.fixed else int(epoch), int(group), 1])
        a = self.pool[int(rng.integers(len(self.pool)))]
        src = self.sources[a]
        chosen: list[int] = []
        for _ in range(self.group_size):
            for _attempt in range(32):
                k = int(src.eligible[int(rng.integers(len(src.eligible)))])
                if all(abs(src.frame_times[k] - src.frame_times[c]) >= self.same_video_min_gap for c in chosen):
                    break
            chosen.append(k)
        return a, chosen

    def __getitem__(self, address) -> dict[str, torch.Tensor]:
        epoch, index = address if isinstance(address, tuple) else (0, address)
        if not 0 <= index < self.size:
            raise IndexError(f"AVCPairs: index {index} out of range for {self.size} items")
        kind, a, k, b, j, rng = self.address(epoch, index)
        frames = augment_frame(self.sources[a].frame(k), self.image_size, self.augment, rng)
        audio = self.sources[b].window(j)
        if self.gain > 0:
            audio *= np.float32(rng.uniform(1.0 - self.gain, 1.0 + self.gain))
        return {
            "frames": frames, "audio": torch.from_numpy(audio),
            "label": torch.tensor(int(kind == KIND_POSITIVE)), "kind": torch.tensor(kind),
            "frame_source": torch.tensor(a), "frame_index": torch.tensor(k),
            "audio_source": torch.tensor(b), "audio_index": torch.tensor(j),
            "frame_time": torch.tensor(float(self.sources[a].frame_times[k]), dtype=torch.float64),
        }
