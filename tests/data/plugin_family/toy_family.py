"""A model family written outside avlive, loaded the way a plug-in is (tests/test_plugin_family.py).

It is deliberately small and self-contained: it imports only ``models.core`` (what a family
implements) and ``models.world`` (data to train on), never ``realtime`` or ``engines``. A
labeler of the world's 12 classes from 1 s of 16 kHz audio: mean log energy in 16 bands of the
magnitude spectrum, one linear layer, a softmax.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from models.core.family import Family, NetworkEntry
from models.core.metadata import ModelMetadata, TensorSpec
from models.core.recipe import Recipe
from models.core.train_config import TrainConfig
from models.world import CLASS_NAMES, Scene, get_preset

SAMPLE_RATE = 16_000
SAMPLES = SAMPLE_RATE  # 1 s


class BandEnergyNet(nn.Module):
    """``audio (B, 16000)`` -> logits ``(B, 12)``."""

    def __init__(self, bands: int = 16, classes: int = len(CLASS_NAMES)):
        super().__init__()
        self.bands = bands
        self.linear = nn.Linear(bands, classes)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.reshape(audio.shape[0], -1, 400)                                  # (B, 40, 400)
        spectrum = torch.abs(torch.fft.rfft(frames, dim=-1))[..., :192]                 # (B, 40, 192): 0-7.7 kHz
        bands = spectrum.reshape(spectrum.shape[0], spectrum.shape[1], self.bands, -1).mean(-1)
        return self.linear(torch.log(bands.mean(1) + 1e-6))


class Softmax(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(audio), dim=-1)


class SceneSeconds(Dataset):
    """One-second windows of a world scene, each labelled with the class sounding longest in it."""

    def __init__(self, seed: int, count: int):
        scene = Scene(get_preset("tiny"), seed)
        self.audio = scene.render_audio(0, count * SAMPLES, SAMPLE_RATE).reshape(count, SAMPLES).astype(np.float32)
        self.targets = np.arange(count) % len(CLASS_NAMES)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, address) -> dict:
        _, i = address if isinstance(address, tuple) else (0, address)  # the trainer addresses (epoch, index)
        return {"audio": torch.from_numpy(self.audio[i]), "target": int(self.targets[i])}


@dataclass(frozen=True)
class ToyConfig(TrainConfig):
    epochs: int = 1
    batch_size: int = 4
    num_workers: int = 0


class ToyRecipe(Recipe):
    name = "toy"
    description = "plug-in test family: band energies and a linear layer"
    config_class = ToyConfig
    primary_metric = "top1"

    def build_model(self) -> nn.Module:
        return BandEnergyNet()

    def build_datasets(self, data):
        return SceneSeconds(1, 8), SceneSeconds(2, 4)

    def loss(self, model, batch):
        return F.cross_entropy(model(batch["audio"]), batch["target"])

    def evaluate(self, model, loader) -> dict[str, float]:
        hits = [(model(b["audio"]).argmax(1) == b["target"]).float() for b in loader]
        return {"top1": float(torch.cat(hits).mean())}

    def metadata(self, model) -> ModelMetadata:
        return ModelMetadata(
            family="toy", task="labeler", labels=CLASS_NAMES, sample_rate=SAMPLE_RATE, window_seconds=1.0,
            needs_frame=False, inputs=(TensorSpec("audio", ("batch", SAMPLES), "float32"),),
            outputs=(TensorSpec("probs", ("batch", len(CLASS_NAMES)), "float32"),), extra={"multi_label": False})

    def export_module(self, model):
        return Softmax(model).eval(), self.waveform_example(SAMPLES), {"audio": {0: "batch"}}


FAMILY = Family(
    name="toy",
    description="plug-in test family",
    networks=(NetworkEntry("toy-band-energy", BandEnergyNet, "band energies and a linear layer"),),
    recipes=(ToyRecipe,),
)
