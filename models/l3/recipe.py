"""The ``l3`` training recipe: audio-visual correspondence (AVC) on the world or a folder of videos.

    python -m models.train --recipe l3-lite --out runs/l3-lite              # the demo localizer's run
    python -m models.train --recipe l3 --out runs/l3 size=lite              # the world, plain L³ defaults
    python -m models.train --recipe l3 --out runs/l3-vid --data DIR         # any folder of videos
    python -m apps.eval_l3 runs/l3-lite --write-threshold                   # threshold, then test figures
    python -m apps.eval_l3 runs/l3-vid --data DIR --write-threshold         # the same on DIR's val/ and test/ videos

**Pairs** (:class:`AVCPairs`, after L³, REFERENCE.md §2.1). Every item is a frame and one second
of 48 kHz audio. A *positive* is a frame and the second centred on it from the same
video/scene (the alignment rule of :func:`models.l3.audio_window_for_frame`: frame ``k`` at
``t_k`` goes with samples ``[round(t_k·48000) − 24000, round(t_k·48000) + 24000)``). A
*negative* is the same kind of frame with a second taken from another video/scene; with
``same_video_negatives = p`` a fraction ``p`` of the negatives take their second from the same
video/scene instead, at least ``same_video_min_gap`` seconds away (where a source has no such
second the negative falls back to another source). Even indices are positives, odd ones
negatives, so every epoch is balanced 50/50 exactly and the shuffled batches nearly so.

Both sides of every pair are drawn from the same pool: frames whose centred second passes the
energy floor. A positive's frame and a negative's frame therefore come from the same
distribution, and so do their seconds of audio: loudness says nothing about the label, only
the correspondence does.

**Energy floor** (:class:`EnergyFloor`, computed from the audio alone, so it works on real
videos). Per source (a world scene or a video), the *background estimate* is the 10th
percentile of the level (dBFS) of its 100 ms frames. A second centred on a frame is used only
when its RMS level is at least ``max(background + 6 dB, −60 dBFS)``: 6 dB above the quiet
stretches of its own recording (an event at the world's lowest SNR, 0 dB, lifts a second only
3 dB), and never digital silence. Measured with the world's ground truth on 4 validation
scenes × 180 s (seconds every 0.25 s): the rule keeps 77 % of the seconds; 93.6 % of those kept
hold ≥ 0.25 s of an event and 1.6 % hold no event at all (against 13.2 % of all seconds); it
rejects 91 % of the event-free seconds and keeps 90 % of the seconds with an event. A local
background (10th percentile within ±3, ±5 or ±10 s) separated no better. ``apps.eval_l3``
prints the same figures on the test scenes (3 × 600 s: keeps 74 %; 91 % of those kept hold an
event, 2.5 % none against 16 % overall; rejects 89 % of event-free seconds, keeps 90 % of
seconds with an event).

**Augmentation** (training only; a pure function of ``(seed, epoch, index)``): a random square
crop of side 80–100 % of the frame's shorter side, resized to the input size; a horizontal flip
(p = 0.5; the world's looks are symmetric left-right, triangles point up or down); small colour
jitter (brightness, contrast and saturation each × U(0.9, 1.1)); and the paper's ±10 % audio
volume (× U(0.9, 1.1)). No hue change: colour is what tells some of the world's objects apart.

**Loss and head** (two decisions, both overridable). ``batch_negatives=true`` (default): a
batch's two subnets run once, and the AVC head scores *every* (frame, audio) combination of the
batch (:func:`pair_logits`); the diagonal is the dataset's pairs, and every off-diagonal
combination whose audio comes from another video/scene is one more negative of exactly the kind
above (a frame with a second from another source). Binary cross-entropy with positives and
negatives each carrying half the loss keeps the 50/50 balance. The extra negatives cost only the
head (B² small products) and cut the variance of the correspondence gradient, which is what
keeps AVC on a plateau at first. In 5-minute CPU trials with the tiny network (lr 1e-3, 32
pairs a batch), plain pairs stayed at chance for 800–1000 steps, on 16 scenes × 60 s as on
200 × 12 s; with batch negatives on 16 × 60 s scenes this recipe (avol head, its default lr)
reached validation AUC 0.63 and accuracy 0.61 after 600 steps (800 steps took 173 s; on the
test scenes that model is still near chance, AUC 0.54: a plateau left, not a trained model).
Long scenes matter as much: on 200 × 12 s scenes batch negatives did not help within 900
steps; objects and sounds that recur within a scene seem to be what gets the correspondence
started, hence ``train_scenes=64`` × ``scene_seconds=120``. ``batch_negatives=false`` is the
paper's loss.

**The scene shortcut, and same-scene groups.** Every world scene has its own backdrop gradient
and its own background-noise colour. With cross-scene negatives only, a network can tell a
positive from a negative by matching a frame's backdrop to the noise under the sound (64
training scenes are easily memorised) and never look at an object. The runs before
``scene_groups`` did exactly that: the best of them (``avol_cosine=true contrastive=1.0
positives_only=true lr=1e-3 warmup_steps=50 epochs=10``, 1280 steps, 38 minutes) reached
validation AUC 0.68 with a heatmap whose peak hit the sounding object no more often than chance
(pointing 23.5 % on the test scenes, chance 24.1 %), after ~700 steps at chance. With
``scene_groups=G`` a batch is ``batch_size / G`` scenes × ``G`` frames at least
``same_video_min_gap`` seconds apart, and those same-scene pairs are negatives too (of the
binary term and of InfoNCE): backdrop and noise are then shared by both sides of a negative, so
only the objects and the sound can tell it from a positive. Pointing on 93 hops of two
validation scenes then rose from chance to 0.31 after 256 steps, 0.77 after 896 and 0.62 after
1280 (a noisy gauge: the hops come from about 30 events), and validation AUC reached 0.77 by
step 1408, whose checkpoint is the demo localizer (``--recipe l3-lite``; its test figures are in
models/demo/README.md). The other options
were tried first against the long initial plateau and are kept because the demo run uses them:
``contrastive=W`` adds a symmetric InfoNCE term over the batch's positives
(:func:`contrastive_loss`); ``positives_only`` makes every training item a positive, the
batch's other pairs being the negatives; ``avol_cosine`` compares batch-normalised unit
projections (models/l3/network.py; the pooled audio features of two different seconds start with
cosine ≈ 0.97, 0.31 after the normalised projection).

``fusion="avol"`` (default; ``"concat"`` is the L³ paper's head applied per cell): the
AVOL-Net head (models/l3/network.py) makes the heatmap the head itself, the AVC probability being the
best cell's (multiple-instance learning), so the live peak score *is* the correspondence
confidence the threshold is set on.

**Optimisation**: Adam (L2 weight decay 1e-5 on conv and linear weights, as the paper), lr
5e-4 after 100 warm-up steps, cosine decay to 5 % of it. Evaluation after each epoch on a fixed
set of validation pairs: AVC accuracy (the primary figure), its per-kind split, and the AUC of
the AVC probability and of the heatmap's peak cell between positives and negatives.

**Data**: the world's train seeds (``train_scenes`` scenes, their first ``scene_seconds``),
audio rendered once at 48 kHz into the world cache (``$AVLIVE_CACHE``, memory-mapped), frames
rendered on demand; validation pairs from the validation seeds. With ``--data DIR``: the videos
under ``DIR`` (:func:`~models.datasets.formats.read_video_folder`), split by
:func:`~models.datasets.formats.split_video_folder`, decoded in
crash-contained worker processes (:func:`~models.io.decode_pool.decode_many`; a broken file costs
that file, listed in the log) to 48 kHz mono audio and ``video_fps`` frames per second at the
input size, the first ``video_seconds`` of each. ``train.txt`` / ``val.txt`` / ``test.txt``
list files in ``DIR`` name the splits; else ``train/`` ``val/`` ``test/`` top folders do; else
(a flat folder) every video trains. Test videos are left out; wherever no validation videos are
named (no ``val/``, no ``val.txt``: e.g. the common ``train/`` + ``test/`` layout, or a flat
folder) a fixed ``val_fraction`` of the training videos (by a hash of their relative path)
validates. Audio
sample 0 is taken to be at time 0 of the video's timeline, as for files muxed from time 0.

**Videos where one thing sounds throughout** (a photo and its sound, the stamp videos of
``apps.build_stamp_videos``): keep ``scene_groups=1``. Same-source groups assume that two
seconds of one source far apart hold different sounds; in such a video they hold the same sound
over the same picture, so the groups would label true correspondences as negatives. The stamp
run (``--recipe l3`` with the l3-lite options but ``scene_groups=1``) is in
models/datasets/stamp_videos.py.

**Threshold**: the trainer's loop writes metadata once, before training, so the localizer's
"no source" threshold is chosen afterwards on validation scenes:
``python -m apps.eval_l3 RUN --write-threshold`` (:func:`models.l3.evaluation.choose_threshold`,
:func:`models.l3.evaluation.write_threshold`). Until then ``extra["threshold"]`` is the live
default 0.5 with ``extra["threshold_source"] == "default"``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from models.core.metadata import ModelMetadata
from models.core.recipe import Recipe
from models.core.train_config import TrainConfig
from models.evaluation.metrics import roc_auc_per_class
from models.l3.live import HeatmapExport, example_inputs, heatmap_metadata
from models.l3.loss import contrastive_loss, pair_logits
from models.l3.network import L3_LITE, L3_PAPER, L3_TINY, L3Config, L3Net
from models.l3.pairs import KIND_SAME_SOURCE, AVCPairs, FrameAugment
from models.l3.sources import AVSource, EnergyFloor, video_sources, world_sources
from models.world import get_preset, split_seed

#: The network sizes the recipe trains (``size=...``).
SIZES: dict[str, L3Config] = {"paper": L3_PAPER, "lite": L3_LITE, "tiny": L3_TINY}


@dataclass(frozen=True)
class L3TrainConfig(TrainConfig):
    """The ``l3`` recipe's settings (``key=value`` on the command line)."""

    epochs: int = 12
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-5  # Adam's L2 term on conv/linear weights (the paper's)
    warmup_steps: int = 100
    lr_min_factor: float = 0.05
    size: str = "lite"  # "lite", "paper" or "tiny" (models/l3/network.py presets)
    fusion: str = "avol"  # "avol" (AVOL-Net: the map is the head) or "concat" (the L³ head, applied per cell)
    avol_cosine: bool = False  # avol: cosine similarity of the projections with a learned scale (models/l3/network.py)
    world: str = "bench"  # world preset (ignored with --data)
    train_scenes: int = 64  # train seeds, the first scene_seconds of each
    scene_seconds: float = 120.0
    items_per_epoch: int = 4096
    val_scenes: int = 8
    val_scene_seconds: float = 60.0
    val_items: int = 512
    same_video_negatives: float = 0.0  # fraction of negatives from the frame's own video/scene
    same_video_min_gap: float = 2.0  # seconds between such a negative's second and the frame
    floor_margin_db: float = 6.0  # energy floor: ≥ background + this ...
    floor_absolute_db: float = -60.0  # ... and ≥ this dBFS
    floor_percentile: float = 10.0  # background = this percentile of 100 ms frame levels
    crop_min: float = 0.8  # random square crop, side ≥ this fraction of the shorter side
    flip: bool = True
    jitter: float = 0.1  # brightness/contrast/saturation × U(1 ± jitter)
    gain: float = 0.1  # audio volume × U(1 ± gain) (the paper's ±10 %)
    batch_negatives: bool = True  # also every cross-source (frame, audio) combination of a batch, 50/50 weighted
    contrastive: float = 0.0  # weight of a symmetric InfoNCE term over the batch's positive pairs (needs batch_negatives)
    positives_only: bool = False  # training items all positives; negatives = the batch's cross-source pairs (needs batch_negatives)
    scene_groups: int = 1  # > 1 (needs positives_only): a batch is batch_size / scene_groups sources × scene_groups frames
    # ≥ same_video_min_gap apart, and those same-source pairs are negatives too (see the module docstring; keep 1 for
    # videos where one thing sounds throughout)
    video_fps: float = 2.0  # --data: frames kept per second of video
    video_seconds: float = 10.0  # --data: seconds read per video
    val_fraction: float = 0.1  # --data without val/ (or val.txt): fraction of the training videos that validate
    render_workers: int = 2  # processes rendering world audio into the cache (0: in-process)

    def validate(self) -> None:
        super().validate()
        if self.size not in SIZES:
            raise ValueError(f"size: expected one of {sorted(SIZES)}, found {self.size!r}")
        if self.fusion not in ("concat", "avol"):
            raise ValueError(f"fusion: expected 'concat' or 'avol', found {self.fusion!r}")
        get_preset(self.world)
        for name in ("train_scenes", "val_scenes", "items_per_epoch", "val_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, found {getattr(self, name)}")
        if self.train_scenes < 2 or self.val_scenes < 2:
            raise ValueError(f"train_scenes and val_scenes: expected >= 2 (negatives come from another scene), "
                             f"found {self.train_scenes} and {self.val_scenes}")
        for name in ("scene_seconds", "val_scene_seconds", "video_seconds"):
            if getattr(self, name) < 2.0:
                raise ValueError(f"{name}: expected >= 2 s, found {getattr(self, name)}")
        if not 0.0 <= self.same_video_negatives <= 1.0:
            raise ValueError(f"same_video_negatives: expected a fraction in [0, 1], found {self.same_video_negatives}")
        if not 0.0 <= self.gain < 1.0:
            raise ValueError(f"gain: expected in [0, 1), found {self.gain}")
        if self.positives_only and not self.batch_negatives:
            raise ValueError("positives_only: expected batch_negatives=true (the batch's cross pairs are then the only negatives)")
        if self.scene_groups < 1 or self.batch_size % self.scene_groups or (self.scene_groups > 1 and not self.positives_only):
            raise ValueError(f"scene_groups: expected a divisor of batch_size ({self.batch_size}), and 1 unless "
                             f"positives_only, found {self.scene_groups} (positives_only={self.positives_only})")
        if self.contrastive < 0 or (self.contrastive > 0 and not self.batch_negatives):
            raise ValueError(f"contrastive: expected >= 0, and 0 without batch_negatives, found {self.contrastive} "
                             f"(batch_negatives={self.batch_negatives})")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected in (0, 1), found {self.val_fraction}")
        if self.video_fps <= 0:
            raise ValueError(f"video_fps: expected > 0, found {self.video_fps}")
        self.energy_floor()
        self.frame_augment()

    def energy_floor(self) -> EnergyFloor:
        return EnergyFloor(self.floor_margin_db, self.floor_absolute_db, self.floor_percentile)

    def frame_augment(self) -> FrameAugment:
        return FrameAugment(self.crop_min, self.flip, self.jitter)


