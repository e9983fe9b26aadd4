"""The baseline labeler: a small log-mel CNN trained on the world's single-event windows.

Waveform in (16 kHz, 2 s), the bench log-mel computed inside the network (so the exported ONNX
graph takes audio), four conv blocks, mean over frequency, mean+max over time, a linear head.
It is the yardstick the world's later models must beat, and the first recipe of the trainer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.datasets.user_clips import UserClips, UserDataConfig
from models.datasets.world import SingleEventWindows
from models.audio.frontend import FrontEnd
from models.core.metadata import ModelMetadata, TensorSpec
from models.core.train_config import TrainConfig
from models.core.recipe import Recipe
from models.world import CLASS_NAMES, get_preset
from models.world.cache import cached_window_audio
from models.world.difficulty import BENCH_LOGMEL
from models.world.evalsets import single_event_windows
from models.world.scoring import single_event_figures


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(4, channels), channels)
    raise ValueError(f"norm: expected 'batch' or 'group', found {kind!r}")


class ConvBlock(nn.Sequential):
    """conv3×3 → norm → ReLU, twice, then 2×2 average pooling."""

    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
        )


class LogMelCNN(nn.Module):
    """Waveform (B, samples) → logits (B, num_classes)."""

    def __init__(self, num_classes: int, width: int = 16, norm: str = "batch", dropout: float = 0.2):
        super().__init__()
        self.frontend = FrontEnd(BENCH_LOGMEL)
        # Fixed input scaling: bench log-mel values lie roughly in [-14, 2].
        self.register_buffer("input_shift", torch.tensor(-6.0), persistent=False)
        self.register_buffer("input_scale", torch.tensor(1 / 4.0), persistent=False)
        widths = (width, 2 * width, 4 * width, 8 * width)
        blocks, cin = [], 1
        for w in widths:
            blocks.append(ConvBlock(cin, w, norm))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * cin, num_classes)

    def forward_features(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) → pooled features (B, 2 × 8·width)."""
        x = (self.frontend(wave) - self.input_shift) * self.input_scale  # (B, T, F)
        x = self.blocks(x.unsqueeze(1))  # (B, C, T/16, F/16)
        x = x.mean(dim=3)  # (B, C, T')
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.forward_features(wave)))


def baseline_cnn(num_classes: int = len(CLASS_NAMES), width: int = 16, norm: str = "batch", dropout: float = 0.2) -> LogMelCNN:
    return LogMelCNN(num_classes, width, norm, dropout)


class Probabilities(nn.Module):
    """Export wrapper: waveform → softmax probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(audio), dim=1)


@dataclass(frozen=True)
class BaselineConfig(UserDataConfig, TrainConfig):
    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    world: str = "bench"  # world preset
    window_seconds: float = 2.0
    train_windows: int = 8000  # single-event windows from the train seeds
    val_windows: int = 1000  # from the validation seeds
    width: int = 16
    norm: str = "batch"  # "batch" or "group" (group: no batch statistics, e.g. for DDP equivalence)
    dropout: float = 0.2
    gain_db: float = 6.0  # random gain augmentation, ±dB

    def validate(self) -> None:
        super().validate()
        self.validate_user_data()
        get_preset(self.world)
        if self.norm not in ("batch", "group"):
            raise ValueError(f"norm: expected 'batch' or 'group', found {self.norm!r}")


class BaselineRecipe(Recipe):
    name = "baseline"
    description = ("small log-mel CNN, single-label: the world's single-event windows (16 kHz, 2 s, 12 classes), "
                   "or --data clips")
    config_class = BaselineConfig
    primary_metric = "top1"
    data_help = "optional: single-label clips (ESC-50, folder per class, VGG-Sound); without --data it trains on the world"
    reads = ("esc50", "folder", "vggsound")

    def __init__(self, config):
        super().__init__(config)
        self.labels: tuple[str, ...] = CLASS_NAMES
        self.user = UserClips(self.name, config, BENCH_LOGMEL.sample_rate, config.window_seconds, "index", self.reads)

    def restore(self, metadata: dict) -> None:
        self.labels = tuple(metadata["labels"])

    def build_model(self) -> nn.Module:
        c = self.config
        return baseline_cnn(len(self.labels), c.width, c.norm, c.dropout)

    def param_groups(self, model: nn.Module) -> list[dict]:
        return self.user.param_groups(model, self.config.weight_decay, head="head.")

    def windows(self, split: str, count: int):
        c = self.config
        return single_event_windows(split, c.window_seconds, count, config=get_preset(c.world))[:count]

    def build_datasets(self, data: Path | None):
        c = self.config
        if data is not None:
            train, val = self.user.datasets(data, c.gain_db)
            self.labels = self.user.set.classes
            return train, val
        sr = BENCH_LOGMEL.sample_rate
        world = get_preset(c.world)
        train_w, val_w = self.windows("train", c.train_windows), self.windows("val", c.val_windows)
        train = SingleEventWindows(train_w, cached_window_audio(train_w, sr, world, desc="rendering train windows"), c.gain_db, c.seed)
        val = SingleEventWindows(val_w, cached_window_audio(val_w, sr, world, desc="rendering validation windows"))
        return train, val

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return F.cross_entropy(model(batch["audio"]), batch["target"])

    @staticmethod
    def window_probabilities(model: nn.Module, wave: torch.Tensor) -> torch.Tensor:
        """Waveform windows ``(B, samples)`` → class probabilities ``(B, K)``."""
        return torch.softmax(model(wave), 1)

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        if self.user.set is not None:
            return self.user.evaluate(lambda wave: self.window_probabilities(model, wave), loader)
        scores = torch.cat([torch.softmax(model(b["audio"]), 1) for b in loader]).numpy()
        return single_event_figures(scores, loader.dataset.windows)

    def metadata(self, model: nn.Module) -> ModelMetadata:
        c = self.config
        n = int(round(c.window_seconds * BENCH_LOGMEL.sample_rate))
        data = {"world": c.world} if self.user.set is None else self.user.metadata_extra()
        return ModelMetadata(
            family="baseline", task="labeler", labels=self.labels, sample_rate=BENCH_LOGMEL.sample_rate,
            window_seconds=c.window_seconds, needs_frame=False, frontend=BENCH_LOGMEL.to_dict(),
            inputs=(TensorSpec("audio", ("batch", n), "float32"),), outputs=(TensorSpec("probs", ("batch", len(self.labels)), "float32"),),
            extra={"multi_label": False, **data},
        )

    def real_inputs(self) -> dict[str, torch.Tensor]:
        """A few validation windows of world audio, for checking exports on real input."""
        c = self.config
        windows = self.windows("val", 4)
        audio = cached_window_audio(windows, BENCH_LOGMEL.sample_rate, get_preset(c.world))
        return {"audio": torch.from_numpy(np.array(audio, dtype=np.float32))}

    def export_module(self, model: nn.Module):
        n = int(round(self.config.window_seconds * BENCH_LOGMEL.sample_rate))
        return Probabilities(model).eval(), self.waveform_example(n), {"audio": {0: "batch"}}
