"""Start a supervised AVSlowFast run from a pretrained backbone (``init=PATH``).

``PATH`` is a run folder (its ``checkpoints/best.pt``, else ``last.pt``) or an avlive checkpoint
of any ``avslowfast`` recipe, typically ``avslowfast-sync-lite`` or ``avslowfast-folder
sync=true supervised=false`` (self-supervised synchronisation). What is loaded:

* the **backbone**: every tensor of the network (``net.*``: stems, stages, laterals, their BN
  statistics) except the heads. It is strict: each backbone tensor of the new network must be
  in the checkpoint with the same shape, and the checkpoint may hold no backbone tensor the
  new network lacks unless it belongs to a pathway the new network does not have (a visual-only
  run from an audio-visual checkpoint leaves the audio pathway and its laterals out);
* **skipped**: the classification head (``net.projection``), the synchronisation heads
  (``net.sync_*``), the fixed front end (``logmel.*``, rebuilt from the config) and the
  pathways the new network lacks. The new run's head starts from its own initialisation.

A checkpoint of another family, or of an AVSlowFast of other widths, blocks or clip sizes, is an
error naming what was expected and what was found. Checkpoints load with
``torch.load(weights_only=True)`` (:func:`models.core.checkpoint.load_checkpoint`).
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.core.checkpoint import find_checkpoint, load_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["HEAD_PREFIXES", "InitReport", "backbone_keys", "load_backbone"]

#: State-dict prefixes that are not the backbone: the classification and synchronisation heads
#: and the front end's fixed buffers.
HEAD_PREFIXES = ("net.projection.", "net.sync_", "logmel.")
#: Network fields that must agree for a backbone to fit (the others only shape the heads).
_BACKBONE_FIELDS = ("width", "blocks", "slow_frames", "alpha", "beta_inv", "fusion_ratio", "fusion_kernel",
                    "audio_frames", "audio_mels", "audio_beta_inv", "audio_stem_kernel", "tf_merge", "fast_fusion",
                    "audio_fusion", "audio_lateral_kernel", "audio_lateral_channels")


class InitError(ValueError):
    """A checkpoint whose backbone does not fit the network; the message says what was expected."""


@dataclass(frozen=True)
class InitReport:
    """What :func:`load_backbone` did.

    Attributes:
        checkpoint: the file read.
        loaded: state-dict keys copied into the network.
        skipped: checkpoint keys left out (heads, front end, pathways the network lacks).
    """

    checkpoint: Path
    loaded: tuple[str, ...]
    skipped: tuple[str, ...]

    def summary(self) -> str:
        """One line: counts and the skipped keys (grouped by their module)."""
        groups = sorted({k.rsplit(".", 1)[0] for k in self.skipped})
        return (f"init: loaded {len(self.loaded)} backbone tensors from {self.checkpoint}; skipped "
                f"{len(self.skipped)} ({', '.join(groups) or 'none'})")


def backbone_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """The keys of ``state`` that belong to the backbone (not :data:`HEAD_PREFIXES`)."""
    return [k for k in state if not k.startswith(HEAD_PREFIXES)]


def _network_summary(network: dict | None) -> str:
    if not network:
        return "no network description"
    return ", ".join(f"{k}={network.get(k)!r}" for k in ("pathways", "width", "blocks", "slow_frames", "alpha",
                                                          "audio_frames", "audio_mels"))


def load_backbone(model: nn.Module, source: str | Path, network: dict) -> InitReport:
    """Copy a checkpoint's backbone into ``model`` (an ``AVSlowFastClassifier``); see the module
    docstring. Prints the summary line (stderr) and logs it.

    Args:
        model: the freshly built classifier (``logmel`` + ``net``).
        source: run folder or checkpoint file.
        network: the model's network config as a dict (``dataclasses.asdict``).

    Raises:
        FileNotFoundError: no such run folder or checkpoint.
        models.core.checkpoint.CheckpointError: not an avlive checkpoint.
        InitError: another family, or a backbone that does not fit.
    """
    path = find_checkpoint(source)
    data = load_checkpoint(path)
    meta = data.get("metadata") or {}
    family = meta.get("family")
    if family != "avslowfast":
        raise InitError(f"init={source}: expected a checkpoint of the avslowfast family (e.g. an avslowfast-sync-lite "
                        f"run), found family {family!r} (recipe {data.get('recipe')!r}) in {path}")
    theirs = (meta.get("extra") or {}).get("network") or {}
    differ = [f for f in _BACKBONE_FIELDS if f in theirs and _plain(theirs[f]) != _plain(network.get(f))]
    if differ:
        raise InitError(f"init={source}: the checkpoint's network does not fit this one ({', '.join(differ)} differ); "
                        f"expected {_network_summary(network)}, found {_network_summary(theirs)} in {path}")
    state = data["model_state"]
    mine = model.state_dict()
    expected, found = set(backbone_keys(mine)), set(backbone_keys(state))
    missing = sorted(expected - found)
    shapes = sorted(k for k in expected & found if tuple(mine[k].shape) != tuple(state[k].shape))
    extra = sorted(found - expected)
    if extra and theirs.get("pathways") == network.get("pathways"):
        missing = missing + [f"(unexpected) {k}" for k in extra]
    if missing or shapes:
        detail = "; ".join(filter(None, [
            f"{len(missing)} tensors not matched: {', '.join(missing[:4])}" if missing else "",
            f"{len(shapes)} of other shapes: " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(mine[k].shape)}"
                                                          for k in shapes[:3]) if shapes else ""]))
        raise InitError(f"init={source}: the checkpoint's backbone does not fit this network ({detail}); expected "
                        f"{_network_summary(network)}, found {_network_summary(theirs)} in {path}")
    with torch.no_grad():
        for k in sorted(expected):
            mine[k].copy_(state[k])
    report = InitReport(path, tuple(sorted(expected)), tuple(sorted(set(state) - expected)))
    print(report.summary(), file=sys.stderr)
    logger.info(report.summary())
    return report


def _plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value
