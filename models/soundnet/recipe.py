"""Teacher-student recipes: a SoundNet learns, from unlabelled video, to give the class posteriors a
visual network gives for the frames under its sound.

``python -m models.train --recipe soundnet-lite`` (the lite size), ``--recipe soundnet8`` and
``--recipe soundnet5`` (the paper sizes), on world scenes or, with ``--data FOLDER``, on a
folder of videos (models/datasets/formats/video_folder.py). What they do:

* **Items** (:mod:`models.soundnet.data`): crops of ``crop_seconds`` (20 s, the authors' crop),
  starting on the student's output grid; short videos tiled to a crop.
* **Targets**: the teacher's posteriors (``teacher``; EfficientNet-Lite0 on ImageNet by default)
  of the frame nearest the centre of each of the student's output steps, computed once per video
  and cached on disk (``cache``; keyed by video or scene, teacher and time grid).
* **Scene head**: with ``scene_teacher`` (a weights file), a second teacher's posteriors train
  the scene head the same way (its own KL, added); without one the network has no scene head.
* **Loss**: KL(teacher || student) at every output step, summed over classes and averaged over
  steps and crops: the authors' ``DistKLDivCriterion`` averages over classes too and scales by
  lambda = 250; with 1000 classes the sum is that mean times 1000, the same direction at a
  4x larger step. Adam, lr 1e-3, beta1 0.9 (the authors'), batch 8 by default (theirs: 64).
* **Evaluation** (primary ``agreement``): on held-out scenes or videos, the KL and how often the
  student's top class is the teacher's; printed with the epoch's wall time and what the teacher
  did (frames rendered or decoded, teacher forwards, cache hits), so a second epoch shows 0
  forwards and 0 frames.

Export and live: the student's object posteriors averaged over the output steps of a window of
``live_window_seconds`` (default: the shortest input with one output step, 9.5 s), a labeler
over the teacher's classes. Linear transfer to labelled sounds: apps.transfer.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.core.metadata import ModelMetadata, TensorSpec
from models.core.recipe import Recipe
from models.core.train_config import TrainConfig
from models.soundnet.data import TeacherCrops, WorldSource, video_folder_sources
from models.soundnet.network import CONFIGS, SAMPLE_RATE, SoundNet, SoundNetConfig
from models.soundnet.teacher import (
    PosteriorCache,
    build_teacher,
    check_teacher,
    teacher_labels,
)
from models.world import get_preset, split_seed
from models.world.cache import cache_dir

SIZES = tuple(CONFIGS)


@dataclass(frozen=True)
class SoundNetTrainConfig(TrainConfig):
    """Settings of the SoundNet recipes (``key=value`` on the command line)."""

    epochs: int = 8
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    size: str = "lite"  # lite, soundnet8 or soundnet5
    teacher: str = "efficientnet-lite0"  # or a ResNet/VGG weights file with torchvision keys (.pth)
    teacher_labels: str = ""  # a labels file for a weights-file teacher ("": ImageNet names for 1000 classes)
    scene_teacher: str = ""  # a second (scene) teacher for the scene head: a weights file; "": no scene head
    scene_teacher_labels: str = ""  # its labels file ("": "class <k>")
    crop_seconds: float = 20.0  # audio per item (the authors' 20 s)
    world: str = "bench"
    train_scenes: int = 16  # world scenes to learn from
    val_scenes: int = 2
    scene_seconds: float = 60.0  # of each world scene
    val_videos: float = 0.2  # with --data: the fraction of the videos held out (at least one of two or more)
    max_video_seconds: float = 300.0  # with --data: read at most this much of each video
    items_per_epoch: int = 0  # 0: every crop once (at least one batch)
    gain_db: float = 6.0  # random gain per crop, +-dB
    cache: str = ""  # teacher posterior cache folder; "": $AVLIVE_CACHE/soundnet-teacher
    live_window_seconds: float = 0.0  # exported window; 0: the shortest input with one output step

    def validate(self) -> None:
        super().validate()
        get_preset(self.world)
        if self.size not in SIZES:
            raise ValueError(f"size: expected one of {SIZES}, found {self.size!r}")
        check_teacher(self.teacher)
        if self.scene_teacher:
            check_teacher(self.scene_teacher)
        if not self.crop_seconds > 0 or not self.scene_seconds > 0:
            raise ValueError(f"crop_seconds, scene_seconds: expected > 0, found {self.crop_seconds}, {self.scene_seconds}")
        if self.train_scenes < 1 or self.val_scenes < 1:
            raise ValueError(f"train_scenes, val_scenes: expected >= 1, found {self.train_scenes}, {self.val_scenes}")
        if not 0.0 <= self.val_videos < 1.0:
            raise ValueError(f"val_videos: expected a fraction in [0, 1), found {self.val_videos}")


def kl_per_step(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """KL(targets || softmax(logits)) over the last axis: ``(B, T, K)`` twice -> ``(B, T)``."""
    return (torch.xlogy(targets, targets) - targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)


class Posteriors(nn.Module):
    """Export wrapper: waveform ``(B, N)`` -> the student's object posteriors averaged over its
    output steps ``(B, K)``."""

    def __init__(self, net: SoundNet):
        super().__init__()
        self.net = net

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        objects, _ = self.net(audio)
        return torch.softmax(objects, dim=-1).mean(dim=1)


class SoundNetRecipe(Recipe):
    """Teacher-student training of a SoundNet; the config's ``size`` picks the network."""

    name: ClassVar[str] = "soundnet-lite"
    description: ClassVar[str] = ("SoundNet lite taught by EfficientNet-Lite0's ImageNet posteriors of the frames "
                                  "(world scenes or a video folder)")
    config_class: ClassVar[type] = SoundNetTrainConfig
    primary_metric: ClassVar[str] = "agreement"
    data_help: ClassVar[str] = "optional: a folder of videos with sound; without --data it trains on the world"
    reads = ("videos",)

    def __init__(self, config: Any):
        super().__init__(config)
        self.labels = teacher_labels(config.teacher, config.teacher_labels)  # the student's object classes
        self.scene_labels = (teacher_labels(config.scene_teacher, config.scene_teacher_labels)
                             if config.scene_teacher else ())
        self.cache: PosteriorCache | None = None
        self._mark: float | None = None
        self._epoch = 0
        self._datasets: tuple[TeacherCrops, ...] = ()

    # --- shape ------------------------------------------------------------------------
    def network_config(self) -> SoundNetConfig:
        return dataclasses.replace(CONFIGS[self.config.size], object_classes=len(self.labels),
                                   scene_classes=len(self.scene_labels))

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.config.seed)
        return SoundNet(self.network_config())

    @property
    def crop_samples(self) -> int:
        return round(self.config.crop_seconds * SAMPLE_RATE)

    @property
    def live_samples(self) -> int:
        c = self.config
        shortest = SoundNet(self.network_config()).min_samples()
        return max(shortest, round(c.live_window_seconds * SAMPLE_RATE))

    # --- data -------------------------------------------------------------------------
    def build_datasets(self, data: Path | None):
        c = self.config
        net = SoundNet(self.network_config())
        steps = net.output_length(self.crop_samples)
        if steps < 1:
            raise ValueError(f"crop_seconds: expected at least {net.min_samples() / SAMPLE_RATE:.2f} s for one output "
                             f"step of {c.size}, found {c.crop_seconds}")
        teacher = build_teacher(c.teacher, c.teacher_labels)
        self.labels = teacher.labels
        scene = build_teacher(c.scene_teacher, c.scene_teacher_labels) if c.scene_teacher else None
        self.cache = PosteriorCache(Path(c.cache) if c.cache else cache_dir() / "soundnet-teacher")
        if data is None:
            world = get_preset(c.world)
            seconds = max(c.scene_seconds, c.crop_seconds)
            train_src = [WorldSource(c.world, world, split_seed("train", i), seconds) for i in range(c.train_scenes)]
            val_src = [WorldSource(c.world, world, split_seed("val", i), seconds) for i in range(c.val_scenes)]
        else:
            sources = video_folder_sources(Path(data), c.max_video_seconds)
            n_val = 0 if len(sources) < 2 else max(1, round(c.val_videos * len(sources)))
            # every k-th video held out, so the held-out ones spread over the folder's order
            val_idx = set(np.linspace(0, len(sources) - 1, n_val).round().astype(int).tolist()) if n_val else set()
            train_src = [s for i, s in enumerate(sources) if i not in val_idx]
            val_src = [s for i, s in enumerate(sources) if i in val_idx] or train_src
        grid = net.time_grid()
        train = TeacherCrops(train_src, grid, self.crop_samples, steps, teacher, self.cache,
                             items=max(c.items_per_epoch, c.batch_size), gain_db=c.gain_db, seed=c.seed,
                             scene_teacher=scene)
        val = TeacherCrops(val_src, grid, self.crop_samples, steps, teacher, self.cache, scene_teacher=scene)
        self._datasets = (train, val)
        print(f"soundnet: {len(train_src)} training and {len(val_src)} validation sources, {len(train.crops)} "
              f"training crops of {c.crop_seconds:g} s ({steps} output steps each, one per "
              f"{grid.stride / SAMPLE_RATE:.2f} s), teacher {teacher.name}", file=sys.stderr)
        return train, val

    # --- training ---------------------------------------------------------------------
    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.config.lr, betas=(0.9, 0.999), weight_decay=self.config.weight_decay)

    def set_train_mode(self, model: nn.Module) -> None:
        self._mark = time.perf_counter()  # the trainer calls this as each epoch starts
        for dataset in self._datasets:  # the first epoch gets every teacher target (an epoch may not see every crop)
            dataset.prepare()
        model.train()

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        objects, scenes = model(batch["audio"])
        loss = kl_per_step(objects, batch["targets"]).mean()
        if "scene_targets" in batch:  # each teacher its own head; the two KLs add, as the authors' 8 outputs do
            loss = loss + kl_per_step(scenes, batch["scene_targets"]).mean()
        return loss

    # --- evaluation -------------------------------------------------------------------
    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        started = time.perf_counter()
        epoch_s = started - self._mark if self._mark is not None else float("nan")
        kl, kl_scenes, agree, steps = 0.0, 0.0, 0, 0
        for batch in loader:
            objects, scenes = model(batch["audio"])
            kl += float(kl_per_step(objects, batch["targets"]).sum())
            if "scene_targets" in batch:
                kl_scenes += float(kl_per_step(scenes, batch["scene_targets"]).sum())
            agree += int((objects.argmax(-1) == batch["targets"].argmax(-1)).sum())
            steps += objects.shape[0] * objects.shape[1]
        counters = self.cache.take_counters() if self.cache is not None else None
        self._epoch += 1
        out = {"kl": kl / max(1, steps), "agreement": agree / max(1, steps), "epoch_s": round(epoch_s, 2)}
        if self.scene_labels:
            out["scene_kl"] = kl_scenes / max(1, steps)
        if counters is not None:
            out.update({"teacher_forwards": float(counters.forwards), "teacher_frames": float(counters.frames),
                        "teacher_cache_hits": float(counters.hits)})
            print(f"soundnet epoch {self._epoch}: {epoch_s:.1f} s, teacher forwards {counters.forwards}, frames "
                  f"rendered or decoded {counters.frames}, posterior cache hits {counters.hits} and misses "
                  f"{counters.misses} (training and validation sources)", file=sys.stderr)
        return out

    # --- metadata and export ----------------------------------------------------------
    def metadata(self, model: nn.Module) -> ModelMetadata:
        c, n = self.config, self.live_samples
        net: SoundNet = model
        return ModelMetadata(
            family="soundnet", task="labeler", labels=tuple(self.labels), sample_rate=SAMPLE_RATE,
            window_seconds=n / SAMPLE_RATE, needs_frame=False, frontend={},
            inputs=(TensorSpec("audio", ("batch", n), "float32"),),
            outputs=(TensorSpec("probs", ("batch", len(self.labels)), "float32"),),
            extra={"multi_label": False, "hop_seconds": 1.0, "network": net.config.to_dict(), "size": c.size,
                   "teacher": c.teacher, "scene_teacher": c.scene_teacher, "scene_labels": list(self.scene_labels),
                   "world": c.world, "output_stride_seconds": net.time_grid().stride / SAMPLE_RATE},
        )

    def export_module(self, model: nn.Module):
        return Posteriors(model).eval(), self.waveform_example(self.live_samples), {"audio": {0: "batch"}}


@dataclass(frozen=True)
class SoundNet8Config(SoundNetTrainConfig):
    size: str = "soundnet8"


@dataclass(frozen=True)
class SoundNet5Config(SoundNetTrainConfig):
    size: str = "soundnet5"


class SoundNet8Recipe(SoundNetRecipe):
    name = "soundnet8"
    description = "SoundNet 8 layers (paper size) taught by EfficientNet-Lite0 (world scenes or a video folder)"
    config_class = SoundNet8Config


class SoundNet5Recipe(SoundNetRecipe):
    name = "soundnet5"
    description = "SoundNet 5 layers (paper size) taught by EfficientNet-Lite0 (world scenes or a video folder)"
    config_class = SoundNet5Config
