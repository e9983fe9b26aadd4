"""Where an extractor's weights come from, and their fingerprint.

Three kinds of source, for the networks avlive trains (L³, slowfast-lite):

* ``None``: the committed demo model (models/demo/localizer, models/demo/labeler), an ONNX file
  run through ONNX Runtime with an inner tensor exposed (:mod:`models.embeddings.onnx_taps`);
* a path: an ``.onnx`` export (the same way), a run folder or avlive checkpoint (the network is
  rebuilt by its recipe from the checkpoint, as ``models.families.load_trained`` does), or for
  L³ a bare checkpoint of ``models.l3.network.save_checkpoint`` (``RUN/l3.pt``);
* a network object already in memory (PyTorch).

This package reaches the recipes of its two families directly rather than through
``models.families``: the CRNN family imports this package, and ``models.families`` imports the
families, so importing ``models.families`` from here would close an import cycle.

The fingerprint is the sha256 of the file the weights were read from, or, for a network in
memory, of its state dict (every tensor's name, dtype, shape and bytes, in order).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.core.atomic import sha256_file
from models.core.checkpoint import find_checkpoint, load_checkpoint
from models.core.train_config import config_from_dict

__all__ = ["DEMO_DIR", "DEMO_LOCALIZER", "DEMO_LABELER", "state_fingerprint", "rebuild_from_run", "describe"]

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo"
#: The committed L³ ``lite`` localizer (heatmap graph: frames, audio → avc_logits, cell_probs).
DEMO_LOCALIZER = DEMO_DIR / "localizer" / "model.onnx"
#: The committed slowfast-lite labeler (audio (B, 20320) at 16 kHz → probs).
DEMO_LABELER = DEMO_DIR / "labeler" / "model.onnx"


def state_fingerprint(module: torch.nn.Module) -> str:
    """sha256 (hex) of a module's state dict: names, dtypes, shapes and bytes of every tensor, in order."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        array = np.ascontiguousarray(tensor.detach().cpu().numpy())
        h.update(f"{name}|{array.dtype.str}|{array.shape}\n".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def rebuild_from_run(source: str | os.PathLike, recipes: dict[str, type], what: str) -> tuple[Any, Any, Path]:
    """Rebuild a trained network from a run folder or avlive checkpoint.

    Args:
        source: run folder or checkpoint file.
        recipes: recipe name → Recipe class accepted here.
        what: the extractor's name, for the error.

    Returns:
        ``(recipe, model in eval mode, checkpoint path)``.

    Raises:
        ValueError: the checkpoint's recipe is not one of ``recipes`` (one line naming both).
    """
    checkpoint = find_checkpoint(source)
    data = load_checkpoint(checkpoint)
    name = data["recipe"]
    if name not in recipes:
        raise ValueError(f"{what}: expected a run of recipe {' or '.join(sorted(recipes))}, "
                         f"found recipe {name!r} in {checkpoint}")
    recipe_cls = recipes[name]
    recipe = recipe_cls(config_from_dict(recipe_cls.config_class, data["config"]))
    model = recipe.build_model()
    model.load_state_dict(data["model_state"])
    return recipe, model.eval(), checkpoint


def describe(path: Path) -> str:
    """A short name of a weights file for reports: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(DEMO_DIR.parents[1]))
    except ValueError:
        return str(path)


def file_fingerprint(path: str | os.PathLike) -> str:
    """sha256 (hex) of a weights file."""
    return sha256_file(path)
