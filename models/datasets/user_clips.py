"""What the clip recipes (``baseline``, ``slowfast-lite``) do with a user's ``--data``.

Without ``--data`` they train on the synthetic world. With it, :class:`UserClips` reads the
folder (:func:`models.datasets.labelled_sets.read_labelled_set`: any layout of
:data:`~models.datasets.labelled_sets.CLIP_LAYOUTS`, split so that validation never touches the
test split), decodes the clips once at the network's rate, and gives the recipe its datasets, its
labels and its validation figures: clip scores are the mean of the window scores over each clip
(:func:`~models.datasets.clip_windows.clip_probabilities`).

Config fields every clip recipe gets from :class:`UserDataConfig` (``key=value`` overrides):
``fold`` (test fold, 0 = the set's own test split), ``cv`` (cross-validation over folds 1..cv), ``folds`` (folds to deal for sets without
their own), ``val_fraction``, ``clip_seconds`` (decoded length per clip), ``decode_workers``, and
a pretrained start: ``init`` (a run of the same recipe, on the world or any data; the head is
resized to the user's classes) with ``backbone_lr_factor`` (0 freezes the loaded layers).
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from models.datasets.clip_windows import ClipWindows, clip_probabilities
from models.datasets.clips import DecodedClips
from models.datasets.labelled_sets import CLIP_LAYOUTS, LabelledSet, read_labelled_set
from models.evaluation.metrics import mean_average_precision, per_class_accuracy, topk_accuracy

logger = logging.getLogger(__name__)

__all__ = ["UserClips", "UserDataConfig", "clip_figures"]


@dataclass(frozen=True)
class UserDataConfig:
    """Fields for training on a user's ``--data`` (ignored on the world). Mixed into a recipe's
    config ahead of its ``TrainConfig`` base."""

    fold: int = 0  # test fold: 0 = the set's own test split (or none); k = fold k (ESC-50 folds, or dealt)
    folds: int = 5  # folds dealt by source for sets without folds of their own (fold=k, cv=K)
    cv: int = 0  # cross-validate: train fold=1..cv into OUT/fold-k and score each on its fold (models/train/crossval.py)
    val_fraction: float = 0.15  # per class, carved from training clips by source where the set has no validation split
    clip_seconds: float = 5.0  # audio decoded per clip (longer clips are cut, shorter ones padded)
    decode_workers: int = 2  # crash-contained decoder processes
    init: str = ""  # a pretrained start: an avlive run folder or checkpoint of the same recipe (head resized)
    backbone_lr_factor: float = 0.1  # with init: the loaded layers' lr factor (0 = frozen: a linear probe)

    def validate_user_data(self) -> None:
        if self.fold < 0:
            raise ValueError(f"fold: expected >= 0, found {self.fold}")
        if self.cv < 0 or self.cv == 1:
            raise ValueError(f"cv: expected 0 (off) or >= 2 folds, found {self.cv}")
        if self.cv and self.fold:
            raise ValueError(f"cv={self.cv} runs every fold; leave fold at 0 (found fold={self.fold})")
        if self.folds < 2:
            raise ValueError(f"folds: expected >= 2, found {self.folds}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected between 0 and 1, found {self.val_fraction}")
        if self.backbone_lr_factor < 0:
            raise ValueError(f"backbone_lr_factor: expected >= 0, found {self.backbone_lr_factor}")
        if self.clip_seconds <= 0:
            raise ValueError(f"clip_seconds: expected > 0, found {self.clip_seconds}")


def clip_figures(probs: np.ndarray, targets: np.ndarray, multi_label: bool) -> dict[str, float]:
    """Validation figures of clip scores ``(N, K)`` against ``targets`` (class ids (N,) or
    multi-hot (N, K)): ``top1`` and ``mAP`` always, ``mean_class_accuracy`` for single-label sets."""
    if multi_label:
        hot = targets > 0
        m_ap, _ = mean_average_precision(probs, hot)
        top = probs.argmax(1)
        top1 = float(hot[np.arange(len(top)), top].mean()) if len(top) else float("nan")
        return {"top1": top1, "mAP": float(m_ap), "n": float(len(probs))}
    hot = np.zeros_like(probs, dtype=bool)
    hot[np.arange(len(targets)), targets] = True
    m_ap, _ = mean_average_precision(probs, hot)
    per_class = per_class_accuracy(targets, probs.argmax(1), probs.shape[1])
    return {"top1": topk_accuracy(probs, targets, 1), "mAP": float(m_ap),
            "mean_class_accuracy": float(np.nanmean(per_class)), "n": float(len(probs))}


class UserClips:
    """A user's clip set for one clip recipe.

    Args:
        recipe: The recipe's name (for errors).
        config: The recipe's config (a :class:`UserDataConfig` and a ``TrainConfig``).
        sample_rate: The network's rate.
        window_seconds: The network's window.
        target: ``"index"`` (softmax recipes: single-label layouts only) or ``"multi_hot"``.
        reads: The layouts the recipe reads.
    """

    def __init__(self, recipe: str, config, sample_rate: int, window_seconds: float, target: str,
                 reads: Sequence[str] = tuple(CLIP_LAYOUTS)):
        self.recipe, self.config, self.sample_rate = recipe, config, int(sample_rate)
        self.window = int(round(window_seconds * sample_rate))
        self.target, self.reads = target, tuple(reads)
        self.set: LabelledSet | None = None
        self.decoded: tuple[ClipWindows, ClipWindows] | None = None  # (train, validation) once datasets() ran

    def read(self, data: Path) -> LabelledSet:
        c = self.config
        s = read_labelled_set(data, recipe=self.recipe, reads=self.reads, fold=c.fold, folds=c.folds,
                              val_fraction=c.val_fraction, seed=c.seed)
        self.set = s
        print(f"--data {s.describe()}", file=sys.stderr)
        return s

    def decode(self, split: str) -> DecodedClips:
        s, c = self.set, self.config
        index = getattr(s, split)
        return index.decode(self.sample_rate, max(c.clip_seconds, self.window / self.sample_rate),
                            workers=c.decode_workers)

    def datasets(self, data: Path, gain_db: float) -> tuple[ClipWindows, ClipWindows]:
        """(train windows, validation clips)."""
        s = self.read(data)
        train = ClipWindows(self.decode("train"), s.classes, self.window, target=self.target, train=True,
                            gain_db=gain_db, seed=self.config.seed)
        val = ClipWindows(self.decode("val"), s.classes, self.window, target=self.target, train=False)
        self.decoded = (train, val)
        return train, val

    def test_dataset(self) -> ClipWindows | None:
        """The test split as whole clips (None when the set has none)."""
        if self.set is None or not len(self.set.test):
            return None
        return ClipWindows(self.decode("test"), self.set.classes, self.window, target=self.target, train=False)

    def scores(self, probabilities: Callable[[torch.Tensor], torch.Tensor], loader) -> tuple[np.ndarray, np.ndarray]:
        """(clip probabilities (N, K), targets) over a loader of whole clips."""
        probs, targets = [], []
        for b in loader:
            probs.append(clip_probabilities(probabilities, b["audio"], b["length"], self.window, max(1, self.window // 2)))
            targets.append(b["target"])
        return torch.cat(probs).numpy(), torch.cat(targets).numpy()

    def evaluate(self, probabilities: Callable[[torch.Tensor], torch.Tensor], loader) -> dict[str, float]:
        probs, targets = self.scores(probabilities, loader)
        if not self.set.multi_label and targets.ndim == 2:  # a sigmoid recipe on a single-label set
            targets = targets.argmax(1)
        return clip_figures(probs, targets, self.set.multi_label)

    # -- a pretrained start

    def load_init(self, model: torch.nn.Module) -> None:
        """Fill ``model`` from ``init`` (an avlive run folder or checkpoint of the same recipe):
        every tensor whose name and shape match; the rest (the head, when the classes differ)
        keep their fresh values. Does nothing without ``init``.

        Raises:
            ValueError: the checkpoint is another recipe's, or fewer than half of the network's
                tensors match (other widths or depths).
        """
        from models.core.checkpoint import find_checkpoint, load_checkpoint

        if not self.config.init:
            return
        path = find_checkpoint(self.config.init)
        ckpt = load_checkpoint(path)
        if ckpt.get("recipe") != self.recipe:
            raise ValueError(f"init={self.config.init}: expected a {self.recipe!r} run or checkpoint, found a "
                             f"{ckpt.get('recipe')!r} one ({path})")
        own = model.state_dict()
        theirs = ckpt["model_state"]
        take = {k: v for k, v in theirs.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
        if len(take) < len(own) / 2:
            mismatched = [f"{k} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in theirs and k not in take][:3]
            raise ValueError(f"init={self.config.init}: only {len(take)} of {len(own)} tensors fit this network "
                             f"(other widths or depths?); e.g. {mismatched}")
        model.load_state_dict(take, strict=False)
        fresh = [k for k in own if k not in take]
        print(f"init: {len(take)} of {len(own)} tensors from {path}; fresh: {', '.join(fresh) or 'none'}", file=sys.stderr)

    def param_groups(self, model: torch.nn.Module, weight_decay: float, head: str) -> list[dict]:
        """Load ``init`` (:meth:`load_init`), then the optimiser's groups: weight decay on weights
        (ndim > 1) only; with ``init``, the parameters outside ``head`` (a name prefix, e.g.
        ``"head."``) at ``backbone_lr_factor`` × lr (frozen at 0: a linear probe)."""
        self.load_init(model)
        factor = self.config.backbone_lr_factor if self.config.init else 1.0
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in model.named_parameters():
            backbone = not name.startswith(head)
            if backbone and factor == 0:
                p.requires_grad_(False)
                continue
            groups.setdefault((backbone, p.ndim > 1), []).append(p)
        out = []
        for (backbone, decay), params in groups.items():
            group = {"params": params, "weight_decay": weight_decay if decay else 0.0}
            if backbone and factor != 1.0:
                group["lr"] = self.config.lr * factor
            out.append(group)
        return out

    def metadata_extra(self) -> dict:
        s = self.set
        return {"data_layout": s.layout, "data": str(s.root), "split": s.split, "multi_label_data": s.multi_label,
                "fold": self.config.fold}
