"""What a training recipe provides, and the registry the CLI lists.

A recipe is a small class: its config type, how to build the network and the datasets, the
loss, the evaluation, and the metadata that travels with the trained weights. The trainer
(models/train/loop.py) owns everything else: devices, distribution, sampling, checkpoints,
logging and resumption.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from models.core.metadata import ModelMetadata
from models.core.train_config import TrainConfig


class Recipe:
    """Base class; subclasses set the class attributes and override the methods."""

    name: ClassVar[str]
    description: ClassVar[str]
    config_class: ClassVar[type] = TrainConfig
    primary_metric: ClassVar[str] = "top1"  # the evaluation figure that picks the best checkpoint
    data_help: ClassVar[str] = "not used: trains on the built-in synthetic world"
    # The --data layouts the recipe reads (names of models.datasets layouts and formats, listed
    # in README's recipe-by-format table); empty: it trains on the world only and refuses --data.
    reads: ClassVar[tuple[str, ...]] = ()
    # Config fields that shape only the exported live graph and its metadata, not the trained
    # weights (a streaming model's hop, its look-ahead): ``python -m models.export RUN --set
    # NAME=VALUE`` may change them at export; empty: nothing may change.
    live_settings: ClassVar[tuple[str, ...]] = ()
    # False: the trainer cuts each epoch's indices into batches in order (for datasets whose
    # items are already random functions of (epoch, index) and that group consecutive indices).
    shuffle_train: bool = True

    def __init__(self, config: Any):
        self.config = config

    # --- required -------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def build_datasets(self, data: Path | None) -> tuple[Dataset, Dataset]:
        """(train, validation) datasets; items addressed by (epoch, index)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean loss over the batch (the trainer backpropagates it)."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        """Figures on the validation loader; must include ``primary_metric``."""
        raise NotImplementedError

    def metadata(self, model: nn.Module) -> ModelMetadata:
        """What travels with the weights (labels, sample rate, window, front end, I/O)."""
        raise NotImplementedError

    # --- optional -------------------------------------------------------------------------
    def restore(self, metadata: dict[str, Any]) -> None:
        """Take from a checkpoint's metadata what :meth:`build_datasets` would have set, before
        :meth:`build_model` rebuilds a trained network without its data (recipes whose labels
        come from the dataset read them back here). The default does nothing."""

    def export_module(self, model: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor], dict]:
        """(module to export, example inputs by name, dynamic axes) for ONNX export."""
        raise NotImplementedError(f"recipe {self.name!r} does not support export")

    def param_groups(self, model: nn.Module) -> list[dict]:
        """Weight decay on weights (ndim > 1) only, not on norms, biases or scalars."""
        decay, no_decay = [], []
        for p in model.parameters():
            if p.requires_grad:
                (decay if p.ndim > 1 else no_decay).append(p)
        return [{"params": decay, "weight_decay": self.config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    @staticmethod
    def waveform_example(samples: int, batch: int = 2) -> dict[str, torch.Tensor]:
        """A fixed quiet noise batch ``{"audio": (batch, samples)}`` for exporting waveform-in models."""
        rng = torch.Generator().manual_seed(0)
        return {"audio": torch.randn(batch, samples, generator=rng) * 0.05}

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """AdamW over ``param_groups``."""
        return torch.optim.AdamW(self.param_groups(model), lr=self.config.lr)

    def lr_lambda(self, steps_per_epoch: int, total_steps: int):
        """The learning-rate factor per step: linear warm-up, then cosine decay to lr_min_factor."""
        c = self.config

        def factor(step: int) -> float:
            if c.warmup_steps and step < c.warmup_steps:
                return (step + 1) / c.warmup_steps
            progress = min(1.0, (step - c.warmup_steps) / max(1, total_steps - c.warmup_steps))
            return c.lr_min_factor + (1.0 - c.lr_min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        return factor

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after every optimiser step with the unwrapped model and the steps done so far
        (e.g. to update a mean teacher's weights)."""

    def set_train_mode(self, model: nn.Module) -> None:
        """Put the model in training mode (recipes that freeze BatchNorm statistics override this)."""
        model.train()

    def collate(self, items: list[dict]) -> dict:
        return torch.utils.data.default_collate(items)
