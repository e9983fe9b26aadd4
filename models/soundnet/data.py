"""Teacher-student training items: crops of unlabelled video sound with the teacher's posteriors
of the frames under each output step.

A **source** is a world scene (``synthetic:SEED``, frames rendered) or a video file of a folder
(the video-folder format, models/datasets/formats/video_folder.py; frames decoded with PyAV at
224x224). Its audio is mono 22,050 Hz, read once and kept in memory; a source shorter than one
crop is tiled to the crop's length, as the authors' loader tiles short files (a tiled instant
shows the frame of the same instant of the original).

**Crops** start at whole multiples of the student's output stride (65,536 samples, 2.97 s, for
the 8-layer sizes), so output step ``j`` of the crop starting at ``k * stride`` is step ``k + j``
of one grid per source, centred at ``(offset + (k + j) * stride) / 22050`` s. The teacher sees
the frame nearest each grid time, once per source: :class:`models.soundnet.teacher.PosteriorCache`
keeps the posteriors on disk, so later epochs (and later runs) render or decode no frame and run
no teacher.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from models.soundnet.network import SAMPLE_RATE, TimeGrid
from models.soundnet.teacher import PosteriorCache, Teacher
from models.world import Scene, WorldConfig

logger = logging.getLogger(__name__)

VIDEO_FRAME_SIZE = (224, 224)  # decoded frames are squashed to the teacher's input size


class Source:
    """A video or world scene: ``id``, ``audio`` ((N,) float32 at 22,050 Hz), ``seconds`` (length
    of the picture track) and :meth:`frames`."""

    id: str
    audio: np.ndarray
    seconds: float

    def frames(self, times: np.ndarray) -> tuple[np.ndarray, int]:
        """The frames nearest ``times`` (seconds, wrapped into the source's length) as ``(T, H, W,
        3)`` uint8 RGB, and how many frames were rendered or decoded to get them."""
        raise NotImplementedError


class WorldSource(Source):
    """The first ``seconds`` of a world scene."""

    def __init__(self, world: str, config: WorldConfig, seed: int, seconds: float):
        self.config, self.seed, self.seconds = config, int(seed), float(seconds)
        self.id = f"synthetic:{world}:{self.seed}:{self.seconds:g}s"
        self.audio = Scene(config, self.seed).render_audio(0, round(seconds * SAMPLE_RATE), SAMPLE_RATE)
        self.audio = np.asarray(self.audio, np.float32)

    def frames(self, times: np.ndarray) -> tuple[np.ndarray, int]:
        scene = Scene(self.config, self.seed, event_cache=8)
        fps = self.config.fps
        last = math.floor(self.seconds * fps) - 1
        index = np.clip(np.round(np.mod(times, self.seconds) * fps).astype(np.int64), 0, last)
        return np.stack([scene.render_frame(int(i))[0] for i in index]), len(index)


class VideoFileSource(Source):
    """A video file with an audio track (audio decoded now, frames on a teacher cache miss)."""

    def __init__(self, path: Path, source_id: str, max_seconds: float | None = None):
        from models.io.media import read_audio

        self.path, self.id = Path(path), source_id
        self.max_seconds = max_seconds
        audio, _ = read_audio(self.path, sample_rate=SAMPLE_RATE, mono=True, stop=max_seconds)
        if audio.size < SAMPLE_RATE // 10:
            raise ValueError(f"{source_id}: expected at least 0.1 s of audio, found {audio.size} samples")
        self.audio = np.ascontiguousarray(audio, np.float32)
        self.seconds = self.audio.size / SAMPLE_RATE

    def frames(self, times: np.ndarray) -> tuple[np.ndarray, int]:
        from models.io.media import read_video_frames

        decoded, stamps = read_video_frames(self.path, stop=self.max_seconds, size=VIDEO_FRAME_SIZE)
        if len(decoded) == 0:
            raise ValueError(f"{self.id}: no video frames decoded")
        span = max(float(stamps[-1]), 1e-6)
        wrapped = np.mod(times, span + 1.0 / 30)
        pick = np.abs(stamps[None, :] - wrapped[:, None]).argmin(axis=1)
        return decoded[pick], len(decoded)


def video_folder_sources(root: Path, max_seconds: float | None = None) -> list[VideoFileSource]:
    """Every video of a video folder that has decodable audio (the others skipped with a warning)."""
    from models.datasets.formats.video_folder import read_video_folder
    from models.io.media import MediaDecodeError

    out = []
    for media in read_video_folder(root):
        try:
            out.append(VideoFileSource(media.path, media.relpath, max_seconds))
        except (MediaDecodeError, ValueError, FileNotFoundError) as e:
            logger.warning("skipping %s: %s", media.relpath, str(e).splitlines()[0])
    if not out:
        raise ValueError(f"{root}: expected videos with an audio track (.mp4 .mkv .webm .avi .mov), found none usable")
    return out


@dataclass(frozen=True)
class Crop:
    source: int  # index into the sources
    step: int  # first output step of the crop on its source's grid (crop start = step * stride)


class TeacherCrops(Dataset):
    """Crops of ``crop_samples`` with the teacher's posteriors of their output steps.

    Items: ``{"audio": (crop_samples,) float32, "targets": (T, K) float32}`` with T the student's
    output steps per crop, and ``"scene_targets": (T, K')`` with a scene teacher.

    Args:
        sources: the videos or scenes.
        grid: the student's output grid (stride and offset in samples).
        crop_samples: audio per item.
        steps: T, the student's output steps for ``crop_samples``.
        teacher, cache: the (object) teacher and the posterior cache.
        scene_teacher: a second teacher for the scene head, or None.
        items: items per epoch (0: every crop once; more: crops repeat).
        gain_db: random gain per item, +-dB (0: none).
        seed: of the gain.
    """

    def __init__(self, sources: Sequence[Source], grid: TimeGrid, crop_samples: int, steps: int, teacher: Teacher,
                 cache: PosteriorCache, items: int = 0, gain_db: float = 0.0, seed: int = 0,
                 scene_teacher: Teacher | None = None):
        if steps < 1:
            raise ValueError(f"TeacherCrops: expected crops with at least one output step, found {crop_samples} "
                             f"samples giving {steps}")
        self.sources, self.grid, self.crop_samples, self.steps = list(sources), grid, int(crop_samples), int(steps)
        self.teacher, self.cache, self.gain_db, self.seed = teacher, cache, float(gain_db), int(seed)
        self.scene_teacher = scene_teacher
        self.crops: list[Crop] = []
        for i, s in enumerate(self.sources):
            n = max(s.audio.size, self.crop_samples)
            self.crops += [Crop(i, k) for k in range((n - self.crop_samples) // grid.stride + 1)]
        self.items = max(int(items), len(self.crops))
        self._targets: dict[tuple[str, int], np.ndarray] = {}  # per teacher and source, read from the cache once

    def __len__(self) -> int:
        return self.items

    def source_steps(self, i: int) -> int:
        """Steps of source ``i``'s grid that crops use."""
        return max(c.step for c in self.crops if c.source == i) + self.steps

    def targets(self, i: int, teacher: Teacher | None = None) -> np.ndarray:
        """``(steps of the source, K)`` posteriors of source ``i`` by ``teacher`` (None: the object
        teacher), cached."""
        teacher = teacher or self.teacher
        key = (teacher.name, i)
        if key not in self._targets:
            times = self.grid.centres(self.source_steps(i)).numpy()
            source = self.sources[i]
            self._targets[key] = self.cache.posteriors(source.id, teacher, times, source.frames)
        return self._targets[key]

    def prepare(self) -> None:
        """Every source's targets now (the teacher runs on cache misses only)."""
        for i in range(len(self.sources)):
            self.targets(i)
            if self.scene_teacher is not None:
                self.targets(i, self.scene_teacher)

    def audio(self, crop: Crop) -> np.ndarray:
        a = self.sources[crop.source].audio
        if a.size < self.crop_samples:
            a = np.tile(a, -(-self.crop_samples // a.size))
        start = crop.step * self.grid.stride
        return np.array(a[start:start + self.crop_samples], dtype=np.float32)

    def __getitem__(self, address) -> dict[str, torch.Tensor]:
        epoch, index = address if isinstance(address, tuple) else (0, address)
        crop = self.crops[index % len(self.crops)]
        audio = self.audio(crop)
        if self.gain_db > 0:
            rng = np.random.default_rng([self.seed, epoch, index])
            audio *= np.float32(10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0))
        steps = slice(crop.step, crop.step + self.steps)
        item = {"audio": torch.from_numpy(audio),
                "targets": torch.from_numpy(np.ascontiguousarray(self.targets(crop.source)[steps]))}
        if self.scene_teacher is not None:
            scenes = self.targets(crop.source, self.scene_teacher)[steps]
            item["scene_targets"] = torch.from_numpy(np.ascontiguousarray(scenes))
        return item
