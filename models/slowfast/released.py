"""Released Slow-Fast ``.pyth`` checkpoints as a model file the family opens directly.

The variant, dataset, labels and front end follow from the weights (:func:`read_pyth`): a
(309,) head is VGG-Sound at 16 kHz, (97, 300) EPIC-KITCHENS-100 verbs + nouns and (44,)
EPIC-SOUNDS at 24 kHz. The module is waveform in, eval-mode probabilities out (the front end
inside), the same for ONNX export, the torch runner and TensorRT.
"""
from __future__ import annotations

from pathlib import Path

import torch

from models.core.atomic import sha256_file
from models.core.family import ExportableModel, ModelFile
from models.core.metadata import ModelMetadata, TensorSpec
from models.slowfast.network import clip_spec_for
from models.slowfast.pyth import DATASET_CLASSES, PythCheckpoint, build_model, labels_for, read_pyth
from models.slowfast.recipes import SlowFastWaveform


def _dataset(path: Path, classes: tuple[int, ...]) -> str:
    dataset = DATASET_CLASSES.get(tuple(classes))
    if dataset is None:
        raise ValueError(f"{path}: heads {tuple(classes)} match no released dataset {sorted(DATASET_CLASSES)}; "
                         f"train a recipe from it (python -m models.train) and use the run folder instead")
    return dataset


def pyth_metadata(path: Path, checkpoint: PythCheckpoint | None = None) -> ModelMetadata:
    """The metadata of a ``.pyth`` file's waveform-in export (builds no network); ``checkpoint``:
    the file already read."""
    variant = (checkpoint or read_pyth(path)).variant
    classes = tuple(variant.num_classes)
    dataset = _dataset(path, classes)
    clip = clip_spec_for(dataset, variant.arch)
    labels = labels_for(classes)
    return ModelMetadata(
        family="slowfast", task="labeler", labels=labels, sample_rate=clip.frontend.sample_rate,
        window_seconds=clip.seconds, needs_frame=False, frontend=clip.frontend.to_dict(),
        checkpoint_sha256=sha256_file(path),
        inputs=(TensorSpec("audio", ("batch", clip.clip_samples), "float32"),),
        outputs=(TensorSpec("probs", ("batch", len(labels)), "float32"),),
        extra={"multi_label": False, "dataset": dataset, "arch": variant.arch, "heads": list(classes)},
    )


def load_pyth(path: Path) -> ExportableModel:
    """The network with the file's weights, wrapped waveform in, probabilities out (the file is
    read once)."""
    checkpoint = read_pyth(path)
    metadata = pyth_metadata(path, checkpoint)
    model = build_model(checkpoint)
    clip = clip_spec_for(metadata.extra["dataset"], model.config.arch)
    module = SlowFastWaveform(model, clip).eval()
    example = {"audio": torch.randn(2, clip.clip_samples, generator=torch.Generator().manual_seed(0)) * 0.05}
    return ExportableModel(module, example, {"audio": {0: "batch"}}, metadata)


PYTH_FILE = ModelFile(
    name="slowfast-pyth",
    description="a released Slow-Fast .pyth checkpoint (VGG-Sound, EPIC-100 verb+noun or EPIC-SOUNDS, from its head)",
    claims=lambda p: p.suffix == ".pyth",
    metadata=pyth_metadata,
    load=load_pyth,
)
