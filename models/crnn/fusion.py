"""Pretrained embeddings fused into the CRNN's input frame by frame (seed 003's audio-visual transfer).

A fused run names extractors of :mod:`models.embeddings` (``fuse=slowfast-lite,l3-vision``). For
every world scene a run reads, the embeddings of its rendered span are computed once, in chunks
of :data:`CHUNK_SECONDS`, and kept in the on-disk embedding cache (a second run, or the
evaluation of the same scenes, reads them back). A clip cut from the scene gets, for each of its
mel frames, the embedding of every extractor whose grid time lies nearest the frame's centre
(ties to the earlier one): ``(T_mel, sum of dims)``, the extractors side by side in the order named.
The network projects each extractor's block to rows of its input image
(:meth:`models.crnn.network.CRNN.input_image`).

The fused variants are offline: their extractors look up to half a window past a frame (slowfast-
lite's 1.27 s windows are centred), and the live streaming step runs the spectral network only.
"""
from __future__ import annotations

import inspect
from typing import Sequence

import numpy as np

from models.crnn.frames import FrameGrid
from models.embeddings.base import nearest_indices
from models.embeddings import EXTRACTORS, CacheItem, EmbeddingCache, Extractor, create_extractor, world_clip_inputs
from models.world import Scene
from models.world.scene import WorldConfig

__all__ = ["CHUNK_SECONDS", "SceneEmbeddings", "create_extractors", "mel_centres", "parse_fuse"]

#: Seconds of a scene embedded per cache entry (a whole number of steps at 10 and 2 per second).
CHUNK_SECONDS = 30.0


def parse_fuse(text: str) -> tuple[str, ...]:
    """``"slowfast-lite,l3-vision"`` -> the extractor names; ``""`` -> none.

    Raises:
        ValueError: an unknown or repeated name (the message lists the known ones).
    """
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in EXTRACTORS]
    if unknown:
        raise ValueError(f"fuse: unknown embedding extractor(s) {', '.join(unknown)}; known: {', '.join(EXTRACTORS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"fuse: each extractor once, found {text!r}")
    return names


def create_extractors(names: Sequence[str], threads: int | None = None) -> list[Extractor]:
    """The extractors with their default weights; ``threads`` goes to those that take a thread count."""
    out = []
    for name in names:
        takes_threads = "threads" in inspect.signature(EXTRACTORS[name]).parameters
        out.append(create_extractor(name, **({"threads": threads} if takes_threads else {})))
    return out


class SceneEmbeddings:
    """The embeddings of the first ``span_seconds`` of world scenes, on each extractor's grid.

    Args:
        world: the world preset's config; ``world_name`` its name (part of the cache's clip id).
        seeds: scene seeds, in the order a dataset numbers its scenes.
        span_seconds: seconds from each scene's start.
        extractors: what to fuse, in order.
        cache: where entries are kept.
        desc: the progress bar's label.
    """

    def __init__(self, world: WorldConfig, world_name: str, seeds: Sequence[int], span_seconds: float,
                 extractors: Sequence[Extractor], cache: EmbeddingCache, desc: str = "embedding the scenes"):
        if not extractors:
            raise ValueError("SceneEmbeddings: expected at least one extractor")
        self.extractors = tuple(extractors)
        self.dims = tuple(int(e.dim) for e in self.extractors)
        chunks = [(s, min(CHUNK_SECONDS, span_seconds - s))
                  for s in np.arange(0.0, span_seconds, CHUNK_SECONDS).tolist()]
        items = [CacheItem(self._clip_id(world_name, seed), start, seconds,
                           lambda seed=seed, start=start, seconds=seconds:
                           world_clip_inputs(Scene(world, seed), start, seconds, extractors=self.extractors))
                 for seed in seeds for start, seconds in chunks]
        cache.fill(items, self.extractors, desc=desc)
        #: per scene, per extractor: (values (K, dim) float32, times (K,) float64 seconds of the scene)
        self.tracks: list[list[tuple[np.ndarray, np.ndarray]]] = []
        for seed in seeds:
            per_extractor = []
            for e in self.extractors:
                parts = [cache.get(self._clip_id(world_name, seed), e, start=start, seconds=seconds)
                         for start, seconds in chunks]
                if any(p is None for p in parts):
                    raise RuntimeError(f"embedding cache {cache.root}: an entry of scene {seed} vanished while reading")
                per_extractor.append((np.concatenate([p.values for p in parts]),
                                      np.concatenate([p.times + start for p, (start, _) in zip(parts, chunks)])))
            self.tracks.append(per_extractor)

    @staticmethod
    def _clip_id(world_name: str, seed: int) -> str:
        return f"world:{world_name}:{seed}"

    @property
    def dim(self) -> int:
        return sum(self.dims)

    def frames(self, scene: int, start_seconds: float, centres: np.ndarray) -> np.ndarray:
        """``(len(centres), dim)`` float32: for each mel-frame centre (seconds from ``start_seconds``
        in scene ``scene``), every extractor's embedding nearest it in time, side by side."""
        t = start_seconds + np.asarray(centres, np.float64)
        out = []
        for values, times in self.tracks[scene]:
            out.append(values[nearest_indices(times, t)])
        return np.concatenate(out, axis=1).astype(np.float32, copy=False)


def mel_centres(grid: FrameGrid, mel_frames: int) -> np.ndarray:
    """``(mel_frames,)`` seconds from a clip's start to the centre of each mel frame (``center=False``)."""
    fe = grid.frontend
    return (np.arange(mel_frames, dtype=np.float64) * fe.hop_length + fe.n_fft / 2.0) / fe.sample_rate

