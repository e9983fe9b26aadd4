"""slowfast-lite: the live demo labeler, a small Slow-Fast trained multi-label on the world.

The reference recipes (models/slowfast/recipes.py) are single-label on whole clips. A live
labeler sees overlapping events that start and stop inside its window, so this one differs:

* **multi-label**: one sigmoid per class, binary cross-entropy;
* **targets at the end of the window**: a class is positive when it sounds for at least half of
  the window's last ``tail_seconds`` (models/datasets/world.py ``EndActiveWindows``), so labels
  start and stop with the sounds rather than lingering for a window length;
* **small and short**: width 32 with two blocks per stage, 64 mel bands, 1.27 s windows
  (128 frames at a 10 ms hop, a multiple of 16 so the laterals line up) — 0.10 G
  multiply-adds and 3.9 M parameters per window (``count_macs``; the issue's budget is 0.3 G).

Architecture, laterals, Slow frame selection and initialisation are the reference's
(models/slowfast/network.py); only the sizes change.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.datasets.user_clips import UserClips, UserDataConfig
from models.datasets.world import EndActiveWindows, PooledWindows
from models.audio.frontend import FrontEnd, FrontEndConfig
from models.core.metadata import ModelMetadata, TensorSpec
from models.evaluation.metrics import mean_average_precision
from models.slowfast.network import SlowFast, SlowFastConfig, pad_or_crop_frames
from models.core.train_config import TrainConfig
from models.core.recipe import Recipe
from models.world import CLASS_NAMES, get_preset, split_seed

LITE_FRONTEND = FrontEndConfig(
    sample_rate=16000, n_fft=512, win_length=400, hop_length=160, center=True, power=1.0,
    n_mels=64, mel_scale="htk", mel_norm=None, log_offset=1e-6,
)
LITE_WINDOW_SECONDS = 1.27  # 20,320 samples → 128 frames


class WaveformSlowFast(nn.Module):
    """Waveform (B, samples) → logits (B, K): the front end, a fixed input scaling, Slow-Fast."""

    def __init__(self, config: SlowFastConfig, frontend: FrontEndConfig = LITE_FRONTEND):
        super().__init__()
        self.frontend = FrontEnd(frontend)
        self.net = SlowFast(config)
        # log-magnitude mel values lie roughly in [-14, 4]; centre and scale them near unit range.
        self.register_buffer("input_shift", torch.tensor(-4.0), persistent=False)
        self.register_buffer("input_scale", torch.tensor(0.25), persistent=False)

    def network_input(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, samples)`` → the Slow-Fast input ``(B, 1, T, F)``: scaled log-mel, T a multiple of 16."""
        x = (self.frontend(wave) - self.input_shift) * self.input_scale  # (B, T, F)
        return pad_or_crop_frames(x, self.net.frame_multiple).unsqueeze(1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.net.forward_logits(self.network_input(wave))  # (B, K)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, samples)`` → the pooled features before the classifier ``(B, feature_dim)``
        (1152 at width 32; :meth:`SlowFast.forward_features`)."""
        return self.net.forward_features(self.network_input(wave))


class Sigmoid(nn.Module):
    """Export wrapper: waveform → per-class probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(audio))


@dataclass(frozen=True)
class SlowFastLiteConfig(UserDataConfig, TrainConfig):
    epochs: int = 5
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 200
    world: str = "bench"
    window_seconds: float = LITE_WINDOW_SECONDS
    tail_seconds: float = 0.2  # targets: classes sounding in this last span of the window
    train_scenes: int = 48  # train seeds drawn from (600 s each)
    items_per_epoch: int = 6400  # windows per epoch
    pool: bool = True  # draw the training windows once into a cached pool of items_per_epoch (else fresh every epoch)
    gain_db: float = 6.0  # random gain per item and epoch (pooled windows)
    val_items: int = 800  # fixed windows from the validation seeds
    val_scenes: int = 8
    width: int = 32
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    dropout: float = 0.3

    def validate(self) -> None:
        super().validate()
        self.validate_user_data()
        get_preset(self.world)
        if len(self.blocks) != 4:
            raise ValueError(f"blocks: expected 4 values (res2..res5), found {self.blocks}")


