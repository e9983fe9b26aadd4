"""``l3-audio`` and ``l3-vision``: the two L³-Net subnets' embeddings (models/l3/network.py).

* ``l3-audio``: :meth:`L3Net.embed_audio`, the global max over the last audio conv map (64-d for
  the demo ``lite`` localizer, 512 at paper size), of the 1 s window at 48 kHz centred on each
  grid time; 10 per second by default.
* ``l3-vision``: :meth:`L3Net.embed_vision` (128-d for the demo model) of the frame nearest each
  grid time, preprocessed as in training (squashed to the network's square input, ``x / 127.5 − 1``);
  2 per second.

Weights (models/embeddings/weights.py): the demo localizer by default (ONNX, the tensors of
models/embeddings/onnx_taps.py), an ``.onnx`` export, a run folder or checkpoint of recipe
``l3``/``l3-lite``, a bare L³ checkpoint, or an :class:`L3Net`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from models.embeddings.base import FrameExtractor, WindowedAudioExtractor, run_tap_or_module
from models.embeddings.onnx_taps import TappedSession, l3_embedding_tap, model_path
from models.embeddings.weights import DEMO_LOCALIZER, describe, file_fingerprint, rebuild_from_run, state_fingerprint
from models.l3.network import SAMPLE_RATE, WINDOW_SAMPLES, L3Net, load_checkpoint, preprocess_frames
from models.l3.recipe import L3LiteRecipe, L3Recipe

__all__ = ["L3AudioExtractor", "L3VisionExtractor", "load_l3"]

L3_RECIPES = {L3Recipe.name: L3Recipe, L3LiteRecipe.name: L3LiteRecipe}

Source = "str | os.PathLike | L3Net | None"


def _is_bare_l3_checkpoint(path: Path) -> bool:
    if path.suffix != ".pt" or not path.is_file():
        return False
    data = torch.load(path, map_location="cpu", weights_only=True)
    return isinstance(data, dict) and {"config", "model_state"} <= set(data) and "recipe" not in data


def load_l3(source: str | os.PathLike | L3Net | None) -> tuple[L3Net | Path, str, str]:
    """Resolve an L³ weights source: ``(L3Net in eval mode, or the .onnx path; fingerprint; description)``."""
    if source is None:
        source = DEMO_LOCALIZER
    if isinstance(source, L3Net):
        return source.eval(), state_fingerprint(source), "in-memory L3Net"
    path = Path(source)
    if path.suffix == ".onnx":
        path = model_path(path)
        return path, file_fingerprint(path), describe(path)
    if _is_bare_l3_checkpoint(path):
        model, _ = load_checkpoint(path)
        return model, file_fingerprint(path), describe(path)
    _, model, checkpoint = rebuild_from_run(path, L3_RECIPES, "l3 embeddings")
    return model, file_fingerprint(checkpoint), describe(checkpoint)


def _open_l3(extractor, source, rate_hz: float, threads: int | None, batch_size: int, branch: str):
    """Load the L³ weights of ``source`` into ``extractor`` (fingerprint, weights, rate, batch
    size, and a torch ``_model`` or an ONNX ``_session`` tapping ``branch``); returns what
    :func:`load_l3` gave (an ``L3Net`` or an ONNX model)."""
    if not rate_hz > 0:
        raise ValueError(f"{extractor.name}: expected rate_hz > 0, found {rate_hz!r}")
    net, extractor.fingerprint, extractor.weights = load_l3(source)
    extractor.rate_hz, extractor.batch_size = float(rate_hz), int(batch_size)
    if isinstance(net, L3Net):
        extractor._model, extractor._session = net, None
    else:
        extractor._model, extractor._session = None, TappedSession(l3_embedding_tap(net, branch), threads)
    return net


class L3AudioExtractor(WindowedAudioExtractor):
    """``l3-audio``: the L³ audio embedding of 1 s windows at 48 kHz, ``rate_hz`` per second.

    Args:
        source: weights (module docstring); None: the demo localizer.
        rate_hz: embeddings per second (10).
        threads: ONNX Runtime intra-op threads (None: its default); PyTorch uses its own setting.
        batch_size: windows per network call.
    """

    name = "l3-audio"
    sample_rate = SAMPLE_RATE
    window_samples = WINDOW_SAMPLES

    def __init__(self, source: str | os.PathLike | L3Net | None = None, rate_hz: float = 10.0,
                 threads: int | None = None, batch_size: int = 32) -> None:
        net = _open_l3(self, source, rate_hz, threads, batch_size, "audio")
        self.dim = net.config.audio_dim if self._model is not None else self._session.dim

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        return run_tap_or_module(self._session, self._model, lambda x: self._model.embed_audio(x), windows)


class L3VisionExtractor(FrameExtractor):
    """``l3-vision``: the L³ vision embedding of the frame nearest each grid time, ``rate_hz`` per second.

    Args: as :class:`L3AudioExtractor` (``rate_hz`` default 2).
    """

    name = "l3-vision"

    def __init__(self, source: str | os.PathLike | L3Net | None = None, rate_hz: float = 2.0,
                 threads: int | None = None, batch_size: int = 16) -> None:
        net = _open_l3(self, source, rate_hz, threads, batch_size, "vision")
        if self._model is not None:
            self.dim, self.image_size = net.config.vision_dim, net.config.image_size
        else:
            self.dim = self._session.dim
            self.image_size = int(self._session._session.get_inputs()[0].shape[-1])

    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        x = preprocess_frames(frames, self.image_size)  # (B, 3, S, S)
        return run_tap_or_module(self._session, self._model, lambda t: self._model.embed_vision(t), x.numpy())
