"""avlive training checkpoints: tensors and plain types only, written atomically, loaded with
``torch.load(weights_only=True)``, carrying what rebuilds the model and resumes the run.

Layout of a checkpoint (a dict):
    format            "avlive-checkpoint"
    version           1
    recipe            recipe name (models.families.RECIPES)
    config            the recipe config as plain types
    model_state       the network's state dict
    metadata          ModelMetadata.to_dict() (labels, sample rate, window, front end, I/O)
    train_state       None, or: epoch, batch (position within the epoch), step, optimizer,
                      scheduler, rng (torch, numpy, python, cuda), best (metric value),
                      elapsed_s (training wall time so far; absent in older checkpoints)
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.core.atomic import atomic_torch_save

CHECKPOINT_FORMAT = "avlive-checkpoint"
CHECKPOINT_VERSION = 1
LAST, BEST = "last.pt", "best.pt"


class CheckpointError(ValueError):
    """A file that is not a loadable avlive checkpoint; the message says what was expected."""


def rng_state() -> dict[str, Any]:
    """Every RNG the trainer's process uses, as tensors and plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, *, recipe: str, config: dict, model_state: dict, metadata: dict, train_state: dict | None = None) -> None:
    """Write a checkpoint atomically (temp file, fsync, rename)."""
    atomic_torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "recipe": recipe,
            "config": config,
            "model_state": model_state,
            "metadata": metadata,
            "train_state": train_state,
        },
        path,
    )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check an avlive checkpoint; a wrong file says what it is and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for foreign pickles
        raise CheckpointError(f"{path}: not loadable with weights_only=True ({type(e).__name__}: {str(e).splitlines()[0]}); avlive checkpoints hold only tensors and plain types") from e
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = sorted(data)[:6] if isinstance(data, dict) else type(data).__name__
        hint = " (this looks like a released Slow-Fast .pyth file: pass it to avlive or python -m models.export as it is)" if isinstance(data, dict) and "model_state" in data and "cfg" in data else ""
        raise CheckpointError(f"{path}: expected an avlive checkpoint (format {CHECKPOINT_FORMAT!r}), found keys {found}{hint}")
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: expected checkpoint version {CHECKPOINT_VERSION}, found {data.get('version')}")
    return data


def find_checkpoint(source: str | Path, prefer: str = BEST) -> Path:
    """The checkpoint file for a run folder (``checkpoints/best.pt``, else ``last.pt``) or a file path."""
    source = Path(source)
    if source.is_file():
        return source
    if source.is_dir():
        for name in (prefer, LAST, BEST):
            candidate = source / "checkpoints" / name
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"run folder {source} has no checkpoints/{BEST} or checkpoints/{LAST}")
    raise FileNotFoundError(f"{source}: no such run folder or checkpoint file")
