"""The paper's "supervised" comparison: a SoundNet trained from scratch on the labelled training
clips themselves (no video, no teacher), scored like the transfer SVM (windows, mean over a
clip's windows).

The network is cut after ``layer``; a linear layer on that layer's time average gives class
logits; cross-entropy on every window of the training clips, Adam (lr 1e-3), a random gain per
window. Small labelled sets overfit a network this size quickly: this is the comparison the
paper draws, not a recipe for a good classifier.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.soundnet.network import SoundNet, SoundNetConfig
from models.soundnet.transfer import Windows


class WindowClassifier(nn.Module):
    """Waveform windows ``(B, N)`` -> logits ``(B, K)``: a SoundNet layer averaged over time, then linear."""

    def __init__(self, config: SoundNetConfig, layer: str, classes: int):
        super().__init__()
        self.net = SoundNet(config)
        self.layer = layer
        dim = dict(zip(config.layer_names(), _channels(config)))[layer]
        self.head = nn.Linear(dim, classes)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.head(self.net.layer(audio, self.layer).mean(dim=2))


def _channels(config: SoundNetConfig) -> list[int]:
    out = []
    for spec in config.layers:
        out.append(spec.out_channels)
        if spec.pool:
            out.append(spec.out_channels)
    return out


def train_supervised(config: SoundNetConfig, layer: str, clips: Sequence[np.ndarray], labels: Sequence[int],
                     classes: int, windows: Windows, epochs: int = 10, batch_size: int = 32, lr: float = 1e-3,
                     gain_db: float = 6.0, seed: int = 0) -> WindowClassifier:
    """A :class:`WindowClassifier` trained on every window of ``clips`` (eval mode on return)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(np.concatenate([windows.cut(c) for c in clips]))
    y = torch.from_numpy(np.concatenate([np.full(len(windows.cut(c)), int(lab)) for c, lab in zip(clips, labels)]))
    model = WindowClassifier(config, layer, classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for i in range(0, len(x) - 1, batch_size):  # a last batch of one would break batch norm
            idx = order[i:i + batch_size]
            if len(idx) < 2:
                continue
            gain = torch.from_numpy(10.0 ** (rng.uniform(-gain_db, gain_db, size=(len(idx), 1)) / 20.0)).float()
            loss = F.cross_entropy(model(x[idx] * gain), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict_clips(model: WindowClassifier, clips: Sequence[np.ndarray], windows: Windows) -> np.ndarray:
    """Each clip's class: argmax of its windows' mean softmax."""
    return np.array([int(torch.softmax(model(torch.from_numpy(windows.cut(c))), dim=1).mean(dim=0).argmax())
                     for c in clips])


def cross_validate_supervised(config: SoundNetConfig, layer: str, clips: Sequence[np.ndarray], labels: Sequence[int],
                              folds: Sequence[int], classes: int, windows: Windows, epochs: int = 10,
                              seed: int = 0) -> dict[int, float]:
    """Per test fold: clip accuracy of a network trained on the other folds."""
    labels, folds = np.asarray(labels), np.asarray(folds)
    out = {}
    for f in np.unique(folds):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        model = train_supervised(config, layer, [clips[i] for i in tr], labels[tr], classes, windows, epochs,
                                 seed=seed)
        out[int(f)] = float((predict_clips(model, [clips[i] for i in te], windows) == labels[te]).mean())
    return out
