"""The EfficientAT MobileNets ("MN", Schmid, Koutini & Widmer, ICASSP 2023): MobileNetV3-Large on
one-channel log-mel spectrograms, scaled by a width multiplier, with channel squeeze-excitation and
an MLP head, under the authors' state-dict keys so their released files load strictly.

Layout (the authors' ``models/mn/model.py`` ``_mobilenet_v3_conf``, which follows torchvision's
MobileNetV3-Large table): a 3×3 stride-2 stem, the 15 inverted residuals of :data:`BLOCKS`, a 1×1
conv to six times the last block's width, then global average pooling and the MLP head. Channel
counts are ``make_divisible(c · width, 8)``; BatchNorm has eps 0.001 (momentum 0.01, used only in
training); convolutions have no bias. Squeeze-excitation sits after the depthwise conv of the
blocks marked ``se`` (3-5 and 10-14), on channels only (the authors' default ``se_dims="c"``),
gated by a plain sigmoid (not torchvision's hard sigmoid).

Keys: ``features.0.{0,1}`` (stem conv, BN), ``features.{1..15}.block.{i}.{0,1}`` (each block's
expand / depthwise / project conv and BN, ``i`` counting only the layers present), SE at
``features.N.block.{i}.conc_se_layers.0.fc{1,2}``, ``features.16.{0,1}`` (last conv, BN),
``classifier.{2,5}`` (the two linear layers of the head).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.core.family import variant_entries

__all__ = ["BlockSpec", "BLOCKS", "MNConfig", "VARIANTS", "MobileNet", "build_mobilenet", "make_divisible",
           "NETWORK_ENTRIES", "BN_EPS"]

#: BatchNorm epsilon of every norm layer (the authors' ``partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)``).
BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


def make_divisible(value: float, divisor: int = 8) -> int:
    """The channel count the authors (and TF / torchvision MobileNets) use for ``value``: the multiple
    of ``divisor`` nearest ``value`` (at least ``divisor``), one step up when that rounds down by
    more than 10 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class BlockSpec:
    """One inverted residual of the width-1 network (channels before the width multiplier)."""

    cin: int  # input channels
    kernel: int  # depthwise kernel (square)
    expanded: int  # channels inside the block; no expand conv when equal to cin
    cout: int  # output channels
    se: bool  # squeeze-excitation after the depthwise conv
    hardswish: bool  # Hardswish (the table's "HS"), else ReLU
    stride: int  # depthwise stride (2 at the four downsampling blocks)


#: MobileNetV3-Large's 15 blocks, in order (``features`` index = position + 1).
BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(16, 3, 16, 16, False, False, 1),
    BlockSpec(16, 3, 64, 24, False, False, 2),
    BlockSpec(24, 3, 72, 24, False, False, 1),
    BlockSpec(24, 5, 72, 40, True, False, 2),
    BlockSpec(40, 5, 120, 40, True, False, 1),
    BlockSpec(40, 5, 120, 40, True, False, 1),
    BlockSpec(40, 3, 240, 80, False, True, 2),
    BlockSpec(80, 3, 200, 80, False, True, 1),
    BlockSpec(80, 3, 184, 80, False, True, 1),
    BlockSpec(80, 3, 184, 80, False, True, 1),
    BlockSpec(80, 3, 480, 112, True, True, 1),
    BlockSpec(112, 3, 672, 112, True, True, 1),
    BlockSpec(112, 5, 672, 160, True, True, 2),
    BlockSpec(160, 5, 960, 160, True, True, 1),
    BlockSpec(160, 5, 960, 160, True, True, 1),
)


