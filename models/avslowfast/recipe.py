"""The AVSlowFast recipes on the world: ``avslowfast-lite`` and its ablation rows.

All three train on the same cached pool of world clips (:class:`models.avslowfast.data.WorldClips`:
8 pictures at 7.5 Hz, 56 x 56, and the 1.04 s of audio ending at the last one), multi-label at the
clip's end like ``slowfast-lite`` (sigmoid per class, binary cross-entropy, targets = classes
sounding for half of the last 0.2 s):

==========================  ================================================================
recipe                      network
==========================  ================================================================
``avslowfast-lite``         Slow + Fast + Audio with A->FS laterals after res3 and res4;
                            ``drop_pathway=RATE`` (0.8; 0 = off), ``sync=true`` adds the AVS loss
``slowfast-visual-lite``    Slow + Fast alone (the audio pathway off)
``avslowfast-audio-lite``   the Faster Audio pathway alone
``avslowfast-folder``       the same network on ``--data ROOT/<class>/<video>`` (one-hot targets)
``avslowfast-sync-lite``    self-supervised: the synchronisation loss alone, no labels
                            (figure: ``avs_acc``, aligned audio nearer than another clip's)
==========================  ================================================================

``size=test`` swaps in the tiny network (for tests). ``init=RUN`` starts any of them from the
backbone of another AVSlowFast run (e.g. ``avslowfast-sync-lite``; heads skipped, see
:mod:`models.avslowfast.pretrained`). The export takes ``frames (B, 3, 8, 56, 56)``
(preprocessed as :func:`models.avslowfast.data.preprocess_clip` does) and ``audio (B, 16640)``
(the front end inside) and returns per-class probabilities; a one-modality row takes only its own.

Example::

    python -m models.train --recipe avslowfast-lite --out runs/avsf drop_pathway=0.8 sync=true threads=1 num_workers=0
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.audio.frontend import FrontEndConfig
from models.avslowfast.data import AUDIO_FRONTEND, ClipSpec, LogMel, WorldClips
from models.avslowfast.network import VARIANTS, AVSlowFast, AVSlowFastConfig
from models.avslowfast.pretrained import load_backbone
from models.avslowfast.sync import (
    DropPathway,
    SyncConfig,
    choose_negatives,
    silent_mask,
    sync_loss,
)
from models.core.metadata import ModelMetadata, TensorSpec
from models.core.recipe import Recipe
from models.core.train_config import TrainConfig
from models.evaluation.metrics import mean_average_precision
from models.world import CLASS_NAMES, get_preset, split_seed

__all__ = [
    "FRAME_RATE",
    "AVSlowFastClassifier",
    "AVSlowFastLiteConfig",
    "AVSlowFastLiteRecipe",
    "AudioOnlyLiteRecipe",
    "FolderRecipe",
    "SyncPretrainLiteRecipe",
    "VisualSlowFastLiteRecipe",
]

#: Pictures per second of the lite clip (8 pictures span 0.93 s, under the 1.04 s of audio).
FRAME_RATE = 7.5
_SIZES = {"lite": "avslowfast-lite", "test": "avslowfast-test"}


@dataclass(frozen=True)
class AVSlowFastLiteConfig(TrainConfig):
    epochs: int = 4
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 50
    world: str = "bench"
    pathways: str = "av"  # "av", "visual" or "audio" (the recipe's own default)
    size: str = "lite"  # "lite" or "test" (the tiny network)
    tail_seconds: float = 0.2  # targets: classes sounding in this last span of the clip
    train_scenes: int = 48  # train seeds the pool is drawn from
    items_per_epoch: int = 2400  # clips in the (cached) training pool
    gain_db: float = 6.0  # random gain per item and epoch
    val_items: int = 400
    val_scenes: int = 8
    drop_pathway: float = 0.8  # DropPathway rate (0 = off); av only
    sync: bool = False  # add the hierarchical AV synchronisation loss; av only
    sync_weight: float = 1.0
    supervised: bool = True  # false: the synchronisation loss alone (self-supervised; needs sync=true)
    easy_ratio: float = 0.75  # share of easy negatives once hard ones are mixed in
    mix_epoch: int = 1  # epochs of easy negatives only (the authors: 96 of 196)
    num_classes: int = 12  # classes of the head; the world's 12 (avslowfast-folder: as many as --data has)
    max_seconds: float = 30.0  # avslowfast-folder: seconds of each video decoded
    decode_workers: int = 2  # avslowfast-folder, -epic100: decoder processes (0: in the training process)
    # A run folder or checkpoint of an avslowfast run (e.g. avslowfast-sync-lite) whose backbone
    # starts this run (heads skipped; models.avslowfast.pretrained); "" = from scratch
    init: str = ""

    def validate(self) -> None:
        super().validate()
        get_preset(self.world)
        if self.size not in _SIZES:
            raise ValueError(f"size: expected one of {sorted(_SIZES)}, found {self.size!r}")
        if self.pathways not in ("av", "visual", "audio"):
            raise ValueError(f"pathways: expected 'av', 'visual' or 'audio', found {self.pathways!r}")
        if self.sync and self.pathways != "av":
            raise ValueError("sync: expected false unless pathways=av (synchronisation needs both modalities)")
        if not self.supervised and not self.sync:
            raise ValueError("supervised=false: expected sync=true (the synchronisation loss is then the only loss)")
        if self.decode_workers < 0 or self.num_classes < 1:
            raise ValueError(f"decode_workers >= 0 and num_classes >= 1 expected, found {self.decode_workers} and "
                             f"{self.num_classes}")
        if not 0.0 <= self.drop_pathway <= 1.0:
            raise ValueError(f"drop_pathway: expected a rate in [0, 1], found {self.drop_pathway}")

    def network(self) -> AVSlowFastConfig:
        return dataclasses.replace(VARIANTS[_SIZES[self.size]], num_classes=self.num_classes, pathways=self.pathways,
                                   sync_heads=self.sync)

    def clip(self) -> ClipSpec:
        net = self.network()
        return ClipSpec(net.fast_frames, FRAME_RATE, net.image_size, net.audio_frames)

    def sync_config(self) -> SyncConfig:
        return SyncConfig(weight=self.sync_weight, easy_ratio=self.easy_ratio, mix_epoch=self.mix_epoch)


def frontend_for(config: AVSlowFastConfig) -> FrontEndConfig:
    """The authors' front end with the network's mel bands (80 but for the tiny test network)."""
    return dataclasses.replace(AUDIO_FRONTEND, n_mels=config.audio_mels)


class AVSlowFastClassifier(nn.Module):
    """Frames ``(B, 3, T_f, S, S)`` and waveform ``(B, samples)`` -> logits ``(B, K)``: the log-mel
    front end (:class:`models.avslowfast.data.LogMel`) and the network."""

    def __init__(self, config: AVSlowFastConfig) -> None:
        super().__init__()
        self.logmel = LogMel(frontend_for(config))
        self.net = AVSlowFast(config)

    def forward(self, frames: torch.Tensor | None, audio: torch.Tensor | None, *,
                audio_laterals: bool = True) -> torch.Tensor:
        logmel = self.logmel(audio) if audio is not None else None
        return self.net(frames, logmel, audio_laterals=audio_laterals)


class Probabilities(nn.Module):
    """Export wrapper: frames ``(B, 3, T_f, S, S)`` and audio ``(B, samples)`` -> sigmoid probabilities ``(B, K)``."""

    def __init__(self, model: AVSlowFastClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(frames, audio))


class VisualProbabilities(Probabilities):
    """:class:`Probabilities` of a visual-only network: frames alone."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.sigmoid(self.model(frames, None))


