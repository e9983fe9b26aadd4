"""An on-disk cache of per-clip embeddings.

One ``.npz`` file per (clip, extractor): ``ROOT/<extractor name>/<clip id, made file-safe>-<key>.npz``
holding ``times (T,)``, ``values (T, dim)`` and ``key``, the JSON of the fields the entry was made
for: clip id, extractor name, weights fingerprint, rate, dim, clip start and length, and the
cache format. ``<key>`` is the first 20 hex digits of that JSON's sha256, so other weights (a
new fingerprint), another rate or another span of the same clip get another file, and a file
whose stored key differs from the one asked for (a hash clash, a renamed file) is not used.

Files are written atomically (models/core/atomic.py): a reader never sees half a file. A file
that cannot be read (truncated, not an npz, wrong fields or shapes) gives a ``RuntimeWarning``
naming it and is recomputed and replaced.

Example::

    cache = EmbeddingCache("~/.cache/avlive/embeddings")
    emb = cache.get_or_compute("world:bench:7", extractor, lambda: extractor(clip), start=30.0, seconds=10.0)
    cache.fill(items, extractors)   # many clips: renders each clip's inputs once, progress bar
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from models.core.atomic import atomic_write_bytes
from models.embeddings.base import Clip, Embeddings, Extractor

__all__ = ["CACHE_FORMAT", "EmbeddingCache", "CacheItem"]

#: Bumped when what an entry holds changes meaning; part of every key.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class CacheItem:
    """One clip to fill: its id, span (seconds) and a function that builds its inputs (called on a miss only)."""

    clip_id: str
    start: float
    seconds: float
    inputs: Callable[[], Clip]


class EmbeddingCache:
    """Per-clip embeddings on disk under ``root`` (created when first written)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        self.hits = 0
        self.misses = 0

    # ---- keys

    @staticmethod
    def key_fields(clip_id: str, extractor: Extractor, start: float, seconds: float) -> dict:
        """What an entry is for (stored in the file and hashed into its name)."""
        if not isinstance(clip_id, str) or not clip_id:
            raise ValueError(f"EmbeddingCache: expected a non-empty clip id string, found {clip_id!r}")
        return {"format": CACHE_FORMAT, "clip": clip_id, "extractor": extractor.name,
                "fingerprint": extractor.fingerprint, "rate_hz": float(extractor.rate_hz), "dim": int(extractor.dim),
                "start": round(float(start), 6), "seconds": round(float(seconds), 6)}

    def path(self, clip_id: str, extractor: Extractor, start: float, seconds: float) -> Path:
        """The file of an entry (it may not exist)."""
        fields = self.key_fields(clip_id, extractor, start, seconds)
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", clip_id)[-80:].lstrip(".")
        return self.root / extractor.name / f"{safe}-{digest}.npz"

    # ---- entries

    def get(self, clip_id: str, extractor: Extractor, *, start: float, seconds: float) -> Embeddings | None:
        """The cached entry, or None when absent or unreadable (the latter with a RuntimeWarning)."""
        path = self.path(clip_id, extractor, start, seconds)
        if not path.exists():
            return None
        fields = self.key_fields(clip_id, extractor, start, seconds)
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = json.loads(str(data["key"]))
                times = np.asarray(data["times"], np.float64)
                values = np.asarray(data["values"], np.float32)
        except Exception as e:  # noqa: BLE001 - zipfile, numpy and json raise many types on a bad file
            warnings.warn(f"embedding cache: {path} is unreadable ({type(e).__name__}: {e}); recomputing",
                          RuntimeWarning, stacklevel=2)
            return None
        if stored != fields:
            warnings.warn(f"embedding cache: {path} holds another entry ({stored}); recomputing", RuntimeWarning,
                          stacklevel=2)
            return None
        if values.ndim != 2 or values.shape != (len(times), extractor.dim) or times.ndim != 1:
            warnings.warn(f"embedding cache: {path} holds values {values.shape} at times {times.shape}, expected "
                          f"(T, {extractor.dim}) at (T,); recomputing", RuntimeWarning, stacklevel=2)
            return None
        return Embeddings(values, times)

    def put(self, clip_id: str, extractor: Extractor, embeddings: Embeddings, *, start: float, seconds: float) -> Path:
        """Write an entry atomically; returns its path."""
        values, times = np.asarray(embeddings.values, np.float32), np.asarray(embeddings.times, np.float64)
        if values.ndim != 2 or values.shape != (len(times), extractor.dim):
            raise ValueError(f"EmbeddingCache.put: expected values (T, {extractor.dim}) at times (T,), "
                             f"found {values.shape} at {times.shape}")
        path = self.path(clip_id, extractor, start, seconds)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        key = json.dumps(self.key_fields(clip_id, extractor, start, seconds), sort_keys=True)
        np.savez(buffer, times=times, values=values, key=np.asarray(key))
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def get_or_compute(self, clip_id: str, extractor: Extractor, compute_fn: Callable[[], Embeddings], *,
                       start: float, seconds: float) -> Embeddings:
        """The cached entry, or ``compute_fn()`` written to the cache and returned."""
        found = self.get(clip_id, extractor, start=start, seconds=seconds)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        embeddings = compute_fn()
        self.put(clip_id, extractor, embeddings, start=start, seconds=seconds)
        return embeddings

    def fill(self, items: Iterable[CacheItem], extractors: Sequence[Extractor], *, progress: bool = True,
             desc: str = "embeddings") -> None:
        """Make sure every (item, extractor) entry exists; each item's inputs are built at most once.

        Args:
            items: the clips.
            extractors: the extractors to fill for each clip.
            progress: a tqdm bar over the clips.
        """
        items = list(items)
        for item in tqdm(items, desc=desc, unit="clip", disable=not progress):
            clip: list[Clip] = []

            def inputs() -> Clip:
                if not clip:
                    clip.append(item.inputs())
                return clip[0]

            for extractor in extractors:
                self.get_or_compute(item.clip_id, extractor, lambda e=extractor: e(inputs()),
                                    start=item.start, seconds=item.seconds)
