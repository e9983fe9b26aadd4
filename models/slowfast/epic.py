"""The EPIC recipes: ``slowfast-epic100`` (verb + noun, fine-tuned from VGG-Sound with frozen BN
statistics) and ``slowfast-epicsounds`` (44 classes)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.datasets.clips import EpicSegments
from models.datasets.formats import (
    epic_class_keys,
    read_epic100_annotations,
    read_epic100_classes,
    read_epic_sounds,
)
from models.evaluation.metrics import (
    mean_average_precision,
    per_class_accuracy,
    roc_auc_per_class,
    topk_accuracy,
)
from models.slowfast.clips import EpicWaves
from models.slowfast.configs import EPIC_AUDIO_HDF5, Epic100Config, EpicSoundsConfig
from models.slowfast.network import EPIC_CLIP
from models.slowfast.recipes import SlowFastRecipe, need_file, need_data_folder, resolve_under, unique_labels

logger = logging.getLogger(__name__)


class _EpicRecipe(SlowFastRecipe):
    clip = EPIC_CLIP
    layout: ClassVar[str] = ""

    def audio_file(self, root: Path) -> Path:
        """The audio HDF5: ``audio_hdf5``, else :data:`EPIC_AUDIO_HDF5`, else the folder's only one."""
        if self.config.audio_hdf5:
            return need_file(resolve_under(root, self.config.audio_hdf5), self.layout)
        default = root / EPIC_AUDIO_HDF5
        if default.is_file():
            return default
        found = sorted(p for p in root.iterdir() if p.suffix in (".hdf5", ".h5") and p.is_file())
        if len(found) == 1:
            return found[0]
        if not found:
            raise FileNotFoundError(f"{default}: no such file (and no other *.hdf5 in {root}); expected --data to "
                                    f"hold {self.layout}")
        raise ValueError(f"{root} holds several HDF5 files {[p.name for p in found]}; pass audio_hdf5=NAME")

    def load_init_checkpoint(self, model: nn.Module) -> None:
        if not self.config.init_checkpoint:
            logger.warning("%s: no init_checkpoint; training from scratch (the reference fine-tunes from a "
                           "VGG-Sound checkpoint)", self.name)
        super().load_init_checkpoint(model)


_EPIC100_LAYOUT = ("EPIC_100_train.csv, EPIC_100_validation.csv, EPIC_100_verb_classes.csv, "
                   "EPIC_100_noun_classes.csv and the audio HDF5 (EPIC-KITCHENS-100_audio.hdf5: one 24 kHz dataset "
                   "per video id)")


class Epic100Recipe(_EpicRecipe):
    """Slow-Fast R50 on EPIC-KITCHENS-100 verb + noun, fine-tuned with frozen BN statistics."""

    name = "slowfast-epic100"
    description = ("Slow-Fast auditory R50 on EPIC-KITCHENS-100 verb+noun (--data: EPIC_100 csvs + audio HDF5; "
                   "24 kHz, 1.999 s, fine-tune init_checkpoint=VGG .pyth, frozen BN, 10 test views)")
    config_class = Epic100Config
    primary_metric = "action_top1"
    data_help = _EPIC100_LAYOUT
    reads = ("epic100",)
    layout = _EPIC100_LAYOUT
    dataset_name = "epic100"

    def heads(self) -> tuple[int, ...]:
        return (self.config.num_verbs, self.config.num_nouns)

    def default_labels(self) -> tuple[str, ...]:
        if self.heads() == (97, 300):
            from models.slowfast.pyth import load_labels

            return load_labels("epic100")
        return tuple(f"verb:{k}" for k in range(self.config.num_verbs)) + tuple(
            f"noun:{k}" for k in range(self.config.num_nouns))

    def _classes(self, path: Path, count: int, field: str) -> list[str]:
        keys = epic_class_keys(read_epic100_classes(path))
        if len(keys) != count:
            raise ValueError(f"{path} lists {len(keys)} classes, the config has {field}={count}; "
                             f"pass {field}={len(keys)}")
        return keys

    def _split(self, root: Path, name: str, audio: Path) -> tuple[EpicWaves, dict[str, np.ndarray]]:
        path = need_file(root / name, self.layout)
        rows = read_epic100_annotations(path)
        if rows and not rows[0].has_labels:
            raise ValueError(f"{path}: holds test timestamps without verb/noun labels; training and validation "
                             f"need the 15-column annotation layout")
        c = self.config
        for r in rows:
            if not (0 <= r.verb_class < c.num_verbs and 0 <= r.noun_class < c.num_nouns):
                raise ValueError(f"{path}: narration {r.narration_id} has verb_class {r.verb_class} / noun_class "
                                 f"{r.noun_class}, outside the heads of {c.num_verbs} verbs / {c.num_nouns} nouns")
        segments = EpicSegments(audio, rows)
        if not len(segments):
            raise ValueError(f"{path}: none of its {len(rows)} narrations has audio in {audio}")
        targets = {"verb": np.array([s.verb_class for s in segments.segments], np.int64),
                   "noun": np.array([s.noun_class for s in segments.segments], np.int64)}
        return EpicWaves(segments), targets

    def build_datasets(self, data: Path | None):
        root = need_data_folder(data, self.name, self.layout)
        c = self.config
        verbs = self._classes(need_file(root / "EPIC_100_verb_classes.csv", self.layout), c.num_verbs, "num_verbs")
        nouns = self._classes(need_file(root / "EPIC_100_noun_classes.csv", self.layout), c.num_nouns, "num_nouns")
        audio = self.audio_file(root)
        train_src, train_y = self._split(root, "EPIC_100_train.csv", audio)
        val_src, val_y = self._split(root, "EPIC_100_validation.csv", audio)
        self.labels = unique_labels([f"verb:{v}" for v in verbs] + [f"noun:{n}" for n in nouns])
        return self._clips(train_src, train_y, True), self._clips(val_src, val_y, False)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        verb, noun = model(batch["spec"])
        return 0.5 * (F.cross_entropy(verb, batch["verb"]) + F.cross_entropy(noun, batch["noun"]))

    def evaluate(self, model: nn.Module, loader) -> dict:
        """verb/noun/action top-1 and top-5 (action top-k: verb and noun both within their top k,
        the reference's ``multitask_topks_correct``), ``views`` and ``items``."""
        (verb, noun), y, views, _ = self._predict(model, loader, ["verb", "noun"])
        figures: dict[str, Any] = {}
        for k in (1, 5):
            hit_v = _topk_hits(verb, y["verb"], k)
            hit_n = _topk_hits(noun, y["noun"], k)
            figures[f"verb_top{k}"] = float(hit_v.mean())
            figures[f"noun_top{k}"] = float(hit_n.mean())
            figures[f"action_top{k}"] = float((hit_v & hit_n).mean())
        order = ["verb_top1", "noun_top1", "action_top1", "verb_top5", "noun_top5", "action_top5"]
        return {"action_top1": figures["action_top1"], **{k: figures[k] for k in order if k != "action_top1"},
                "views": views, "items": int(len(verb))}