def l3_config_for(size: str, fusion: str = "concat") -> L3Config:
    """The network config of a recipe size (:data:`SIZES`) with the chosen fusion head."""
    if size not in SIZES:
        raise ValueError(f"size: expected one of {sorted(SIZES)}, found {size!r}")
    return dataclasses.replace(SIZES[size], fusion=fusion)


def _binary_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_per_class(scores[:, None], labels[:, None].astype(np.float64))[0])


class L3Recipe(Recipe):
    """L³-Net AVC training (see the module docstring)."""

    name = "l3"
    description = "L3-Net audio-visual correspondence (1 s at 48 kHz + the frame at its centre): the sound-source heatmap"
    config_class = L3TrainConfig
    primary_metric = "avc_acc"
    data_help = ("optional: a folder of videos (flat, train/ val/ test/ top folders, or train.txt/val.txt/test.txt lists; "
                 "val_fraction of the training videos validate where no val/ exists)")
    reads = ("videos",)

    @property
    def shuffle_train(self) -> bool:
        """``scene_groups`` needs batches cut in index order (items are random functions of the index anyway)."""
        return self.config.scene_groups == 1

    @property
    def network_config(self) -> L3Config:
        return dataclasses.replace(l3_config_for(self.config.size, self.config.fusion), avol_cosine=self.config.avol_cosine)

    def build_model(self) -> nn.Module:
        return L3Net(self.network_config)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Adam; L2 weight decay on conv and linear weights only (not BN, biases, calibration)."""
        return torch.optim.Adam(self.param_groups(model), lr=self.config.lr)

    def sources(self, data: Path | None) -> tuple[list[AVSource], list[AVSource]]:
        """(train, validation) sources: world scenes, or the videos of ``data``."""
        c = self.config
        floor = c.energy_floor()
        if data is None:
            world = get_preset(c.world)
            train = world_sources(world, [split_seed("train", i) for i in range(c.train_scenes)], c.scene_seconds,
                                  floor, c.render_workers)
            val = world_sources(world, [split_seed("val", i) for i in range(c.val_scenes)], c.val_scene_seconds,
                                floor, c.render_workers)
            return train, val
        from models.datasets.formats import split_video_folder

        splits = split_video_folder(data, val_fraction=c.val_fraction)
        train_files, val_files = splits["train"], splits["val"]
        if len(train_files) < 2 or len(val_files) < 2:
            n = sum(len(v) for v in splits.values())
            raise ValueError(f"{data}: expected at least 2 training and 2 validation videos, found {len(train_files)} "
                             f"and {len(val_files)} ({len(splits['test'])} test) of {n} (add videos, a val/ folder or "
                             f"val.txt, or raise val_fraction={c.val_fraction})")
        size = self.network_config.image_size
        workers = max(1, c.num_workers)
        train = video_sources(train_files, size, c.video_fps, c.video_seconds, floor, workers)
        val = video_sources(val_files, size, c.video_fps, c.video_seconds, floor, workers)
        return train, val

    def build_datasets(self, data: Path | None) -> tuple[Dataset, Dataset]:
        c = self.config
        train_sources, val_sources = self.sources(data)
        size = self.network_config.image_size
        train = AVCPairs(train_sources, c.items_per_epoch, size, c.seed, positives_only=c.positives_only,
                         group_size=c.scene_groups,
                         same_video_negatives=c.same_video_negatives,
                         same_video_min_gap=c.same_video_min_gap, augment=c.frame_augment(), gain=c.gain)
        val = AVCPairs(val_sources, c.val_items, size, 12_345, same_video_negatives=c.same_video_negatives,
                       same_video_min_gap=c.same_video_min_gap, fixed=True)
        return train, val

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        """Mean loss of a batch: cross-entropy of the AVC decision; with ``batch_negatives`` every cross combination of a
        frame and another source's audio in the batch is a negative too, and positives and
        negatives each carry half the loss (:func:`pair_logits`)."""
        if not self.config.batch_negatives:
            return F.cross_entropy(model(batch["frames"], batch["audio"]), batch["label"])
        if isinstance(model, nn.parallel.DistributedDataParallel):
            raise ValueError("batch_negatives: expected a single process (the pairwise term bypasses DDP's forward); "
                             "pass batch_negatives=false under torchrun")
        z = pair_logits(model, batch["frames"], batch["audio"])  # (B, B)
        label = batch["label"].bool()
        positive = torch.diag(label)
        negative = batch["frame_source"][:, None] != batch["audio_source"][None, :]  # includes the dataset's negatives
        negative |= torch.diag(~label)
        may_correspond = None
        if self.config.scene_groups > 1:  # same source, far apart in time: a negative as well
            apart = (batch["frame_time"][:, None] - batch["frame_time"][None, :]).abs() >= self.config.same_video_min_gap
            negative |= apart
            may_correspond = ~negative
        loss_pos = F.binary_cross_entropy_with_logits(z[positive], torch.ones_like(z[positive])) if positive.any() else z.sum() * 0
        loss_neg = F.binary_cross_entropy_with_logits(z[negative], torch.zeros_like(z[negative])) if negative.any() else z.sum() * 0
        loss = 0.5 * (loss_pos + loss_neg)
        if self.config.contrastive > 0:
            loss = loss + self.config.contrastive * contrastive_loss(z, label, batch["frame_source"], may_correspond)
        return loss

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        probs, peaks, labels, kinds, losses = [], [], [], [], []
        for b in loader:
            logits, cells = model.forward_all(b["frames"], b["audio"])
            losses.append(F.cross_entropy(logits, b["label"], reduction="sum").item())
            probs.append(logits.softmax(1)[:, 1].cpu())
            peaks.append(cells.flatten(1).amax(1).cpu())
            labels.append(b["label"].cpu())
            kinds.append(b["kind"].cpu())
        p, peak = torch.cat(probs).numpy(), torch.cat(peaks).numpy()
        y, kind = torch.cat(labels).numpy(), torch.cat(kinds).numpy()
        correct = (p >= 0.5) == (y == 1)
        figures = {
            "avc_acc": float(correct.mean()), "avc_loss": float(sum(losses) / len(y)),
            "pos_acc": float(correct[y == 1].mean()) if (y == 1).any() else float("nan"),
            "neg_acc": float(correct[y == 0].mean()) if (y == 0).any() else float("nan"),
            "avc_auc": _binary_auc(p, y), "peak_auc": _binary_auc(peak, y), "n": float(len(y)),
        }
        if (kind == KIND_SAME_SOURCE).any():
            figures["same_video_neg_acc"] = float(correct[kind == KIND_SAME_SOURCE].mean())
        return figures

    def metadata(self, model: nn.Module) -> ModelMetadata:
        c = self.config
        return heatmap_metadata(self.network_config, {"size": c.size, "fusion": c.fusion, "world": c.world,
                                                      "energy_floor": dataclasses.asdict(c.energy_floor())})

    def export_module(self, model: nn.Module):
        """The heatmap path: ``frames (B, 3, S, S)``, ``audio (B, 48000)`` → ``avc_logits``, ``cell_probs``."""
        return HeatmapExport(model.eval()).eval(), example_inputs(model.config.image_size), {"frames": {0: "batch"}, "audio": {0: "batch"}}

    def real_inputs(self) -> dict[str, torch.Tensor]:
        """Four validation pairs of world frames and audio, for checking exports on real input."""
        c = self.config
        sources = world_sources(get_preset(c.world), [split_seed("val", i) for i in range(2)], 4.0, c.energy_floor())
        pairs = AVCPairs(sources, 4, self.network_config.image_size, 0, fixed=True)
        items = [pairs[i] for i in range(4)]
        return {"frames": torch.stack([x["frames"] for x in items]), "audio": torch.stack([x["audio"] for x in items])}


@dataclass(frozen=True)
class L3LiteTrainConfig(L3TrainConfig):
    """The demo localizer's settings (``--recipe l3-lite``): the ``l3`` recipe at ``size=lite`` with
    batches of 8 scenes × 4 frames ≥ 2 s apart (``scene_groups``), every item a positive, the
    cosine AVOL head and an InfoNCE term, at lr 1e-3 for 16 epochs of 128 steps (see the module
    docstring for why each is there), with a 60-minute training limit (on the 2-core machine it
    was made on, 16 epochs took 58.5 and 61.5 min in two runs; the best validation checkpoint came
    after 40 and 43 min)."""

    epochs: int = 16
    time_limit_min: float = 60.0
    lr: float = 1e-3
    warmup_steps: int = 50
    checkpoint_every: int = 100
    avol_cosine: bool = True
    contrastive: float = 1.0
    positives_only: bool = True
    scene_groups: int = 4


class L3LiteRecipe(L3Recipe):
    """:class:`L3Recipe` with the demo localizer's defaults (:class:`L3LiteTrainConfig`)."""

    name = "l3-lite"
    description = "L3-Net lite as the demo localizer is trained: same-scene groups, cosine AVOL head, InfoNCE (l3 with other defaults)"
    config_class = L3LiteTrainConfig
