"""``slowfast-lite``: the demo labeler's pooled features before its classifier (models/slowfast/lite.py).

For each grid time, the 1.27 s window at 16 kHz (20 320 samples, the labeler's own window)
centred on it goes through the labeler's front end and Slow-Fast backbone; the embedding is
:meth:`WaveformSlowFast.features`, the concatenated global means of the two pathways' last maps
(1152-d at width 32), before dropout and the classifier. 10 per second by default.

Weights: the demo labeler by default (ONNX, the tensor of models/embeddings/onnx_taps.py), an
``.onnx`` export, a run folder or checkpoint of recipe ``slowfast-lite``, or a
:class:`WaveformSlowFast`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from models.core.metadata import ModelMetadata, sidecar_path
from models.embeddings.base import WindowedAudioExtractor, run_tap_or_module
from models.embeddings.onnx_taps import TappedSession, model_path, slowfast_features_tap
from models.embeddings.weights import DEMO_LABELER, describe, file_fingerprint, rebuild_from_run, state_fingerprint
from models.slowfast.lite import LITE_WINDOW_SECONDS, SlowFastLiteRecipe, WaveformSlowFast

__all__ = ["SlowFastLiteExtractor"]


class SlowFastLiteExtractor(WindowedAudioExtractor):
    """``slowfast-lite``: pooled Slow-Fast features of windows centred on the grid times.

    Args:
        source: weights (module docstring); None: the demo labeler.
        rate_hz: embeddings per second (10).
        threads: ONNX Runtime intra-op threads (None: its default).
        batch_size: windows per network call.
        window_seconds: the window for a :class:`WaveformSlowFast` given in memory (default
            1.27 s); files say their own (the ONNX input length, the run's config).
    """

    name = "slowfast-lite"

    def __init__(self, source: str | os.PathLike | WaveformSlowFast | None = None, rate_hz: float = 10.0,
                 threads: int | None = None, batch_size: int = 32, window_seconds: float = LITE_WINDOW_SECONDS) -> None:
        if not rate_hz > 0:
            raise ValueError(f"{self.name}: expected rate_hz > 0, found {rate_hz!r}")
        self.rate_hz, self.batch_size = float(rate_hz), int(batch_size)
        self._model, self._session = None, None
        if source is None:
            source = DEMO_LABELER
        if isinstance(source, WaveformSlowFast):
            self._model, self.fingerprint, self.weights = source.eval(), state_fingerprint(source), "in-memory WaveformSlowFast"
        elif Path(source).suffix == ".onnx":
            path = model_path(source)
            self._session = TappedSession(slowfast_features_tap(path), threads)
            self.fingerprint, self.weights = file_fingerprint(path), describe(path)
            sidecar = sidecar_path(path)
            rate = ModelMetadata.load(sidecar).sample_rate if sidecar.is_file() else None
            if rate is None:
                raise ValueError(f"{self.name}: {path} has no sidecar {sidecar.name} to say its sample rate")
            self.sample_rate = int(rate)
            self.window_samples = int(self._session._session.get_inputs()[0].shape[-1])
        else:
            recipe, self._model, checkpoint = rebuild_from_run(source, {SlowFastLiteRecipe.name: SlowFastLiteRecipe},
                                                               self.name)
            self.fingerprint, self.weights = file_fingerprint(checkpoint), describe(checkpoint)
            window_seconds = recipe.config.window_seconds
        if self._model is not None:
            self.sample_rate = int(self._model.frontend.config.sample_rate)
            self.window_samples = int(round(window_seconds * self.sample_rate))
            self.dim = int(self._model.net.config.feature_dim)
        else:
            self.dim = self._session.dim

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        return run_tap_or_module(self._session, self._model, lambda x: self._model.features(x), windows)
