"""Pretrained auditory and visual embeddings of clips, cached on disk (for the CRNN's audio-visual transfer).

Shared by families, not a family itself: it imports models.l3, models.slowfast, models.world,
models.core, models.audio and models.io, and no family imports through ``models.families``
(models/embeddings/weights.py says why).

===================  ========  ======  =======  =========================================================
extractor            kind      dim     rate     what
===================  ========  ======  =======  =========================================================
``l3-audio``         auditory  64      10 Hz    L³ audio subnet, 1 s windows at 48 kHz (demo localizer)
``slowfast-lite``    auditory  1152    10 Hz    slowfast-lite pooled features, 1.27 s at 16 kHz (demo labeler)
``l3-vision``        visual    128     2 Hz     L³ vision subnet, one frame (demo localizer)
``efficientnet-      visual    1280    2 Hz     ImageNet EfficientNet-Lite0 pooled features (+1000 posteriors);
lite0``                                         optional extra ``visual``
===================  ========  ======  =======  =========================================================

(dims of the default weights; other weights, other dims.)

Cost per second of clip, 10 s world clip, 2 threads, on a 2-core machine that was also training
(load 3-4, so upper figures; median of 3-5 runs): inputs (audio at 48 and 16 kHz, 20 frames)
39 ms, ``l3-audio`` 144-156 ms, ``slowfast-lite`` 82 ms, ``l3-vision`` 28 ms,
``efficientnet-lite0`` 372-487 ms (fastest run 295 ms).

==================  ========================================================================
module              job
==================  ========================================================================
``base``            the clip, the time grid, the extractor base classes, edge padding
``onnx_taps``       inner tensors of exported graphs as outputs (the demo models are ONNX only)
``weights``         weight sources (demo ONNX, run folders, checkpoints, modules), fingerprints
``l3_embeddings``   ``l3-audio``, ``l3-vision``
``slowfast_embeddings``  ``slowfast-lite``
``efficientnet``    ``efficientnet-lite0``
``cache``           per-clip ``.npz`` cache keyed by clip, extractor, fingerprint, rate, span
``inputs``          clip inputs from world scenes and from audio (and video) files
==================  ========================================================================

Example::

    from models.embeddings import EmbeddingCache, create_extractor, world_clip_inputs
    from models.world import BENCH, Scene

    extractors = [create_extractor(n) for n in ("l3-audio", "slowfast-lite", "l3-vision")]
    clip = world_clip_inputs(Scene(BENCH, 7), start=30.0, seconds=10.0, extractors=extractors)
    values, times = extractors[0](clip)          # (100, 64) float32 at 0.05, 0.15, ... 9.95 s
"""
from __future__ import annotations

from typing import Any, Callable

from models.embeddings.base import (AUDITORY, VISUAL, Clip, ClipAudio, EmbeddingInputError, Embeddings, Extractor,
                                    MissingExtraError, grid_times)
from models.embeddings.cache import CacheItem, EmbeddingCache
from models.embeddings.efficientnet import EfficientNetLite0Extractor
from models.embeddings.inputs import file_clip_inputs, find_video, world_clip_inputs
from models.embeddings.l3_embeddings import L3AudioExtractor, L3VisionExtractor
from models.embeddings.slowfast_embeddings import SlowFastLiteExtractor

__all__ = ["AUDITORY", "VISUAL", "EXTRACTORS", "CacheItem", "Clip", "ClipAudio", "EfficientNetLite0Extractor",
           "EmbeddingCache", "EmbeddingInputError", "Embeddings", "Extractor", "L3AudioExtractor", "L3VisionExtractor",
           "MissingExtraError", "SlowFastLiteExtractor", "create_extractor", "file_clip_inputs", "find_video",
           "grid_times", "world_clip_inputs"]

#: Extractor name → constructor (keyword arguments as the class takes them).
EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "l3-audio": L3AudioExtractor,
    "slowfast-lite": SlowFastLiteExtractor,
    "l3-vision": L3VisionExtractor,
    "efficientnet-lite0": EfficientNetLite0Extractor,
    "efficientnet-lite0+posteriors": lambda **kw: EfficientNetLite0Extractor(with_posteriors=True, **kw),
}


def create_extractor(name: str, **kwargs: Any) -> Extractor:
    """Build the extractor ``name`` (:data:`EXTRACTORS`) with its default weights unless ``kwargs`` say otherwise.

    Raises:
        KeyError: an unknown name (the message lists the known ones).
    """
    if name not in EXTRACTORS:
        raise KeyError(f"unknown embedding extractor {name!r} (known: {', '.join(EXTRACTORS)})")
    return EXTRACTORS[name](**kwargs)
