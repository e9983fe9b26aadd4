"""L³ live: the localizer adapter over any runner, and bare L³ checkpoints as a model file.

The adapter is the same for every backend: the runner (ONNX Runtime on ``model.onnx``, PyTorch
on :class:`HeatmapExport`, TensorRT on an engine) takes ``frames (1, 3, S, S)`` and ``audio
(1, 48000)`` and answers ``cell_probs (1, S/8, S/8)``, which becomes a :class:`Heatmap` over the
camera frame.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.core.family import ExportableModel, ModelFile
from models.core.live import FRAME_AT_CENTRE, Heatmap, WindowSpec, has_batch_axis
from models.core.metadata import ModelMetadata, TensorSpec
from models.l3.network import (SAMPLE_RATE, WINDOW_SAMPLES, L3Config, L3Export, L3Net, heatmap_from_cells,
                               load_checkpoint, preprocess_frames)

#: The two classes of the audio-visual correspondence head.
LABELS = ("not-corresponding", "corresponding")


class HeatmapExport(nn.Module):
    """:class:`L3Export`'s heatmap path with named arguments, as the generic exporter passes
    inputs: ``forward(frames (B, 3, S, S), audio (B, 48000)) → (avc_logits (B, 2), cell_probs (B, g, g))``."""

    def __init__(self, model: L3Net):
        super().__init__()
        self.inner = L3Export(model, "heatmap")

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner(frames, audio)


def heatmap_metadata(net: L3Config, extra: dict[str, Any]) -> ModelMetadata:
    """The metadata of a heatmap export of a network of config ``net``; ``extra`` adds to (and
    overrides) the live fields ``threshold``, ``threshold_source`` and ``frame_at``."""
    s, g = net.image_size, net.grid_size
    return ModelMetadata(
        family="l3", task="localizer", labels=LABELS, sample_rate=SAMPLE_RATE, window_seconds=1.0,
        needs_frame=True, frontend=net.frontend.to_dict(),
        inputs=(TensorSpec("frames", ("batch", 3, s, s), "float32"),
                TensorSpec("audio", ("batch", WINDOW_SAMPLES), "float32")),
        outputs=(TensorSpec("avc_logits", ("batch", 2), "float32"), TensorSpec("cell_probs", ("batch", g, g), "float32")),
        extra={"threshold": 0.5, "threshold_source": "default", "frame_at": FRAME_AT_CENTRE,
               "embedding_dim": net.audio_dim, "vision_embedding_dim": net.vision_dim, "network": net.to_dict(),
               "frame_preprocess": f"RGB resized to {s}x{s} (squashed), x / 127.5 - 1", **extra},
    )


def example_inputs(image_size: int) -> dict[str, torch.Tensor]:
    """Two random frame/audio pairs (fixed seed) for export and its verification."""
    rng = np.random.default_rng(0)
    return {"frames": torch.from_numpy(rng.uniform(-1, 1, (2, 3, image_size, image_size)).astype(np.float32)),
            "audio": torch.from_numpy((0.05 * rng.standard_normal((2, WINDOW_SAMPLES))).astype(np.float32))}


def exportable(model: L3Net, metadata: ModelMetadata) -> ExportableModel:
    """The heatmap path of ``model`` ready for a runner or export."""
    return ExportableModel(HeatmapExport(model.eval()).eval(), example_inputs(model.config.image_size),
                           {"frames": {0: "batch"}, "audio": {0: "batch"}}, metadata)


class RunnerLocalizer:
    """A live L³ localizer on any runner of the heatmap path; the frame is preprocessed as in
    training (RGB squashed to S×S, x / 127.5 - 1).

    Args:
        runner: an open runner (``infer({"frames", "audio"}) -> {"cell_probs", ...}``).
        metadata: the model's metadata: ``inputs[0]`` is ``frames`` (its last axis gives S),
            ``extra["threshold"]`` (default 0.5) and ``extra["frame_at"]`` (default centre).
    """

    def __init__(self, runner, metadata: ModelMetadata) -> None:
        self._runner = runner
        self.metadata = metadata
        self.threshold = float(metadata.extra.get("threshold", 0.5))
        self._size = int(metadata.inputs[0].shape[-1])
        frame_at = metadata.extra.get("frame_at", FRAME_AT_CENTRE)
        self.window = WindowSpec(metadata.window_seconds, metadata.sample_rate, needs_frame=True, frame_at=frame_at)
        self._audio = np.zeros((1, self.window.samples), np.float32)  # reused every call; grown by batch()
        self._frames = np.zeros((1, 3, self._size, self._size), np.float32)  # batch()'s frame stack
        self.batch = self._batch_call if has_batch_axis(metadata) else None

    def __call__(self, audio: np.ndarray, frame: np.ndarray) -> Heatmap:
        """``audio (48000,)`` float32 at 48 kHz, ``frame (H, W, 3)`` uint8 RGB → Heatmap at H×W."""
        self._audio[0] = audio
        frames = preprocess_frames(frame, self._size).numpy()
        out = self._runner.infer({"frames": frames, "audio": self._audio[:1]})
        return heatmap_from_cells(np.array(out["cell_probs"][0], np.float32), frame.shape[:2], self.threshold)

    def _batch_call(self, calls) -> list[Heatmap]:
        """``calls``: ``[(audio (48000,), frame (H, W, 3)), ...]`` (the frames may differ in size:
        one per stream) → one Heatmap per call, from one runner call on the stacked inputs."""
        n = len(calls)
        if self._audio.shape[0] < n:  # grown once to the most streams seen, then reused
            self._audio = np.zeros((n, self.window.samples), np.float32)
            self._frames = np.zeros((n, 3, self._size, self._size), np.float32)
        for i, (audio, frame) in enumerate(calls):
            self._audio[i] = audio
            self._frames[i] = preprocess_frames(frame, self._size).numpy()[0]
        out = self._runner.infer({"frames": self._frames[:n], "audio": self._audio[:n]})
        cells = np.array(out["cell_probs"], np.float32)
        return [heatmap_from_cells(cells[i], frame.shape[:2], self.threshold) for i, (_audio, frame) in enumerate(calls)]


def _is_bare_checkpoint(path: Path) -> bool:
    if path.suffix != ".pt" or not path.is_file():
        return False
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises several types for foreign pickles
        return False
    return isinstance(data, dict) and {"config", "model_state"} <= set(data) and "recipe" not in data


def _threshold_extra(path: Path, threshold: float | None) -> dict:
    """The live fields of a checkpoint's stored threshold (none stored: the metadata's default)."""
    return {} if threshold is None else {"threshold": float(threshold), "threshold_source": f"checkpoint {path.name}"}


def _checkpoint_metadata(path: Path) -> ModelMetadata:
    data = torch.load(path, map_location="cpu", weights_only=True)
    return heatmap_metadata(L3Config.from_dict(data["config"]), _threshold_extra(path, data.get("threshold")))


def _load_bare(path: Path) -> ExportableModel:
    model, threshold = load_checkpoint(path)  # read once: network, weights and threshold
    return exportable(model, heatmap_metadata(model.config, _threshold_extra(path, threshold)))


L3_CHECKPOINT_FILE = ModelFile(
    name="l3-checkpoint",
    description="an L3 checkpoint of models.l3.network.save_checkpoint ({config, model_state, threshold}; "
                "apps.eval_l3 --write-threshold writes RUN/l3.pt)",
    claims=_is_bare_checkpoint,
    metadata=_checkpoint_metadata,
    load=_load_bare,
)
