"""PANNs CNNs (Kong et al., "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio
Pattern Recognition", 2020) for inference with the authors' released AudioSet weights.

Written for avlive from the published description and the facts of the authors' code
(qiuqiangkong/audioset_tagging_cnn ``pytorch/models.py``); the state-dict keys are theirs, so
their checkpoints load strictly. One trunk serves every variant:

* front end (:class:`~models.panns.frontend.LogMelFrontEnd`) -> ``bn0`` over mel bins;
* ``conv_block1..n``: two 3x3 conv + BN + ReLU, then average pooling (:data:`CNN14` pools
  2x2 in blocks 1-5 and not in block 6: time and mel / 32; :data:`CNN10` 2x2 in all four: / 16);
* mean over the remaining mel bins -> ``(B, C, T')``, one column per segment of
  ``ratio = prod(pools)`` STFT frames.

Heads (``PannsConfig.head``):

* ``"clip"`` (``Cnn14``, ``Cnn14_16k``, ``Cnn10``): max + mean over time, ``fc1`` + ReLU = the
  embedding, ``fc_audioset`` + sigmoid = clip probabilities.
* ``"decision-max"`` (``Cnn14_DecisionLevelMax``): the segments smoothed over time (max-pool 3
  + average-pool 3, stride 1), ``fc1`` + ReLU and ``fc_audioset`` + sigmoid per segment; the
  clip's probability is the maximum over segments.
* ``"decision-att"`` (``Cnn14_DecisionLevelAtt``): the same smoothing and ``fc1``; per
  segment ``sigmoid(cla)`` and attention ``softmax_t(clamp(att, -10, 10))`` (1x1 convolutions);
  the clip's probability is the attention-weighted sum. ``att_block.bn_att`` is in the
  checkpoints but the authors' forward never uses it; it is kept only so they load strictly.

Dropout and SpecAugment act only in training and are left out: these modules are for
inference (``eval()``). Batch norms use their running statistics, eps 1e-5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.panns.frontend import LogMelFrontEnd

__all__ = ["HEADS", "PannsConfig", "PannsNet", "ConvBlock", "CNN14", "CNN14_16K", "CNN10", "VARIANTS",
           "expand_to_frames", "segment_centres"]

HEADS = ("clip", "decision-max", "decision-att")


@dataclass(frozen=True)
class PannsConfig:
    """One PANNs network. The defaults are Cnn14 at 32 kHz (the authors' ``utils/config.py`` and
    ``pytorch/inference.py`` defaults).

    Raises:
        ValueError: a field out of range (the message names it).
    """

    arch: str = "Cnn14"  # the authors' class name (for metadata and messages)
    head: str = "clip"  # one of HEADS
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)  # conv block widths; fc1 is channels[-1] wide
    pools: tuple[int, ...] = (2, 2, 2, 2, 2, 1)  # average-pool size (time and mel) after each block
    classes: int = 527  # AudioSet classes
    sample_rate: int = 32000  # Hz
    n_fft: int = 1024  # window = DFT size (periodic Hann)
    hop_length: int = 320  # 10 ms at 32 kHz
    n_mels: int = 64
    fmin: float = 50.0  # Hz, lowest mel edge (the checkpoint's melW overrides the filterbank)
    fmax: float = 14000.0  # Hz, highest mel edge

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"PannsConfig.head: expected one of {HEADS}, found {self.head!r}")
        if not self.channels or len(self.pools) != len(self.channels):
            raise ValueError(f"PannsConfig.pools: expected one pool size per block ({len(self.channels)}), "
                             f"found {self.pools}")
        if self.head != "clip" and self.arch.startswith("Cnn10"):
            raise ValueError("PannsConfig.head: the authors have no decision-level Cnn10; expected 'clip'")
        for name in ("classes", "sample_rate", "n_fft", "hop_length", "n_mels"):
            if getattr(self, name) < 1:
                raise ValueError(f"PannsConfig.{name}: expected a positive int, found {getattr(self, name)!r}")

    @property
    def ratio(self) -> int:
        """STFT frames per output segment (the trunk's time downsampling): 32 for Cnn14."""
        return math.prod(self.pools)

    @property
    def embedding_size(self) -> int:
        return self.channels[-1]

    @property
    def min_samples(self) -> int:
        """The shortest input that gives one segment: ``ratio`` STFT frames."""
        return (self.ratio - 1) * self.hop_length

    def segments(self, samples: int) -> int:
        """Segments ``T'`` for ``samples`` input samples: ``(1 + samples // hop) // ratio`` (each
        pooling floors, and floor(floor(x / a) / b) = floor(x / ab))."""
        return (1 + samples // self.hop_length) // self.ratio


#: The released variants (heads replace ``head``/``arch`` via ``dataclasses.replace``).
CNN14 = PannsConfig()
CNN14_16K = PannsConfig(arch="Cnn14_16k", sample_rate=16000, n_fft=512, hop_length=160, fmax=8000.0)
CNN10 = PannsConfig(arch="Cnn10", channels=(64, 128, 256, 512), pools=(2, 2, 2, 2))
VARIANTS = {"Cnn14": CNN14, "Cnn14_16k": CNN14_16K, "Cnn10": CNN10}


class ConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias), each + BN + ReLU, then ``pool x pool`` average pooling.

    ``(B, C_in, T, M)`` -> ``(B, C_out, T // pool, M // pool)``.
    """

    def __init__(self, in_channels: int, out_channels: int, pool: int) -> None:
        super().__init__()
        self.pool = pool
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, self.pool) if self.pool > 1 else x


class _AttentionHead(nn.Module):
    """``att`` and ``cla``: 1x1 convolutions ``C -> classes``; ``bn_att`` is stored, unused."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.att = nn.Conv1d(channels, classes, 1)
        self.cla = nn.Conv1d(channels, classes, 1)
        self.bn_att = nn.BatchNorm1d(classes)  # in the checkpoints; the authors' forward skips it

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, T')`` -> clip ``(B, K)``, segments ``(B, T', K)``."""
        weights = torch.softmax(torch.clamp(self.att(x), -10.0, 10.0), dim=-1)  # (B, K, T')
        segments = torch.sigmoid(self.cla(x))  # (B, K, T')
        return (weights * segments).sum(dim=-1), segments.transpose(1, 2)


class PannsNet(nn.Module):
    """A PANNs network: waveform in, AudioSet probabilities out.

    Args:
        config: the variant.

    ``forward(wave (B, N))`` returns, for ``head="clip"``, ``(probs (B, K), embedding (B, C))``;
    for the decision-level heads ``(probs (B, K), segment_probs (B, T', K))`` with
    ``T' = config.segments(N)`` (segment ``j`` pools STFT frames ``j * ratio ...
    (j + 1) * ratio - 1``; :func:`segment_centres`). ``N >= config.min_samples``.
    """

    def __init__(self, config: PannsConfig = CNN14) -> None:
        super().__init__()
        self.config = config
        c = config
        self.frontend = LogMelFrontEnd(c.sample_rate, c.n_fft, c.hop_length, c.n_mels, c.fmin, c.fmax)
        self.bn0 = nn.BatchNorm2d(c.n_mels)  # BatchNorm2d as the authors have it: same keys, one channel per mel bin
        widths = (1, *c.channels)
        for i, (cin, cout, pool) in enumerate(zip(widths[:-1], widths[1:], c.pools), start=1):
            self.add_module(f"conv_block{i}", ConvBlock(cin, cout, pool))
        self.fc1 = nn.Linear(c.embedding_size, c.embedding_size)
        if c.head == "decision-att":
            self.att_block = _AttentionHead(c.embedding_size, c.classes)
        else:
            self.fc_audioset = nn.Linear(c.embedding_size, c.classes)

    # the checkpoint keys have no "frontend." prefix: map them both ways
    _FRONTEND_KEYS = ("spectrogram_extractor.", "logmel_extractor.")

    def load_panns_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a checkpoint's state dict (the authors' keys) strictly; front-end tensors the file
        lacks keep their reference values (every released file has them)."""
        mapped = {("frontend." + k if k.startswith(self._FRONTEND_KEYS) else k): v for k, v in state.items()}
        for key, value in self.frontend.state_dict(prefix="frontend.").items():
            mapped.setdefault(key, value)
        self.load_state_dict(mapped, strict=True)

    def panns_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict under the authors' keys (what their checkpoints hold)."""
        return {k.removeprefix("frontend."): v for k, v in self.state_dict().items()}

    def forward_features(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` waveform -> ``(B, C, T')`` segment features (mean over mel bins)."""
        x = self.frontend(wave)  # (B, T, M)
        x = self.bn0(x.transpose(1, 2).unsqueeze(-1))  # (B, M, T, 1): one BN channel per mel bin
        x = x.squeeze(-1).transpose(1, 2).unsqueeze(1)  # (B, 1, T, M)
        for i in range(1, len(self.config.channels) + 1):
            x = getattr(self, f"conv_block{i}")(x)  # (B, C_i, T / r_i, M / r_i)
        return x.mean(dim=3)  # (B, C, T')

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.forward_features(wave)  # (B, C, T')
        if self.config.head == "clip":
            pooled = x.amax(dim=2) + x.mean(dim=2)  # (B, C)
            embedding = F.relu(self.fc1(pooled))
            return torch.sigmoid(self.fc_audioset(embedding)), embedding
        x = F.max_pool1d(x, 3, 1, 1) + F.avg_pool1d(x, 3, 1, 1)  # (B, C, T'), smoothed over neighbours
        x = F.relu(self.fc1(x.transpose(1, 2)))  # (B, T', C)
        if self.config.head == "decision-att":
            return self.att_block(x.transpose(1, 2))  # (B, K), (B, T', K)
        segments = torch.sigmoid(self.fc_audioset(x))  # (B, T', K)
        return segments.amax(dim=1), segments


def expand_to_frames(segments: torch.Tensor, ratio: int, frames: int) -> torch.Tensor:
    """The authors' ``framewise_output`` from segment probabilities: each segment repeated
    ``ratio`` times, then the last row repeated up to ``frames`` STFT frames.

    ``(B, T', K)`` -> ``(B, frames, K)``, ``frames >= T' * ratio``.
    """
    repeated = segments.repeat_interleave(ratio, dim=1)  # (B, T' * ratio, K)
    tail = repeated[:, -1:].expand(-1, frames - repeated.shape[1], -1)
    return torch.cat([repeated, tail], dim=1)


def segment_centres(config: PannsConfig, samples: int) -> list[float]:
    """Each segment's time in seconds from the start of a ``samples``-long input: the centre of
    the ``ratio`` STFT frames it pools (frame ``t`` is centred on sample ``t * hop``, the input
    being reflect-padded by ``n_fft // 2``), i.e. ``(j * ratio + (ratio - 1) / 2) * hop / sr``.
    The STFT frames past the last whole segment (``T - T' * ratio`` of them) are dropped by the
    pooling and get no segment.
    """
    c = config
    return [(j * c.ratio + (c.ratio - 1) / 2) * c.hop_length / c.sample_rate for j in range(c.segments(samples))]
