"""Features-in exports: the front end kept outside the graph, computed by the live pipeline.

``python -m models.export RUN --frontend outside`` writes ``model.logmel.onnx``: the network
after the front end, taking the log-mel ``(batch, T, F)`` the model's own front end would
compute from its window. Live, the labeler computes those features with
:class:`models.audio.streaming.StreamingFrontEnd` (numpy FFT, only the frames that are new each
hop; windows aligned on the front end's hop) and runs the graph on them
(``models.core.live.runner_labeler`` reads ``extra["frontend_outside"]``). An in-graph STFT
costs ONNX Runtime several times what the network does for long, finely hopped windows (the
EPIC configuration: 400 frames of a 2048-point FFT per 2 s window); outside, a hop costs its
new frames only.

A model qualifies when its export wrapper holds its :class:`~models.audio.frontend.FrontEnd` as
``frontend`` and runs the rest as ``from_features(feats)`` (the Slow-Fast wrapper does).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.audio.frontend import FrontEnd
from models.core.family import ExportableModel
from models.core.metadata import TensorSpec

__all__ = ["FeaturesIn", "features_in", "features_path"]

#: The input name of a features-in export.
FEATURES_INPUT = "logmel"


class FeaturesIn(nn.Module):
    """``wrapper.from_features`` as a module: features ``(B, T, F)`` -> the wrapper's outputs."""

    def __init__(self, wrapper: nn.Module) -> None:
        super().__init__()
        self.wrapper = wrapper

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.wrapper.from_features(feats)


def features_in(model: ExportableModel) -> ExportableModel:
    """The features-in variant of a waveform-in exportable model.

    Raises:
        ValueError: the model's wrapper has no separable front end (names what was expected),
            or it takes more than one input.
    """
    module, meta = model.module, model.metadata
    frontend = getattr(module, "frontend", None)
    if not isinstance(frontend, FrontEnd) or not callable(getattr(module, "from_features", None)):
        raise ValueError(f"--frontend outside: the {meta.family} export ({type(module).__name__}) keeps its front end "
                         f"inside; expected a wrapper with a FrontEnd `frontend` and `from_features` (Slow-Fast has one)")
    if len(meta.inputs) != 1 or len(model.example_inputs) != 1:
        raise ValueError(f"--frontend outside: expected one waveform input, found {[s.name for s in meta.inputs]}")
    audio = next(iter(model.example_inputs.values()))
    with torch.no_grad():
        feats = frontend(audio).detach()  # (B, T, F): the example the graph is verified on
    _, frames, bins = feats.shape
    metadata = meta.replace(
        inputs=(TensorSpec(FEATURES_INPUT, ("batch", int(frames), int(bins)), "float32"),),
        extra={**meta.extra, "frontend_outside": True, "waveform_input": meta.inputs[0].name})
    return ExportableModel(FeaturesIn(module).eval(), {FEATURES_INPUT: feats}, {FEATURES_INPUT: {0: "batch"}},
                           metadata)


def features_path(onnx_path) -> Path:
    """``model.onnx`` -> ``model.logmel.onnx``."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}.logmel{p.suffix}")