def _topk_hits(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """``(N,)`` bool: target among the ``k`` highest scores (ties: the higher class index first,
    as :func:`models.evaluation.metrics.topk_accuracy`)."""
    n, c = scores.shape
    target_score = scores[np.arange(n), targets][:, None]
    index = np.arange(c)[None, :]
    rank = (scores > target_score).sum(1) + ((scores == target_score) & (index > targets[:, None])).sum(1)
    return rank < k


_SOUNDS_LAYOUT = ("EPIC_Sounds_train.csv and EPIC_Sounds_validation.csv (annotation layout with class_id) and the "
                  "audio HDF5 (EPIC-KITCHENS-100_audio.hdf5: one 24 kHz dataset per video id)")


class EpicSoundsRecipe(_EpicRecipe):
    """Slow-Fast R50 on EPIC-SOUNDS (44 classes), fine-tuned with frozen BN statistics."""

    name = "slowfast-epicsounds"
    description = ("Slow-Fast auditory R50 on EPIC-SOUNDS, 44 classes (--data: EPIC_Sounds csvs + audio HDF5; "
                   "24 kHz, 1.999 s, frozen BN, 5 test views)")
    config_class = EpicSoundsConfig
    primary_metric = "top1"
    data_help = _SOUNDS_LAYOUT
    reads = ("epic_sounds",)
    layout = _SOUNDS_LAYOUT
    dataset_name = "epic_sounds"

    def reference_names(self) -> list[str] | None:
        if self.config.num_classes != 44:
            return None
        from models.slowfast.pyth import load_labels

        return list(load_labels("epic_sounds"))

    def default_labels(self) -> tuple[str, ...]:
        names = self.reference_names()
        return tuple(names) if names else super().default_labels()

    def _split(self, root: Path, name: str, audio: Path, names: dict[int, str]) -> tuple[EpicWaves, dict]:
        path = need_file(root / name, self.layout)
        rows = read_epic_sounds(path)
        n = self.config.num_classes
        for r in rows:
            if r.class_id is None:
                raise ValueError(f"{path}: segment {r.annotation_id} has no class_id; training and validation need "
                                 f"the annotation layout ({_SOUNDS_LAYOUT})")
            if not 0 <= r.class_id < n:
                raise ValueError(f"{path}: segment {r.annotation_id} has class_id {r.class_id}, outside the "
                                 f"{n} classes (num_classes={n})")
            if r.class_name:
                names.setdefault(r.class_id, r.class_name)
        segments = EpicSegments(audio, rows)
        if not len(segments):
            raise ValueError(f"{path}: none of its {len(rows)} segments has audio in {audio}")
        return EpicWaves(segments), {"target": np.array([s.class_id for s in segments.segments], np.int64)}

    def build_datasets(self, data: Path | None):
        root = need_data_folder(data, self.name, self.layout)
        audio = self.audio_file(root)
        seen: dict[int, str] = {}
        train_src, train_y = self._split(root, "EPIC_Sounds_train.csv", audio, seen)
        val_src, val_y = self._split(root, "EPIC_Sounds_validation.csv", audio, seen)
        # Names: the csvs' class column where an id occurs, else the reference's list (44), else class_<k>.
        fallback = self.reference_names() or [f"class_{k}" for k in range(self.config.num_classes)]
        self.labels = unique_labels([seen.get(k, fallback[k]) for k in range(self.config.num_classes)])
        return self._clips(train_src, train_y, True), self._clips(val_src, val_y, False)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return F.cross_entropy(model(batch["spec"]), batch["target"])

    def evaluate(self, model: nn.Module, loader) -> dict:
        """top1, top5, mean class accuracy (``mca``), mAP and AUC over classes, ``views``, ``items``."""
        (probs,), targets, views, _ = self._predict(model, loader, ["target"])
        y = targets["target"]
        onehot = np.zeros_like(probs, dtype=bool)
        onehot[np.arange(len(y)), y] = True
        m_ap, _ = mean_average_precision(probs, onehot)
        auc = roc_auc_per_class(probs, onehot)
        pca = per_class_accuracy(y, probs.argmax(1), probs.shape[1])
        return {"top1": topk_accuracy(probs, y, 1), "top5": topk_accuracy(probs, y, 5),
                "mca": float(np.nanmean(pca)) if np.isfinite(pca).any() else float("nan"), "mAP": float(m_ap),
                "AUC": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"),
                "views": views, "items": int(len(y))}