class AudioProbabilities(Probabilities):
    """:class:`Probabilities` of an audio-only network: audio alone."""

    def forward(self, audio: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.sigmoid(self.model(None, audio))


_EXPORTS = {"av": Probabilities, "visual": VisualProbabilities, "audio": AudioProbabilities}


class AVSlowFastLiteRecipe(Recipe):
    name = "avslowfast-lite"
    description = "small AVSlowFast on world clips (8 pictures + 1.04 s audio), multi-label at the clip's end"
    config_class = AVSlowFastLiteConfig
    primary_metric = "mAP"

    def __init__(self, config: AVSlowFastLiteConfig) -> None:
        super().__init__(config)
        config.validate()
        av = config.pathways == "av"
        self.drop = DropPathway(config.drop_pathway if av else 0.0, seed=config.seed)
        self._negatives = torch.Generator().manual_seed(config.seed + 1)
        self.last_terms: dict[str, float] = {}

    def build_model(self) -> nn.Module:
        return AVSlowFastClassifier(self.config.network())

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Loads the ``init`` backbone into ``model`` first (only the trainer calls this, so a
        trained run rebuilds for export without the file; a resumed run then takes its own
        checkpoint's weights)."""
        if self.config.init:
            load_backbone(model, self.config.init, dataclasses.asdict(self.config.network()))
        return super().build_optimizer(model)

    def build_datasets(self, data: Path | None):
        c = self.config
        world = get_preset(c.world)
        train = WorldClips(world, tuple(split_seed("train", i) for i in range(c.train_scenes)), c.items_per_epoch,
                           c.clip(), c.tail_seconds, seed=c.seed, gain_db=c.gain_db, desc="rendering the training clips")
        val = WorldClips(world, tuple(split_seed("val", i) for i in range(c.val_scenes)), c.val_items, c.clip(),
                         c.tail_seconds, seed=12345, desc="rendering the validation clips")
        return train, val

    def labels(self) -> tuple[str, ...]:
        """Class names in output order (the world's)."""
        return CLASS_NAMES

    def _inputs(self, batch: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        p = self.config.pathways
        return (batch["frames"] if p != "audio" else None), (batch["audio"] if p != "visual" else None)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        c = self.config
        inner = model.module if hasattr(model, "module") else model
        frames, audio = self._inputs(batch)
        keep = self.drop.audio_laterals()
        if not c.sync:
            logits = model(frames, audio, audio_laterals=keep)
            loss = F.binary_cross_entropy_with_logits(logits, batch["target"])
            self.last_terms = {"bce": float(loss.detach()), "audio_laterals": float(keep)}
            return loss
        net: AVSlowFast = inner.net
        logmel = inner.logmel(audio)
        maps, taps = net.forward_maps(frames, logmel, audio_laterals=keep, taps=True)
        logits = net.projection(net.dropout(net.pool(maps)))
        bce = F.binary_cross_entropy_with_logits(logits, batch["target"])
        negatives, _ = choose_negatives(logmel, inner.logmel(batch["hard_audio"]), int(batch["epoch"][0]),
                                        c.sync_config(), self._negatives)
        avs = sync_loss(net, taps, logmel, negatives, c.sync_config())
        self.last_terms = {"bce": float(bce.detach()), "avs": float(avs.detach()), "audio_laterals": float(keep)}
        return (bce if c.supervised else 0.0) + c.sync_weight * avs

    @torch.no_grad()
    def predict(self, model: nn.Module, loader) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, targets) over a loader, ``(N, 12)`` each."""
        probs, targets = [], []
        for b in loader:
            probs.append(torch.sigmoid(model(*self._inputs(b))))
            targets.append(b["target"])
        return torch.cat(probs).numpy(), torch.cat(targets).numpy()

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        p, t = self.predict(model, loader)
        out = figures(p, t)
        if self.config.sync:
            out.update(self.sync_figures(model, loader))
        return out

    @torch.no_grad()
    def sync_figures(self, model: nn.Module, loader) -> dict[str, float]:
        """At res3 (the term that counts): ``avs_acc``, the share of clips whose own audio embeds
        nearer their pictures than another clip's (the batch rotated by one), and ``avs_gap``, the
        mean distance misaligned minus aligned. Silent clips are left out."""
        wins, gaps = [], []
        for b in loader:
            logmel = model.logmel(b["audio"])
            _, taps = model.net.forward_maps(b["frames"], logmel, taps=True)
            vs, a_pos = model.net.sync_embeddings(taps)
            _, a_neg = model.net.sync_embeddings(taps._replace(audio=model.net.audio_taps(torch.roll(logmel, 1, 0))))
            keep = ~silent_mask(logmel, self.config.sync_config().silent_var)
            pos, neg = (vs[0] - a_pos[0]).norm(dim=1)[keep], (vs[0] - a_neg[0]).norm(dim=1)[keep]
            wins.append(neg > pos)
            gaps.append(neg - pos)
        return {"avs_acc": float(torch.cat(wins).float().mean()), "avs_gap": float(torch.cat(gaps).mean())}

    def input_specs(self) -> tuple[TensorSpec, ...]:
        """The exported graph's inputs: ``frames (B, 3, N, S, S)`` unless audio-only, ``audio (B,
        samples)`` unless visual-only."""
        c = self.config
        clip = c.clip()
        inputs = []
        if c.pathways != "audio":
            inputs.append(TensorSpec("frames", ("batch", 3, clip.frames, clip.image_size, clip.image_size), "float32"))
        if c.pathways != "visual":
            inputs.append(TensorSpec("audio", ("batch", clip.audio_samples), "float32"))
        return tuple(inputs)

    def metadata(self, model: nn.Module) -> ModelMetadata:
        c = self.config
        clip = c.clip()
        inputs = self.input_specs()
        return ModelMetadata(
            family="avslowfast", task="labeler", labels=self.labels(), sample_rate=AUDIO_FRONTEND.sample_rate,
            window_seconds=clip.audio_seconds, needs_frame=c.pathways != "audio", frontend=frontend_for(c.network()).to_dict(),
            inputs=tuple(inputs), outputs=(TensorSpec("probs", ("batch", c.num_classes), "float32"),),
            extra={"multi_label": True, "world": c.world, "tail_seconds": c.tail_seconds, "pathways": c.pathways,
                   "frames": clip.frames if c.pathways != "audio" else 0, "frame_rate": clip.frame_rate,
                   "image_size": clip.image_size, "frame_at": "end", "network": dataclasses.asdict(c.network()),
                   "frame_preprocess": f"RGB resized to {clip.image_size}x{clip.image_size} (area), x / 127.5 - 1, "
                                       f"(3, T, S, S)"},
        )

    def example_inputs(self, batch: int = 2) -> dict[str, torch.Tensor]:
        clip = self.config.clip()
        g = torch.Generator().manual_seed(0)
        out = {}
        if self.config.pathways != "audio":
            out["frames"] = torch.rand(batch, 3, clip.frames, clip.image_size, clip.image_size, generator=g) * 2 - 1
        if self.config.pathways != "visual":
            out["audio"] = torch.randn(batch, clip.audio_samples, generator=g) * 0.05
        return out

    def real_inputs(self) -> dict[str, torch.Tensor]:
        _, val = self.build_datasets(None)
        items = [val[i] for i in range(2)]
        return {k: torch.stack([it[k] for it in items]) for k in self.example_inputs()}

    def export_module(self, model: nn.Module):
        example = self.example_inputs()
        return _EXPORTS[self.config.pathways](model).eval(), example, {name: {0: "batch"} for name in example}


class VisualSlowFastLiteRecipe(AVSlowFastLiteRecipe):
    name = "slowfast-visual-lite"
    description = "visual SlowFast (the AVSlowFast lite network, audio pathway off) on world clips: the ablation"

    def __init__(self, config: AVSlowFastLiteConfig) -> None:
        super().__init__(dataclasses.replace(config, pathways="visual", drop_pathway=0.0))


class AudioOnlyLiteRecipe(AVSlowFastLiteRecipe):
    name = "avslowfast-audio-lite"
    description = "the Faster Audio pathway alone (AVSlowFast lite, visual pathways off) on world clips: the ablation"

    def __init__(self, config: AVSlowFastLiteConfig) -> None:
        super().__init__(dataclasses.replace(config, pathways="audio", drop_pathway=0.0))


class FolderRecipe(AVSlowFastLiteRecipe):
    """``avslowfast-folder``: the lite recipe on a folder-per-class video dataset
    (:mod:`models.avslowfast.folder`); ``num_classes`` must equal its class folders. With
    ``sync=true supervised=false`` it pretrains on any folder of videos, labels unused."""

    name = "avslowfast-folder"
    description = "AVSlowFast lite on a folder-per-class video dataset (ROOT/<class>/<video>), one-hot targets"
    data_help = "ROOT/<class>/<video> (or ROOT/train/<class>/..., ROOT/val/<class>/...)"
    reads = ("folder", "videos")  # class folders of videos; any video folder for sync pretraining

    def __init__(self, config: AVSlowFastLiteConfig) -> None:
        super().__init__(config)
        self._labels: tuple[str, ...] | None = None

    def labels(self) -> tuple[str, ...]:
        return self._labels or tuple(f"class_{k}" for k in range(self.config.num_classes))

    def restore(self, metadata: dict) -> None:
        if self.config.supervised:
            self._labels = tuple(metadata["labels"])  # the class folders the run was trained on

    def build_datasets(self, data: Path | None):
        from models.avslowfast.folder import FolderClips, folder_splits

        if data is None:
            raise ValueError(f"recipe {self.name!r} needs --data: a folder {self.data_help}")
        c = self.config
        classes, train, val = folder_splits(Path(data), labelled=c.supervised)
        if c.supervised and len(classes) != c.num_classes:
            raise ValueError(f"num_classes: expected {len(classes)} (the class folders of {data}: "
                             f"{', '.join(classes)}), found {c.num_classes}; pass num_classes={len(classes)}")
        self._labels = classes if c.supervised else None  # self-supervised: the head is not trained
        return (FolderClips(train, c.num_classes, c.clip(), seed=c.seed, max_seconds=c.max_seconds,
                            workers=c.decode_workers),
                FolderClips(val, c.num_classes, c.clip(), seed=12345, fixed=True, max_seconds=c.max_seconds,
                            workers=c.decode_workers))

    def real_inputs(self) -> dict[str, torch.Tensor]:
        return {}  # the data folder is not known at export time


class SyncPretrainLiteRecipe(AVSlowFastLiteRecipe):
    name = "avslowfast-sync-lite"
    description = "self-supervised AVSlowFast lite on world clips: the synchronisation loss alone (no labels)"
    primary_metric = "avs_acc"

    def __init__(self, config: AVSlowFastLiteConfig) -> None:
        super().__init__(dataclasses.replace(config, pathways="av", sync=True, supervised=False))


def figures(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """mAP over classes, top-1 (on clips with a target: the best class is one of them) and micro-F1 at 0.5."""
    m, _ = mean_average_precision(probs, targets)
    labelled = targets.sum(axis=1) > 0
    top1 = float(np.mean(targets[labelled, probs[labelled].argmax(axis=1)] > 0)) if labelled.any() else 0.0
    predicted = probs >= 0.5
    tp = float((predicted & (targets > 0)).sum())
    f1 = 2 * tp / max(1.0, float(predicted.sum() + (targets > 0).sum()))
    return {"mAP": float(m), "top1": top1, "micro_f1@0.5": f1, "n": float(len(probs))}