def lite_network_config(c: SlowFastLiteConfig, num_classes: int = len(CLASS_NAMES)) -> SlowFastConfig:
    frames = LITE_FRONTEND.num_frames(int(round(c.window_seconds * LITE_FRONTEND.sample_rate)))
    return SlowFastConfig(num_classes=(num_classes,), width=c.width, blocks=tuple(c.blocks), num_frequencies=LITE_FRONTEND.n_mels,
                          num_frames=frames - frames % 16, dropout=c.dropout)


class SlowFastLiteRecipe(Recipe):
    name = "slowfast-lite"
    description = ("small Slow-Fast, multi-label on the world's live windows (1.27 s, 16 kHz): the demo labeler; "
                   "or --data clips")
    config_class = SlowFastLiteConfig
    primary_metric = "mAP"
    data_help = ("optional: clips of any clip layout (ESC-50, folder per class, VGG-Sound, AudioSet, DESED weak labels); "
                 "without --data it trains on the world")
    reads = ("esc50", "folder", "vggsound", "audioset", "desed")

    def __init__(self, config):
        super().__init__(config)
        self.labels: tuple[str, ...] = CLASS_NAMES
        self.user = UserClips(self.name, config, LITE_FRONTEND.sample_rate, config.window_seconds, "multi_hot", self.reads)

    def restore(self, metadata: dict) -> None:
        self.labels = tuple(metadata["labels"])

    def build_model(self) -> nn.Module:
        return WaveformSlowFast(lite_network_config(self.config, len(self.labels)))

    def param_groups(self, model: nn.Module) -> list[dict]:
        return self.user.param_groups(model, self.config.weight_decay, head="net.head.")

    def build_datasets(self, data: Path | None):
        c = self.config
        if data is not None:
            train, val = self.user.datasets(data, c.gain_db)
            self.labels = self.user.set.classes
            return train, val
        world = get_preset(c.world)
        sr = LITE_FRONTEND.sample_rate
        train = EndActiveWindows(world, tuple(split_seed("train", i) for i in range(c.train_scenes)), c.items_per_epoch,
                                 c.window_seconds, sr, c.tail_seconds, seed=c.seed)
        if c.pool:
            train = PooledWindows(train, c.gain_db, c.seed, desc="rendering the training pool")
        val = EndActiveWindows(world, tuple(split_seed("val", i) for i in range(c.val_scenes)), c.val_items,
                               c.window_seconds, sr, c.tail_seconds, seed=12345, fixed=True)
        return train, val

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(model(batch["audio"]), batch["target"])

    @staticmethod
    def window_probabilities(model: nn.Module, wave: torch.Tensor) -> torch.Tensor:
        """Waveform windows ``(B, samples)`` → class probabilities ``(B, K)``."""
        return torch.sigmoid(model(wave))

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        if self.user.set is not None:
            return self.user.evaluate(lambda wave: self.window_probabilities(model, wave), loader)
        probs, targets = [], []
        for b in loader:
            probs.append(torch.sigmoid(model(b["audio"])))
            targets.append(b["target"])
        p, t = torch.cat(probs).numpy(), torch.cat(targets).numpy()
        m, _ = mean_average_precision(p, t)
        predicted = p >= 0.5
        tp = float((predicted & (t > 0)).sum())
        f1 = 2 * tp / max(1.0, float(predicted.sum() + (t > 0).sum()))
        return {"mAP": float(m), "micro_f1@0.5": f1, "n": float(len(p))}

    def metadata(self, model: nn.Module) -> ModelMetadata:
        c = self.config
        n = int(round(c.window_seconds * LITE_FRONTEND.sample_rate))
        data = {"world": c.world, "tail_seconds": c.tail_seconds} if self.user.set is None else self.user.metadata_extra()
        return ModelMetadata(
            family="slowfast", task="labeler", labels=self.labels, sample_rate=LITE_FRONTEND.sample_rate,
            window_seconds=c.window_seconds, needs_frame=False, frontend=LITE_FRONTEND.to_dict(),
            inputs=(TensorSpec("audio", ("batch", n), "float32"),), outputs=(TensorSpec("probs", ("batch", len(self.labels)), "float32"),),
            extra={"multi_label": True, **data},
        )

    def real_inputs(self) -> dict[str, torch.Tensor]:
        _, val = self.build_datasets(None)
        return {"audio": torch.stack([val[i]["audio"] for i in range(4)])}

    def export_module(self, model: nn.Module):
        n = int(round(self.config.window_seconds * LITE_FRONTEND.sample_rate))
        return Sigmoid(model).eval(), self.waveform_example(n), {"audio": {0: "batch"}}
