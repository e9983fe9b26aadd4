"""The CRNN sound-event detector: gated convolutional encoder, two bidirectional GRU layers,
frame-level sigmoid scores and linear-softmax (or attention) pooling to clip level.

The shape is the DCASE task-4 baseline's (``shared/REFERENCE.md`` 5.1): blocks of
[3x3 convolution, batch norm (eps 1e-3), channel gate, dropout, average pooling] (the baseline
passes momentum 0.99 to torch, whose convention makes the running statistics nearly the last
batch's; here torch's default 0.1: with 0.01, the Keras reading of 0.99, the running statistics
lagged so far behind that after 150 steps the eval-mode network told events from background no
better than chance while the train-mode one did); the gate is the baseline's "GLU": a linear map over the
channel axis multiplied by the sigmoid of the input (channels unchanged). The encoder's output
(one frequency bin left) is one vector per frame for the GRUs.

One change makes it a streaming network: with ``causal=True`` (the default) every convolution
pads the time axis on the left only (2 frames), so an encoder frame depends on the present and
the past, never on later frames. The encoder then has no right context: computed hop by hop
with cached inputs (:mod:`models.crnn.streaming`) it gives exactly what one pass over the whole
stream gives, with no delay. ``causal=False`` pads symmetrically, as the baseline does
(offline use only).

Sizes (:data:`PAPER`, :data:`LITE`): the paper size is the DCASE 2021 baseline's (7 blocks of
16-32-64-128-128-128-128 channels, time pools 2-2-1-1-1-1-1, 128 mel bands pooled to 1, 128 GRU
units per direction); ``lite`` (6 blocks of 16-32-64-64-64-64 over 64 mel bands, 64 units) runs
a hop in a few milliseconds on two CPU cores.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("linear-softmax", "attention")


@dataclass(frozen=True)
class CRNNConfig:
    """The network's shape.

    Attributes:
        num_classes: C, sigmoid outputs per frame.
        n_mels: mel bands of the log-mel input.
        channels: output channels of each convolutional block.
        time_pools / freq_pools: average-pooling factors of each block (their products: the
            encoder's time stride in mel frames, and n_mels must equal the frequency product
            times the bins left, normally 1).
        rnn_units: GRU units per direction (two bidirectional layers).
        rnn_layers: GRU layers.
        pooling: "linear-softmax" (the baseline's: clip = sum_t p_t w_t / sum_t w_t, w = a second
            linear layer's softmax over classes) or "attention" (w = softmax over time).
        dropout: after each convolutional block (training only).
        causal: time padding on the left only (streaming); False: symmetric (offline baseline).
        fusion_dims: per-frame embedding sizes fused at the input (audio-visual transfer); each
            is projected to ``fusion_bins`` rows appended to the mel bands.
        fusion_bins: rows each fused embedding adds to the input image.
    """

    num_classes: int
    n_mels: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 64, 64, 64)
    time_pools: tuple[int, ...] = (2, 2, 1, 1, 1, 1)
    freq_pools: tuple[int, ...] = (2, 2, 2, 2, 2, 2)
    rnn_units: int = 64
    rnn_layers: int = 2
    pooling: str = "linear-softmax"
    dropout: float = 0.5
    causal: bool = True
    fusion_dims: tuple[int, ...] = ()
    fusion_bins: int = 16

    def __post_init__(self) -> None:
        for name in ("channels", "time_pools", "freq_pools", "fusion_dims"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.num_classes < 1:
            raise ValueError(f"CRNNConfig.num_classes: expected >= 1, found {self.num_classes}")
        if not (len(self.channels) == len(self.time_pools) == len(self.freq_pools)) or not self.channels:
            raise ValueError(f"CRNNConfig: channels, time_pools and freq_pools need one value per block, found "
                             f"{len(self.channels)}, {len(self.time_pools)}, {len(self.freq_pools)}")
        if self.input_bins % self.freq_stride:
            raise ValueError(f"CRNNConfig: the input's {self.input_bins} bins are not a multiple of the frequency "
                             f"pooling {self.freq_stride}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"CRNNConfig.pooling: expected one of {POOLINGS}, found {self.pooling!r}")

    @property
    def input_bins(self) -> int:
        """Rows of the encoder's input image: mel bands plus ``fusion_bins`` per fused embedding."""
        return self.n_mels + self.fusion_bins * len(self.fusion_dims)

    @property
    def time_stride(self) -> int:
        """Mel frames per encoder frame."""
        return math.prod(self.time_pools)

    @property
    def freq_stride(self) -> int:
        """Input bins pooled into one output bin."""
        return math.prod(self.freq_pools)

    @property
    def frame_dim(self) -> int:
        """Size of the encoder's per-frame vector (the GRU input)."""
        return self.channels[-1] * (self.input_bins // self.freq_stride)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CRNNConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"CRNNConfig: unknown fields {unknown}; expected some of {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def paper_config(num_classes: int, **overrides) -> CRNNConfig:
    """The DCASE 2021 baseline's size: 7 blocks, 128 mel bands, 128 GRU units per direction."""
    base = dict(n_mels=128, channels=(16, 32, 64, 128, 128, 128, 128), time_pools=(2, 2, 1, 1, 1, 1, 1),
                freq_pools=(2, 2, 2, 2, 2, 2, 2), rnn_units=128)
    return CRNNConfig(num_classes=num_classes, **{**base, **overrides})


def lite_config(num_classes: int, **overrides) -> CRNNConfig:
    """The small size for two CPU cores (the :class:`CRNNConfig` defaults)."""
    return CRNNConfig(num_classes=num_classes, **overrides)


class ChannelGate(nn.Module):
    """The baseline's "GLU": ``Linear(C, C)(x) * sigmoid(x)``, the linear map over the channel
    axis (here a 1x1 convolution, the same map without moving the channel axis last: the
    permuted layout made the next convolution's backward pass ten times slower on the CPU).

    ``(B, C, T, F) -> (B, C, T, F)``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.linear = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * torch.sigmoid(x)


class ConvBlock(nn.Module):
    """Convolution 3x3 (padding applied by the caller's ``pad_time``), batch norm, gate, dropout,
    average pooling. ``(B, C_in, T, F) -> (B, C_out, T / time_pool, F / freq_pool)`` when the
    input was already padded by two frames in time."""

    def __init__(self, c_in: int, c_out: int, time_pool: int, freq_pool: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=(0, 1))
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.1)
        self.gate = ChannelGate(c_out)
        self.dropout = nn.Dropout(dropout)
        self.pool = (time_pool, freq_pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.gate(self.bn(self.conv(x))))
        if self.pool != (1, 1):
            x = F.avg_pool2d(x, self.pool)
        return x


class CRNN(nn.Module):
    """Log-mel (and fused embeddings) -> frame scores and clip scores.

    ``forward(mel (B, T, n_mels), *embeddings (B, T, D_k)) -> (frame_probs (B, T', C),
    clip_probs (B, C))`` with ``T' = T // time_stride`` (T must be a multiple of it; the
    embeddings are given at the mel frame rate). Inputs are normalised by per-band ``mean`` and
    ``std`` buffers (set from training data by :meth:`set_normalisation`; identity before).
    """

    def __init__(self, config: CRNNConfig):
        super().__init__()
        self.config = config
        c = config
        ins = (1, *c.channels[:-1])
        self.blocks = nn.ModuleList(ConvBlock(i, o, tp, fp, c.dropout)
                                    for i, o, tp, fp in zip(ins, c.channels, c.time_pools, c.freq_pools))
        self.fusion = nn.ModuleList(nn.Linear(d, c.fusion_bins) for d in c.fusion_dims)
        self.rnn = nn.GRU(c.frame_dim, c.rnn_units, num_layers=c.rnn_layers, batch_first=True, bidirectional=True)
        self.frame_head = nn.Linear(2 * c.rnn_units, c.num_classes)
        self.weight_head = nn.Linear(2 * c.rnn_units, c.num_classes)
        self.register_buffer("mean", torch.zeros(c.n_mels))
        self.register_buffer("std", torch.ones(c.n_mels))
        if c.fusion_dims:  # only fused networks carry them: spectral checkpoints keep their keys
            self.register_buffer("fused_mean", torch.zeros(sum(c.fusion_dims)))
            self.register_buffer("fused_std", torch.ones(sum(c.fusion_dims)))

    @torch.no_grad()
    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor, fused_mean: torch.Tensor | None = None,
                          fused_std: torch.Tensor | None = None) -> None:
        """Per-band statistics of the training log-mels, ``(n_mels,)`` each (kept in checkpoints),
        and of the fused embeddings side by side, ``(sum of fusion_dims,)`` each."""
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-3))
        if fused_mean is not None and self.config.fusion_dims:
            self.fused_mean.copy_(fused_mean)
            # a dimension that hardly varies in training stays near 0 rather than amplifying noise
            self.fused_std.copy_(fused_std.clamp_min(1e-3 * float(fused_std.max().clamp_min(1e-12))))

    def split_fused(self, fused: torch.Tensor | None, mel_frames: int) -> tuple[torch.Tensor, ...]:
        """``(B, T >= mel_frames, sum of fusion_dims)`` side-by-side embeddings -> one normalised
        ``(B, mel_frames, D_k)`` per fused extractor; ``()`` for a spectral network.

        Raises:
            ValueError: a fused network given no embeddings, or embeddings of another width.
        """
        dims = self.config.fusion_dims
        if not dims:
            return ()
        if fused is None or fused.shape[-1] != sum(dims) or fused.shape[1] < mel_frames:
            found = "none" if fused is None else tuple(fused.shape)
            raise ValueError(f"CRNN: expected fused embeddings (B, >= {mel_frames}, {sum(dims)}), found {found}")
        x = (fused[:, :mel_frames] - self.fused_mean) / self.fused_std
        return tuple(torch.split(x, list(dims), dim=-1))

    def pad_time(self, x: torch.Tensor) -> torch.Tensor:
        """Two frames of zeros before (causal) or one on each side (offline), ``(B, C, T, F)``."""
        return F.pad(x, (0, 0, 2, 0) if self.config.causal else (0, 0, 1, 1))

    def input_image(self, mel: torch.Tensor, embeddings: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
        """``(B, T, n_mels)`` log-mel (+ ``(B, T, D_k)`` embeddings) -> ``(B, 1, T, input_bins)``."""
        if len(embeddings) != len(self.fusion):
            raise ValueError(f"CRNN: expected {len(self.fusion)} fused embeddings, found {len(embeddings)}")
        rows = [(mel - self.mean) / self.std]
        rows += [proj(e) for proj, e in zip(self.fusion, embeddings)]
        return torch.cat(rows, dim=-1).unsqueeze(1)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T, input_bins)`` -> encoder frames ``(B, T / time_stride, frame_dim)``."""
        x = image
        for block in self.blocks:
            x = block(self.pad_time(x))
        b, ch, t, f = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, t, ch * f)

    def decode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames ``(B, T', D)`` -> (frame probabilities ``(B, T', C)``, clip ``(B, C)``)."""
        h, _ = self.rnn(frames)
        strong = torch.sigmoid(self.frame_head(h))
        if self.config.pooling == "attention":
            w = torch.softmax(self.weight_head(h), dim=1)  # over time
            weak = (strong * w).sum(dim=1)
        else:
            w = torch.softmax(self.weight_head(h), dim=-1).clamp(1e-7, 1.0)  # over classes (baseline)
            weak = (strong * w).sum(dim=1) / w.sum(dim=1)
        return strong, weak

    def forward(self, mel: torch.Tensor, *embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = mel.shape[1]
        if t % self.config.time_stride:
            raise ValueError(f"CRNN: expected a multiple of {self.config.time_stride} mel frames, found {t}")
        return self.decode(self.encode(self.input_image(mel, tuple(embeddings))))