@dataclass(frozen=True)
class MNConfig:
    """An MN network; the defaults are the authors' ``get_model`` defaults for AudioSet."""

    width: float = 1.0  # width multiplier (the name's digits / 10: mn04 = 0.4, mn40 = 4.0)
    num_classes: int = 527  # AudioSet's classes
    in_channels: int = 1  # one log-mel plane
    head_channels: int = 1280  # hidden width of the MLP head before the multiplier (1280 · width)
    se_reduction: int = 4  # SE bottleneck = make_divisible(channels // se_reduction, 8)
    dropout: float = 0.2  # head dropout (training only)

    def __post_init__(self) -> None:
        if not isinstance(self.width, (int, float)) or isinstance(self.width, bool) or not self.width > 0:
            raise ValueError(f"MNConfig.width: expected a number > 0, found {self.width!r}")
        for name in ("num_classes", "in_channels", "head_channels", "se_reduction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MNConfig.{name}: expected an int >= 1, found {value!r}")

    def channels(self, c: int) -> int:
        """``c`` channels of the width-1 network at this width."""
        return make_divisible(c * self.width)

    @property
    def last_channels(self) -> int:
        """Channels of the last conv (``features.16``): six times the last block's output."""
        return 6 * self.channels(BLOCKS[-1].cout)

    @property
    def hidden_channels(self) -> int:
        """Hidden width of the MLP head (``classifier.2``)."""
        return self.channels(self.head_channels)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
             act: type[nn.Module] | None = None) -> nn.Sequential:
    """Conv (no bias, 'same' padding) → BN → optional activation; keys ``0`` (conv) and ``1`` (BN)."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=BN_EPS, momentum=_BN_MOMENTUM),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class _SqueezeExcite(nn.Module):
    """Channel gate: mean over (F, T) → fc1 → ReLU → fc2 → sigmoid → scale.

    Shape: ``(B, C, F, T)`` → same.
    """

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))  # (B, C)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))  # (B, C)
        return x * s[:, :, None, None]


class _ChannelSE(nn.Module):
    """The authors' squeeze-excitation container with one (channel) gate: it only places the gate
    under the key ``conc_se_layers.0`` (their concurrent-SE wrapper reduces a single gate with
    ``max`` over a stack of one, which is the gate itself)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([_SqueezeExcite(channels, squeeze)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class InvertedResidual(nn.Module):
    """Expand (1×1, skipped when no wider) → depthwise k×k → optional SE → project (1×1, linear),
    plus the input when stride is 1 and the width is unchanged.

    Shape: ``(B, cin, F, T)`` → ``(B, cout, ⌈F/stride⌉, ⌈T/stride⌉)``.
    """

    def __init__(self, spec: BlockSpec, config: MNConfig) -> None:
        super().__init__()
        cin, mid, cout = config.channels(spec.cin), config.channels(spec.expanded), config.channels(spec.cout)
        act = nn.Hardswish if spec.hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if mid != cin:
            layers.append(_conv_bn(cin, mid, 1, act=act))
        layers.append(_conv_bn(mid, mid, spec.kernel, spec.stride, groups=mid, act=act))
        if spec.se:
            layers.append(_ChannelSE(mid, make_divisible(mid // config.se_reduction)))
        layers.append(_conv_bn(mid, cout, 1))
        self.block = nn.Sequential(*layers)
        self.residual = spec.stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNet(nn.Module):
    """The MN network: log-mel in, logits out.

    Attributes:
        features: ``features.0`` stem, ``features.1-15`` blocks, ``features.16`` last conv.
        classifier: avg pool (0), flatten (1), linear (2), Hardswish (3), dropout (4), linear (5).
    """

    def __init__(self, config: MNConfig) -> None:
        super().__init__()
        self.config = config
        stem = _conv_bn(config.in_channels, config.channels(BLOCKS[0].cin), 3, 2, act=nn.Hardswish)
        blocks = [InvertedResidual(spec, config) for spec in BLOCKS]
        last = _conv_bn(config.channels(BLOCKS[-1].cout), config.last_channels, 1, act=nn.Hardswish)
        self.features = nn.Sequential(stem, *blocks, last)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(config.last_channels, config.hidden_channels),
            nn.Hardswish(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_channels, config.num_classes),
        )

    def forward_features(self, spec: torch.Tensor) -> torch.Tensor:
        """``(B, 1, F, T)`` log-mel → ``(B, last_channels, ⌈F/32⌉, ⌈T/32⌉)`` feature map."""
        return self.features(spec)

    def forward_head(self, fmap: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map → ``(B, num_classes)`` logits, or with ``pre_logits`` the pooled
        ``(B, last_channels)`` embedding the authors return beside the logits."""
        if pre_logits:
            return self.classifier[1](self.classifier[0](fmap))
        return self.classifier(fmap)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """``(B, 1, F, T)`` log-mel (any F, T) → ``(B, num_classes)`` logits (before the sigmoid)."""
        return self.forward_head(self.forward_features(spec))


def build_mobilenet(config: MNConfig) -> MobileNet:
    """The network of ``config``, in eval mode."""
    return MobileNet(config).eval()


#: The widths the authors name (``helpers/utils.py`` ``NAME_TO_WIDTH``), as variants ``mnXX``.
VARIANTS: dict[str, MNConfig] = {
    f"mn{round(w * 10):02d}": MNConfig(width=w)
    for w in (0.1, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 2.0, 3.0, 4.0)
}

NETWORK_ENTRIES = variant_entries(
    {f"efficientat-{name}": config for name, config in VARIANTS.items()},
    {f"efficientat-{name}": f"EfficientAT MobileNet {name} (width {config.width:g}), 527 AudioSet logits from log-mel"
     for name, config in VARIANTS.items()},
    build_mobilenet,
)

