"""The ``slowfast-vggsound`` recipe: VGG-Sound from scratch, as the reference trains it."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.datasets.clips import ClipIndex
from models.datasets.clips import ClipSpec as MediaClip
from models.datasets.labelled_sets import carve_validation
from models.datasets.formats import (
    read_vggsound_split_csv,
    read_vggsound_stat,
    vggsound_class_order,
)
from models.evaluation.metrics import (
    d_prime,
    mean_average_precision,
    roc_auc_per_class,
    topk_accuracy,
)
from models.slowfast.clips import DecodedWaves
from models.slowfast.configs import VGGSOUND_CLIP_DIRS, VggSoundConfig
from models.slowfast.network import VGGSOUND_CLIP
from models.slowfast.recipes import SlowFastRecipe, need_file, need_data_folder, resolve_under, unique_labels

logger = logging.getLogger(__name__)


_VGG_LAYOUT = ("train.csv and test.csv (<ytid>_<start:06d>.mp4,label; no header), optionally stat.csv, "
               "and the clips <ytid>_<start:06d>.wav|.mp4 in audio/, video/, wav/ or the folder itself")


class VggSoundRecipe(SlowFastRecipe):
    """Slow-Fast R50 on VGG-Sound from scratch (the reference's ``SLOWFAST_R50.yaml``)."""

    name = "slowfast-vggsound"
    description = ("Slow-Fast auditory R50 on VGG-Sound (--data: train.csv/test.csv + clips; 16 kHz, 5.119 s, "
                   "SGD 50 epochs, 2 test views)")
    config_class = VggSoundConfig
    primary_metric = "top1"
    data_help = _VGG_LAYOUT
    reads = ("vggsound",)
    clip = VGGSOUND_CLIP
    dataset_name = "vggsound"

    def default_labels(self) -> tuple[str, ...]:
        if self.config.num_classes == 309:
            from models.slowfast.pyth import load_labels

            return load_labels("vggsound")
        return super().default_labels()

    def class_names(self, root: Path, train: list, test: list) -> list[str]:
        """Class names in id order: sorted ``stat.csv`` labels, else the reference's 309, else
        the sorted labels of both lists."""
        stat = root / "stat.csv"
        if stat.is_file():
            names = vggsound_class_order(read_vggsound_stat(stat))
            source = f"{stat} (sorted)"
        elif self.config.num_classes == 309:
            names = list(self.default_labels())
            source = "models/labels/vggsound.txt"
        else:
            names = sorted({c.label for c in train + test})
            source = "the sorted labels of train.csv and test.csv"
        if len(names) != self.config.num_classes:
            raise ValueError(f"{source} gives {len(names)} classes, the config has num_classes="
                             f"{self.config.num_classes}; pass num_classes={len(names)}")
        return names

    def clip_folder(self, root: Path, names: Sequence[str]) -> Path:
        """The clip folder: ``clip_dir``, or the first of :data:`VGGSOUND_CLIP_DIRS` holding one
        of the first 50 clips ``names`` (as ``.wav`` or ``.mp4``)."""
        if self.config.clip_dir:
            folder = resolve_under(root, self.config.clip_dir)
            if not folder.is_dir():
                raise FileNotFoundError(f"clip_dir {folder}: no such folder")
            return folder
        stems = [Path(name).stem for name in names[:50]]  # videos vanish: look for any of the first 50
        looked = []
        for sub in VGGSOUND_CLIP_DIRS:
            folder = root / sub if sub else root
            looked.append(os.fspath(folder))
            if any((folder / f"{stem}{ext}").is_file() for stem in stems for ext in (".wav", ".mp4")):
                return folder
        raise FileNotFoundError(f"no clip {stems[0]}.wav or {stems[0]}.mp4 (nor any other of the first {len(stems)} "
                                f"of train.csv) in any of {looked}; expected --data to hold {_VGG_LAYOUT}, or pass "
                                f"clip_dir=FOLDER")

    def _decode(self, folder: Path, splits: dict[str, tuple[Path, list]], class_id: dict[str, int]
                ) -> dict[str, tuple[DecodedWaves, np.ndarray]]:
        """Decode every split's clips in one pass of the decode pool (one pool start-up);
        split name -> (audio source, class ids). Skipped clips are logged and left out."""
        c = self.config
        specs = []
        for split, (csv, clips) in splits.items():
            for clip in clips:
                if clip.label not in class_id:
                    raise ValueError(f"{csv}: clip {clip.filename} has label {clip.label!r}, which is not among the "
                                     f"{len(class_id)} classes")
                stem = Path(clip.filename).stem
                wav = folder / f"{stem}.wav"
                path = wav if wav.is_file() else folder / clip.filename
                specs.append(MediaClip(path, (clip.label,), key=f"{split}/{clip.filename}"))
        decoded = ClipIndex(tuple(specs)).decode(self.clip.frontend.sample_rate, c.max_clip_seconds,
                                                 workers=c.decode_workers, timeout_s=c.decode_timeout_s)
        out = {}
        for split, (csv, clips) in splits.items():
            rows = [i for i, s in enumerate(decoded.clips) if s.key.startswith(f"{split}/")]
            if len(rows) < len(clips):
                logger.warning("%s: %d of %d clips skipped (see the decode report above)", csv,
                               len(clips) - len(rows), len(clips))
            if not rows:
                raise ValueError(f"{csv}: none of its {len(clips)} clips could be decoded:\n{decoded.summary()}")
            audio = decoded.audio[rows] if len(rows) < len(decoded.clips) else decoded.audio
            targets = np.array([class_id[decoded.clips[i].labels[0]] for i in rows], dtype=np.int64)
            out[split] = (DecodedWaves(audio, decoded.lengths[rows]), targets)
        return out

    def build_datasets(self, data: Path | None):
        root = need_data_folder(data, self.name, _VGG_LAYOUT)
        train_csv, test_csv = need_file(root / "train.csv", _VGG_LAYOUT), need_file(root / "test.csv", _VGG_LAYOUT)
        train, test = read_vggsound_split_csv(train_csv, "train"), read_vggsound_split_csv(test_csv, "test")
        names = self.class_names(root, train, test)
        class_id = {n: i for i, n in enumerate(names)}
        folder = self.clip_folder(root, [c.filename for c in train])
        # best.pt is chosen on validation clips carved from train.csv (whole YouTube ids); test.csv
        # stays unseen for python -m apps.evaluate RUN --data ROOT.
        fit_rows, val_rows = carve_validation([c.label for c in train], [c.ytid for c in train], self.config.val_fraction,
                                              self.config.seed)
        fit, val = [train[i] for i in fit_rows], [train[i] for i in val_rows]
        if not val:
            raise ValueError(f"{train_csv}: no class has clips from two YouTube videos, so no validation split can be "
                             f"carved from it")
        logger.info("validation: %d clips of train.csv (%d left to train on); test.csv (%d clips) unused",
                    len(val), len(fit), len(test))
        decoded = self._decode(folder, {"train": (train_csv, fit), "val": (train_csv, val)}, class_id)
        (train_src, train_y), (val_src, val_y) = decoded["train"], decoded["val"]
        self.labels = unique_labels(names)
        return self._clips(train_src, {"target": train_y}, True), self._clips(val_src, {"target": val_y}, False)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return F.cross_entropy(model(batch["spec"]), batch["target"])

    def evaluate(self, model: nn.Module, loader) -> dict:
        """top1, top5 (%-free fractions), mAP, AUC and d' over classes (the reference's
        ``vggsound_metrics``: per-class AP/AUC of the one-hot targets, d' from the mean AUC),
        ``views`` and ``items``."""
        (probs,), targets, views, _ = self._predict(model, loader, ["target"])
        y = targets["target"]
        onehot = np.zeros_like(probs, dtype=bool)
        onehot[np.arange(len(y)), y] = True
        m_ap, _ = mean_average_precision(probs, onehot)
        auc = roc_auc_per_class(probs, onehot)
        m_auc = float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan")
        return {"top1": topk_accuracy(probs, y, 1), "top5": topk_accuracy(probs, y, 5), "mAP": float(m_ap),
                "AUC": m_auc, "dprime": float(d_prime(m_auc)) if np.isfinite(m_auc) else float("nan"),
                "views": views, "items": int(len(y))}
