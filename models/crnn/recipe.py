"""Training recipes for the CRNN sound-event detector (seed 003; DCASE task-4 baseline recipe).

``python -m models.train --recipe crnn-lite`` trains the streaming ``lite`` size on the world
(or on a DESED-layout folder with ``--data``); ``--recipe crnn`` trains the paper size (the DCASE
2021 baseline's network and front end, 10 s clips). What they do:

* **Clips** (:mod:`models.crnn.data`): strong, weak and unlabelled; on the world the roles go
  by scene (``strong_scenes``, ``weak_scenes``, ``unlabelled_scenes``). The defaults label every
  world scene strongly (the live labeler); the DESED-like split for the mean-teacher comparison
  is ``strong_scenes=8 weak_scenes=4 unlabelled_scenes=28`` (weak labels on 10 % of the clips,
  strong on a 20 % "synthetic" subset, the rest unlabelled), and its supervised-only twin adds
  ``use_unlabelled=false`` (the same labelled scenes, the unlabelled ones left out).
* **Losses**: binary cross-entropy of the frame probabilities on strong clips and of the clip
  probabilities on every clip whose classes are known (strong clips imply theirs); with
  ``mean_teacher`` an EMA teacher (decay ``min(1 - 1/(step + 1), ema_decay)``, after every
  optimiser step) and a consistency loss, the mean squared difference of student and teacher
  frame and clip probabilities on every clip, weighted by ``consistency_weight * exp(-5 (1 -
  t)^2)`` with ``t`` rising linearly to 1 over the first ``rampup_fraction`` of the steps.
* **Augmentation**: a random gain per clip; mixup on a fraction ``mixup`` of the batches
  (waveforms mixed with a partner of the same kind, strong, weak or unlabelled, ``lam ~
  Beta(mixup_alpha, mixup_alpha)``, soft targets); SpecAugment frequency and
  time masks without time warping (warping would move the frame targets).
* **Normalisation**: per-mel-band mean and standard deviation of the training log-mels
  (buffers of the network, so live inference needs no statistics from the data). The DCASE 2021
  baseline scales every clip to its own min-max range, which a stream cannot do.
* **Evaluation** (primary ``event_f1``): frame probabilities thresholded (``threshold``),
  median-filtered (``median_frames``) and turned into events, scored against the validation
  clips' reference events: event-based F1 (200 ms onset collar, offset collar max(200 ms, 20 %)),
  segment-based F1 (1 s), tagging micro-F1 of the clip probabilities at 0.5; the student's and,
  with a mean teacher, the teacher's figures (``teacher_*``); the deployed one (``deploy``)
  picks the best checkpoint.
* **Audio-visual transfer** (``fuse=slowfast-lite,l3-vision``; world scenes only): pretrained
  embeddings (:mod:`models.embeddings`) of each scene, computed once and cached, are fused at the
  input frame by frame (:mod:`models.crnn.fusion`), normalised by their training statistics. Such a
  run is scored offline (``apps.eval_sed``); it has no streaming step and is not exported.
* **Optimiser**: Adam (lr 1e-3), linear warm-up then cosine decay (the project's default
  schedule; the baseline ramps up exponentially and keeps the rate constant).

Export and live (:mod:`models.crnn.streaming`, :mod:`models.crnn.live`): the streaming step with
the front end inside, one hop of ``hop_seconds`` per call.
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.audio.frontend import FrontEnd, FrontEndConfig
from models.audio.specaugment import SpecAugmentConfig, spec_augment
from models.core.metadata import ModelMetadata, TensorSpec
from models.core.recipe import Recipe
from models.core.train_config import TrainConfig
from models.crnn.data import UNUSED, WorldSedClips, desed_datasets, world_roles
from models.datasets.desed_layout import DESED_HELP
from models.crnn.frames import FrameGrid
from models.crnn.fusion import parse_fuse
from models.crnn.network import CRNN, CRNNConfig, lite_config, paper_config
from models.crnn.evaluation import clip_figures
from models.crnn.streaming import StreamingStep
from models.world import CLASS_NAMES, get_preset, split_seed

logger = logging.getLogger(__name__)

#: The lite front end: 16 kHz, 32 ms frames every 10 ms, 64 mel bands (``center=False`` for streaming).
LITE_FRONTEND = FrontEndConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, center=False, power=1.0,
                               n_mels=64, mel_scale="htk", mel_norm=None, log_offset=1e-6)
#: The DCASE 2021 baseline's front end: 16 kHz, 2048-point frames every 256 samples, 128 mel bands
#: up to 8 kHz, magnitude. Two differences: the project's one front end windows with Hann (the
#: baseline: Hamming), and takes the natural log (the baseline's dB is a constant factor away,
#: which the per-band normalisation absorbs).
PAPER_FRONTEND = FrontEndConfig(sample_rate=16000, n_fft=2048, win_length=2048, hop_length=256, center=False,
                                power=1.0, n_mels=128, fmax=8000.0, mel_scale="htk", mel_norm=None, log_offset=1e-5)
SIZES = ("lite", "paper")
DEPLOY = ("student", "teacher")
#: SpecAugment for SED: masks only (a time warp would move the frame targets).
SED_SPECAUGMENT = SpecAugmentConfig(time_warp=0, freq_masks=2, freq_width=8, time_masks=2, time_width=10)


@dataclass(frozen=True)
class CRNNTrainConfig(TrainConfig):
    """Settings of the CRNN recipes (``key=value`` on the command line)."""

    epochs: int = 12
    batch_size: int = 24
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    size: str = "lite"
    pooling: str = "linear-softmax"  # or "attention"
    dropout: float = 0.2
    world: str = "bench"
    clip_seconds: float = 5.0
    span_seconds: float = 600.0  # rendered seconds per world scene
    strong_scenes: int = 32
    weak_scenes: int = 0
    unlabelled_scenes: int = 0
    use_unlabelled: bool = True  # false: the same scenes, the unlabelled ones left out (supervised-only twin)
    batch_quota: tuple[int, ...] = ()  # (strong, weak, unlabelled) clips in every batch (world); (): by scene shares
    items_per_epoch: int = 3000
    val_scenes: int = 4
    gain_db: float = 6.0
    mean_teacher: bool = False
    ema_decay: float = 0.999
    consistency_weight: float = 2.0
    rampup_fraction: float = 0.5
    mixup: float = 0.5  # fraction of batches mixed
    mixup_alpha: float = 0.2
    spec_augment: bool = True
    # live-like training: the live labeler scores a frame once only `lookahead_frames` of its
    # future exist, so its backward GRU has seen little of an event that just began. A crop's last
    # frames are that case; these add a loss on them and crops that end just after onsets
    tail_frames: int = 4  # the last frames of each strong crop that the tail loss covers
    tail_weight: float = 1.0  # weight of the tail loss (mean BCE over those frames) beside the clip loss; 0: off
    onset_crops: float = 0.3  # world only (a DESED folder's clips are whole): share of crops ending 0-0.4 s after an onset
    # world only: scenes rendered at this rate and resampled to the front end's (soxr, as live:
    # avlive captures at 48 kHz when the demo localizer runs); 0: at the front end's rate
    capture_rate: int = 48000
    deploy: str = "student"  # which network is evaluated for the best checkpoint, exported and run live
    threshold: float = 0.5
    median_frames: int = 7
    hop_seconds: float = 0.08  # live: new audio per streaming step
    live_window_seconds: float = 5.0  # live: the window the recurrent part runs over
    lookahead_frames: int = 1  # live: frames held back so the backward GRU has seen a little of their future
    fuse: str = ""  # offline audio-visual transfer: embedding extractors fused per frame, e.g. "slowfast-lite,l3-vision"
    embedding_cache: str = ""  # where fused embeddings are kept; "": $AVLIVE_CACHE/embeddings

    def validate(self) -> None:
        super().validate()
        get_preset(self.world)
        if self.size not in SIZES:
            raise ValueError(f"size: expected one of {SIZES}, found {self.size!r}")
        if self.deploy not in DEPLOY:
            raise ValueError(f"deploy: expected one of {DEPLOY}, found {self.deploy!r}")
        if self.deploy == "teacher" and not self.mean_teacher:
            raise ValueError("deploy=teacher needs mean_teacher=true")
        if self.strong_scenes + self.weak_scenes + self.unlabelled_scenes < 1:
            raise ValueError("strong_scenes + weak_scenes + unlabelled_scenes: expected at least one training scene")
        if self.strong_scenes + self.weak_scenes < 1:
            raise ValueError("expected labelled scenes (strong_scenes or weak_scenes >= 1)")
        if not 0.0 <= self.mixup <= 1.0:
            raise ValueError(f"mixup: expected a fraction of batches in [0, 1], found {self.mixup}")
        if self.lookahead_frames < 0:
            raise ValueError(f"lookahead_frames: expected >= 0, found {self.lookahead_frames}")
        if self.tail_frames < 1 or self.tail_weight < 0:
            raise ValueError(f"tail_frames >= 1 and tail_weight >= 0 expected, found {self.tail_frames} and "
                             f"{self.tail_weight}")
        if not 0.0 <= self.onset_crops <= 1.0:
            raise ValueError(f"onset_crops: expected a share of crops in [0, 1], found {self.onset_crops}")
        if isinstance(self.capture_rate, bool) or not isinstance(self.capture_rate, int) or self.capture_rate < 0:
            raise ValueError(f"capture_rate: expected Hz >= 0 (0: the front end's rate), found {self.capture_rate!r}")
        if self.batch_quota:
            q = self.batch_quota
            if len(q) != 3 or min(q) < 0 or sum(q) != self.batch_size:
                raise ValueError(f"batch_quota: expected 3 counts (strong, weak, unlabelled) >= 0 summing to batch_size "
                                 f"{self.batch_size}, found {','.join(map(str, q))}")
            scenes = (self.strong_scenes, self.weak_scenes, self.unlabelled_scenes if self.use_unlabelled else 0)
            for role, want, have in zip(("strong", "weak", "unlabelled"), q, scenes):
                if want and not have:
                    raise ValueError(f"batch_quota asks for {want} {role} clips per batch, but no {role} scene is used")
        parse_fuse(self.fuse)


class SedModel(nn.Module):
    """The trained object: the front end, the student CRNN and (mean teacher) its EMA teacher.

    ``forward(audio (B, N)) -> (frame probs (B, T', C), clip probs (B, C))`` of the student;
    :meth:`deployed` is the network that is exported and run live.
    """

    def __init__(self, config: CRNNConfig, frontend: FrontEndConfig, mean_teacher: bool, deploy: str):
        super().__init__()
        self.frontend = FrontEnd(frontend)
        self.student = CRNN(config)
        self.teacher = copy.deepcopy(self.student) if mean_teacher else None
        if self.teacher is not None:
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.deploy = deploy

    def deployed(self) -> CRNN:
        return self.teacher if self.deploy == "teacher" and self.teacher is not None else self.student

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` -> ``(B, T, n_mels)``, T cut to a multiple of the encoder's stride."""
        mel = self.frontend(audio)
        t = mel.shape[1] - mel.shape[1] % self.student.config.time_stride
        return mel[:, :t]

    def forward(self, audio: torch.Tensor, fused: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio (B, N)`` (and, for a fused network, ``fused (B, T_mel, D)``) -> the student's scores."""
        mel = self.log_mel(audio)
        return self.student(mel, *self.student.split_fused(fused, mel.shape[1]))

    @torch.no_grad()
    def update_teacher(self, step: int, decay: float) -> None:
        """EMA of the student's weights into the teacher; buffers (BN statistics) copied."""
        if self.teacher is None:
            return
        alpha = min(1.0 - 1.0 / (step + 1), decay)
        for t, s in zip(self.teacher.parameters(), self.student.parameters()):
            t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
        for t, s in zip(self.teacher.buffers(), self.student.buffers()):
            t.copy_(s)


def _masked_bce(probs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the items where ``mask`` (B,) is 1; 0 when none is."""
    if not bool(mask.any()):
        return probs.sum() * 0.0
    keep = mask > 0
    return F.binary_cross_entropy(probs[keep].clamp(1e-7, 1 - 1e-7), targets[keep])


class CRNNRecipe(Recipe):
    """The CRNN recipe; the class attributes pick the size and its defaults."""

    name: ClassVar[str] = "crnn-lite"
    description: ClassVar[str] = ("CRNN sound-event detector, lite size, streaming (world or a DESED folder): the "
                                  "frame-level live labeler")
    config_class: ClassVar[type] = CRNNTrainConfig
    primary_metric: ClassVar[str] = "event_f1"
    data_help: ClassVar[str] = f"optional: {DESED_HELP}; without --data it trains on the world"
    reads = ("desed",)
    live_settings = ("hop_seconds", "lookahead_frames", "live_window_seconds")

    def __init__(self, config: Any):
        super().__init__(config)
        self.labels: tuple[str, ...] = CLASS_NAMES
        self.step = 0
        self.total_steps = 1
        self._stats: tuple[torch.Tensor, ...] | None = None
        #: sizes of the fused embeddings (from the extractors in training, from metadata on reload)
        self.fusion_dims: tuple[int, ...] = ()
        self._extractors: list | None = None
        self._trained_fingerprints: tuple[str, ...] = ()

    # --- shape ------------------------------------------------------------------------
    @property
    def frontend(self) -> FrontEndConfig:
        return PAPER_FRONTEND if self.config.size == "paper" else LITE_FRONTEND

    def _sized_config(self, fusion_dims: tuple[int, ...]) -> CRNNConfig:
        c = self.config
        make = paper_config if c.size == "paper" else lite_config
        base = make(len(self.labels), pooling=c.pooling, dropout=c.dropout)
        if not fusion_dims:
            return base
        # each embedding adds as many rows as the blocks before the last pool into one bin, and the
        # last block pools the rest: every variant's GRU reads frames of the spectral network's size
        lead = math.prod(base.freq_pools[:-1])
        bins = base.n_mels + lead * len(fusion_dims)
        return make(len(self.labels), pooling=c.pooling, dropout=c.dropout, fusion_dims=fusion_dims,
                    fusion_bins=lead, freq_pools=(*base.freq_pools[:-1], bins // lead))

    def network_config(self) -> CRNNConfig:
        if self.config.fuse and not self.fusion_dims:
            raise RuntimeError("CRNN recipe: the fused embeddings' sizes are known once the datasets are built "
                               "(or restored from a run's metadata)")
        return self._sized_config(self.fusion_dims)

    @property
    def grid(self) -> FrameGrid:
        return FrameGrid(self.frontend, self._sized_config(()).time_stride)

    @property
    def shuffle_train(self) -> bool:
        """A batch quota places roles by an item's position in its batch: batches in index order
        (each item is a random crop of its index anyway)."""
        return not self.config.batch_quota

    def build_model(self) -> nn.Module:
        model = SedModel(self.network_config(), self.frontend, self.config.mean_teacher, self.config.deploy)
        if self._stats is not None:
            for net in filter(None, (model.student, model.teacher)):
                net.set_normalisation(*self._stats)
        return model

    def restore(self, metadata: dict) -> None:
        self.labels = tuple(metadata["labels"])  # a DESED folder's classes: the heads' size
        fusion = metadata.get("extra", {}).get("fusion", {})
        self.fusion_dims = tuple(fusion.get("dims", ()))
        self._trained_fingerprints = tuple(fusion.get("fingerprints", ()))

    # --- fused embeddings (offline audio-visual transfer) -----------------------------
    def extractors(self) -> list:
        """The extractors ``fuse`` names (built once)."""
        if self._extractors is None:
            from models.crnn.fusion import create_extractors
            extractors = create_extractors(parse_fuse(self.config.fuse), threads=self.config.threads)
            found = tuple(e.fingerprint for e in extractors)
            if self._trained_fingerprints and found != self._trained_fingerprints:
                changed = [e.name for e, want in zip(extractors, self._trained_fingerprints) if e.fingerprint != want]
                raise ValueError(f"this run was trained on embeddings of other weights: {', '.join(changed)} changed "
                                 f"since (fingerprints {[w[:12] for w in self._trained_fingerprints]} when trained, "
                                 f"{[f[:12] for f in found]} now), so its scores would mean nothing")
            self._extractors = extractors
            self.fusion_dims = tuple(int(e.dim) for e in extractors)
        return self._extractors

    def world_clips(self, seeds, roles, span_seconds: float, what: str = "world scenes", **kwargs) -> WorldSedClips:
        """Clips of world scenes for this recipe (``what`` names them on progress bars); a fused
        run's items carry their embeddings (computed once per scene and cached, see
        :mod:`models.crnn.fusion`)."""
        c = self.config
        world = get_preset(c.world)
        side = None
        if c.fuse:
            from models.crnn.fusion import SceneEmbeddings
            from models.embeddings import EmbeddingCache
            from models.world.cache import cache_dir
            cache = EmbeddingCache(Path(c.embedding_cache).expanduser() if c.embedding_cache else cache_dir() / "embeddings")
            side = SceneEmbeddings(world, c.world, seeds, span_seconds, self.extractors(), cache,
                                   desc=f"embedding {what} ({c.fuse})")
        return WorldSedClips(world, seeds, roles, span_seconds, c.clip_seconds, self.grid, side=side,
                             render_rate=c.capture_rate or None, desc=f"rendering {what}", **kwargs)

    # --- data -------------------------------------------------------------------------
    def build_datasets(self, data: Path | None):
        c = self.config
        if data is not None:
            if c.fuse or c.batch_quota:
                what = f"fuse={c.fuse}" if c.fuse else "batch_quota"
                raise ValueError(f"{what}: built for world scenes only; train without it on a DESED folder")
            train, val = desed_datasets(Path(data), self.grid, c.clip_seconds, gain_db=c.gain_db, seed=c.seed)
            self.labels = train.classes
        else:
            roles = world_roles(c.strong_scenes, c.weak_scenes, c.unlabelled_scenes)
            if not c.use_unlabelled:
                roles = tuple(UNUSED if r == "unlabelled" else r for r in roles)
            seeds = [split_seed("train", i) for i in range(len(roles))]
            train = self.world_clips(seeds, roles, c.span_seconds, size=c.items_per_epoch, seed=c.seed,
                                     gain_db=c.gain_db, quota=c.batch_quota, onset_crops=c.onset_crops,
                                     what="the training scenes")
            val_seeds = [split_seed("val", i) for i in range(c.val_scenes)]
            val = self.world_clips(val_seeds, ["strong"] * len(val_seeds), min(c.span_seconds, 120.0), fixed=True,
                                   what="the validation scenes")
            self.labels = CLASS_NAMES
        self._stats = self.band_statistics(train)
        return train, val

    def band_statistics(self, train, items: int = 200) -> tuple[torch.Tensor, ...]:
        """Per-band mean and std of the log-mels of ``items`` training clips (epoch 0), and with
        fused embeddings, the mean and std of each of their dimensions over the same clips."""
        fe = FrontEnd(self.frontend)
        rows, fused = [], []
        with torch.no_grad():
            for i in np.linspace(0, len(train) - 1, min(items, len(train))).astype(int):
                item = train[(0, int(i))]
                rows.append(fe(item["audio"][None])[0])
                if "fused" in item:
                    fused.append(item["fused"])
        mel = torch.cat(rows)
        stats = (mel.mean(dim=0), mel.std(dim=0))
        if fused:
            side = torch.cat(fused)
            stats += (side.mean(dim=0), side.std(dim=0))
        return stats

    # --- training ---------------------------------------------------------------------
    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.config.lr, betas=(0.9, 0.999), weight_decay=self.config.weight_decay)

    def lr_lambda(self, steps_per_epoch: int, total_steps: int):
        self.total_steps = max(1, total_steps)
        return super().lr_lambda(steps_per_epoch, total_steps)

    def after_step(self, model: nn.Module, step: int) -> None:
        self.step = step
        if self.config.mean_teacher:
            model.update_teacher(step, self.config.ema_decay)

    def consistency_factor(self) -> float:
        c = self.config
        t = min(1.0, self.step / max(1.0, c.rampup_fraction * self.total_steps))
        return c.consistency_weight * math.exp(-5.0 * (1.0 - t) ** 2)

    def _augment(self, batch: dict) -> dict:
        c = self.config
        rng = np.random.default_rng([c.seed, self.step, 7])
        out = dict(batch)
        if c.mixup > 0 and rng.random() < c.mixup and len(batch["audio"]) > 1:
            lam = float(rng.beta(c.mixup_alpha, c.mixup_alpha))
            # partners of the same kind (strong, weak-only, unlabelled), as the baseline mixes each
            # labelled subset apart: mixed across kinds, a labelled clip would lose its labels
            kind = (batch["strong_mask"] * 2 + batch["weak_mask"]).numpy()
            perm = np.arange(len(kind))
            for k in np.unique(kind):
                members = np.flatnonzero(kind == k)
                perm[members] = members[rng.permutation(len(members))]
            perm = torch.from_numpy(perm)
            for key in ("audio", "strong", "weak", "fused"):
                if key in batch:
                    out[key] = lam * batch[key] + (1 - lam) * batch[key][perm]
        return out

    def _features(self, model: SedModel, audio: torch.Tensor) -> torch.Tensor:
        mel = model.log_mel(audio)
        if self.config.spec_augment and model.training:
            rng = np.random.default_rng([self.config.seed, self.step, 11])
            mel = torch.stack([spec_augment(m, rng, SED_SPECAUGMENT) for m in mel])
        return mel

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        net: SedModel = model.module if hasattr(model, "module") else model
        c = self.config
        b = self._augment(batch)
        mel = self._features(net, b["audio"])
        embeddings = net.student.split_fused(b.get("fused"), mel.shape[1])
        strong, weak = net.student(mel, *embeddings)
        t = min(strong.shape[1], b["strong"].shape[1])
        loss = _masked_bce(strong[:, :t], b["strong"][:, :t], b["strong_mask"]) + _masked_bce(weak, b["weak"], b["weak_mask"])
        if c.tail_weight > 0:
            tail = slice(max(0, t - c.tail_frames), t)
            loss = loss + c.tail_weight * _masked_bce(strong[:, tail], b["strong"][:, tail], b["strong_mask"])
        if net.teacher is not None:
            with torch.no_grad():
                t_strong, t_weak = net.teacher(mel, *embeddings)
            consistency = F.mse_loss(strong, t_strong) + F.mse_loss(weak, t_weak)
            loss = loss + self.consistency_factor() * consistency
        return loss

    # --- evaluation -------------------------------------------------------------------
    def figures(self, net: CRNN, frontend: FrontEnd, loader, with_psds: bool = False) -> dict[str, float]:
        """Event-F1, segment-F1 and tagging F1 (and PSDS) of one network on strongly labelled clips."""
        return clip_figures(net, frontend, self.grid, loader, threshold=self.config.threshold,
                            median_frames=self.config.median_frames, with_psds=with_psds)

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        net: SedModel = model
        student = self.figures(net.student, net.frontend, loader)
        out = dict(student)
        if net.teacher is not None:
            teacher = self.figures(net.teacher, net.frontend, loader)
            out.update({f"teacher_{k}": v for k, v in teacher.items() if k != "clips"})
            if self.config.deploy == "teacher":
                out.update({k: teacher[k] for k in teacher if k != "clips"})
                out.update({f"student_{k}": v for k, v in student.items() if k != "clips"})
        return out

    # --- metadata and export ----------------------------------------------------------
    def step_module(self, model: SedModel) -> StreamingStep:
        hop = int(round(self.config.hop_seconds * self.frontend.sample_rate))
        return StreamingStep(model.deployed(), self.frontend, hop).eval()

    def streaming_settings(self, step: StreamingStep) -> dict[str, Any]:
        """What the live adapter needs (``extra["streaming"]``)."""
        c, grid = self.config, self.grid
        sr = self.frontend.sample_rate
        newest_centre = float(grid.centres(step.new_frames)[-1])  # from the chunk's first sample
        return {"hop_seconds": c.hop_seconds, "frame_seconds": grid.frame_seconds, "new_frames": step.new_frames,
                "window_frames": int(round(c.live_window_seconds / grid.frame_seconds)),
                "lookahead_frames": c.lookahead_frames, "state_size": step.state_size,
                "frame_dim": step.model.config.frame_dim,
                "newest_frame_time": newest_centre - step.chunk_samples / sr}

    def metadata(self, model: nn.Module) -> ModelMetadata:
        if self.fusion_dims:
            return self.offline_metadata()
        step = self.step_module(model)
        s = self.streaming_settings(step)
        n_cls = len(self.labels)
        return ModelMetadata(
            family="crnn", task="labeler", labels=self.labels, sample_rate=self.frontend.sample_rate,
            window_seconds=step.chunk_samples / self.frontend.sample_rate, needs_frame=False,
            frontend=self.frontend.to_dict(),
            inputs=(TensorSpec("audio", ("batch", step.chunk_samples), "float32"),
                    TensorSpec("state", ("batch", step.state_size), "float32"),
                    TensorSpec("history", ("batch", "history", s["frame_dim"]), "float32")),
            outputs=(TensorSpec("probs", ("batch", "window", n_cls), "float32"),
                     TensorSpec("frames", ("batch", step.new_frames, s["frame_dim"]), "float32"),
                     TensorSpec("next_state", ("batch", step.state_size), "float32")),
            extra={"multi_label": True, "hop_seconds": self.config.hop_seconds, "streaming": s,
                   "threshold": self.config.threshold, "median_frames": self.config.median_frames,
                   "network": step.model.config.to_dict(), "size": self.config.size,
                   "world": self.config.world},
        )

    def offline_reason(self) -> str:
        return (f"a fused CRNN (fuse={self.config.fuse}) is an offline variant: its embeddings look past each frame, "
                f"so it has no streaming step to export or run live; score it with python -m apps.eval_sed, and "
                f"train without fuse= for avlive")

    def offline_metadata(self) -> ModelMetadata:
        """A fused run's metadata: the clip network with its embeddings (offline, not exported)."""
        c = self.config
        samples = int(round(c.clip_seconds * self.frontend.sample_rate))
        n_cls, mel_frames = len(self.labels), self.grid.mel_frames(samples)
        return ModelMetadata(
            family="crnn", task="labeler", labels=self.labels, sample_rate=self.frontend.sample_rate,
            window_seconds=c.clip_seconds, needs_frame=False, frontend=self.frontend.to_dict(),
            inputs=(TensorSpec("audio", ("batch", samples), "float32"),
                    TensorSpec("fused", ("batch", mel_frames, sum(self.fusion_dims)), "float32")),
            outputs=(TensorSpec("probs", ("batch", self.grid.frames(samples), n_cls), "float32"),
                     TensorSpec("clip_probs", ("batch", n_cls), "float32")),
            extra={"multi_label": True, "threshold": c.threshold, "median_frames": c.median_frames,
                   "offline": self.offline_reason(),
                   "fusion": {"extractors": list(parse_fuse(c.fuse)), "dims": list(self.fusion_dims),
                              "fingerprints": [e.fingerprint for e in self.extractors()]},
                   "size": c.size, "world": c.world},
        )

    def export_module(self, model: nn.Module):
        """The streaming step (see :mod:`models.crnn.streaming`) and example inputs: a hop of quiet
        noise, a small random state and a placeholder plus 20 frames of history."""
        if self.fusion_dims:
            raise ValueError(self.offline_reason())
        step = self.step_module(model)
        g = torch.Generator().manual_seed(0)
        d = step.model.config.frame_dim
        example = {"audio": torch.randn(2, step.chunk_samples, generator=g) * 0.05,
                   "state": torch.randn(2, step.state_size, generator=g) * 0.1,
                   "history": torch.randn(2, 21, d, generator=g) * 0.1}
        axes = {"audio": {0: "batch"}, "state": {0: "batch"}, "history": {0: "batch", 1: "history"}}
        return step, example, axes


@dataclass(frozen=True)
class CRNNPaperConfig(CRNNTrainConfig):
    """The paper size's defaults: 10 s clips, dropout 0.5, a hop of 4 encoder frames of 64 ms."""

    size: str = "paper"
    clip_seconds: float = 10.0
    dropout: float = 0.5
    hop_seconds: float = 0.256
    items_per_epoch: int = 1500


class CRNNPaperRecipe(CRNNRecipe):
    """The paper size: the DCASE 2021 baseline's network and front end on 10 s clips."""

    name = "crnn"
    description = "CRNN sound-event detector, the DCASE 2021 baseline's size (10 s clips; world or a DESED folder)"
    config_class = CRNNPaperConfig
