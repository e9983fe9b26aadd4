"""The EfficientAT dynamic MobileNets ("DyMN", Schmid, Koutini & Widmer, ICASSP 2024): the MN plan
(:data:`~models.efficientat.network.BLOCKS`) with dynamic blocks, under the authors' state-dict keys.

A dynamic block (the authors' ``models/dymn/dy_block.py`` ``DY_Block``) computes, from its input,
a context: the input averaged over time (one column per frequency) and over frequency (one row per
time step), both through one shared 1×1 conv → BN → Hardswish of H channels
(``H = clip(make_divisible(expanded // 4), make_divisible(32·w), make_divisible(128·w))``), whose
mean over the F + T positions is the context vector ``h`` (B, H), and whose two halves, pooled to
the block's stride and mapped by 1×1 convs to the expanded width, are the coordinate-attention
gates. Then: dynamic 1×1 expand → BN → activation, dynamic depthwise → BN → DyReLU-B, the
coordinate attention ``x · σ(g_f) · σ(g_t)``, dynamic 1×1 project → BN, plus the input where the
shape allows. A dynamic conv holds K = 4 kernels and mixes them per clip with
``softmax(linear(h) / temperature)``; DyReLU-B is ``max_m(a_m · x + b_m)`` per channel, M = 2, with
``(a, b) = (2σ(linear(h)) - 1) · λ + init`` (λ = [1, 1, 0.5, 0.5], init = [1, 0, 0, 0]).

The temperature is not in the checkpoints; the authors' loader sets it to the end of the
pre-training schedule, 1, for their released files, and so does :class:`DyMNConfig`.

Keys: ``in_c.{0,1}``, ``layers.{0..14}.{context_gen.{joint_conv,joint_norm,conv_f,conv_t},
exp_conv.{weight,residuals.0}, exp_norm, depth_conv.{weight,residuals.0}, depth_norm,
depth_act.{coef_net.0,lambdas,init_v}, proj_conv.{weight,residuals.0}, proj_norm}``, ``out_c.{0,1}``,
``classifier.{2,5}``. In the ``replace_se`` variant only the blocks that have SE in MN are dynamic;
the others are MN blocks without SE (``layers.N.block.*``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.efficientat.network import BLOCKS, BN_EPS, BlockSpec, InvertedResidual, MNConfig, _conv_bn, make_divisible

__all__ = ["DyMNConfig", "DYMN_VARIANTS", "DyMN"]

_BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class DyMNConfig:
    """A DyMN network; defaults are the authors' ``get_model`` defaults for a pre-trained model."""

    width: float = 1.0  # width multiplier (dymn04 = 0.4, dymn10 = 1.0, dymn20 = 2.0)
    num_classes: int = 527
    in_channels: int = 1
    head_channels: int = 1280  # MLP head hidden width before the multiplier
    dynamic: str = "all"  # "all" blocks dynamic, or "replace_se": only where MN has SE
    context_ratio: int = 4  # H = expanded // context_ratio, clipped to [min_context, max_context] · width
    min_context: int = 32
    max_context: int = 128
    kernels: int = 4  # K: kernels a dynamic conv mixes
    relu_pieces: int = 2  # M: linear pieces of DyReLU-B
    temperature: float = 1.0  # softmax temperature of the kernel attention (released files: 1)
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.dynamic not in ("all", "replace_se"):
            raise ValueError(f"DyMNConfig.dynamic: expected 'all' or 'replace_se', found {self.dynamic!r}")
        if not self.temperature > 0:
            raise ValueError(f"DyMNConfig.temperature: expected > 0, found {self.temperature!r}")

    @property
    def mn(self) -> MNConfig:
        """The MN config of the same width (channel rule, head, static blocks)."""
        return MNConfig(width=self.width, num_classes=self.num_classes, in_channels=self.in_channels,
                        head_channels=self.head_channels, dropout=self.dropout)

    def context_channels(self, expanded: int) -> int:
        low, high = make_divisible(self.min_context * self.width), make_divisible(self.max_context * self.width)
        return min(max(make_divisible(expanded // self.context_ratio), low), high)


#: The authors' released DyMN widths.
DYMN_VARIANTS: dict[str, DyMNConfig] = {f"dymn{round(w * 10):02d}": DyMNConfig(width=w) for w in (0.4, 1.0, 2.0)}


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=_BN_MOMENTUM)


class _DynamicConv(nn.Module):
    """K kernels mixed per clip by attention on the context vector; 1×1 or depthwise.

    The weight is stored as the authors store it, ``(1, 1, K, cout · cin/groups · k · k)``. A mix of
    kernels convolved equals the mix of the K convolutions, which is how the depthwise case is
    computed (the batch stays an ordinary axis, so the graph exports with a dynamic batch).
    """

    def __init__(self, cin: int, cout: int, context: int, kernel: int, stride: int, depthwise: bool, k: int) -> None:
        super().__init__()
        self.cin, self.cout, self.kernel, self.stride, self.k = cin, cout, kernel, stride, k
        self.depthwise = depthwise
        per_out = 1 if depthwise else cin
        self.residuals = nn.Sequential(nn.Linear(context, k))
        self.weight = nn.Parameter(torch.zeros(1, 1, k, cout * per_out * kernel * kernel))

    def forward(self, x: torch.Tensor, h: torch.Tensor, temperature: float) -> torch.Tensor:
        """``(B, cin, F, T)``, context ``(B, H)`` → ``(B, cout, F', T')``."""
        attention = torch.softmax(self.residuals(h) / temperature, dim=-1)  # (B, K)
        if not self.depthwise:  # 1×1: mix the kernels, then one batched matrix product
            w = self.weight.view(self.k, self.cout * self.cin)
            mixed = (attention @ w).view(-1, self.cout, self.cin)  # (B, cout, cin)
            return torch.einsum("boi,bift->boft", mixed, x)
        w = self.weight.view(self.k, self.cout, 1, self.kernel, self.kernel)
        w = w.transpose(0, 1).reshape(self.cout * self.k, 1, self.kernel, self.kernel)  # channel-major
        y = F.conv2d(x, w, stride=self.stride, padding=(self.kernel - 1) // 2, groups=self.cin)  # (B, C·K, F', T')
        y = y.view(y.shape[0], self.cout, self.k, y.shape[-2], y.shape[-1])
        return torch.einsum("bk,bckft->bcft", attention, y)


class _DyReLUB(nn.Module):
    """``max_m(a_m · x + b_m)`` with per-clip, per-channel coefficients from the context."""

    def __init__(self, channels: int, context: int, m: int) -> None:
        super().__init__()
        self.channels, self.m = channels, m
        self.coef_net = nn.Sequential(nn.Linear(context, 2 * m * channels))
        self.register_buffer("lambdas", torch.tensor([1.0] * m + [0.5] * m))
        self.register_buffer("init_v", torch.tensor([1.0] + [0.0] * (2 * m - 1)))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        theta = 2 * torch.sigmoid(self.coef_net(h)) - 1  # (B, 2·M·C)
        coefs = theta.view(-1, self.channels, 1, 1, 2 * self.m) * self.lambdas + self.init_v  # (B, C, 1, 1, 2M)
        mapped = x.unsqueeze(-1) * coefs[..., :self.m] + coefs[..., self.m:]  # (B, C, F, T, M)
        return mapped.amax(dim=-1)


class _ContextGen(nn.Module):
    """Input → context vector ``h`` (B, H) and coordinate-attention logits ``g_f`` (B, E, F', 1),
    ``g_t`` (B, E, 1, T') at the block's output resolution."""

    def __init__(self, cin: int, context: int, expanded: int, stride: int) -> None:
        super().__init__()
        self.joint_conv = nn.Conv2d(cin, context, 1, bias=False)
        self.joint_norm = _bn(context)
        self.conv_f = nn.Conv2d(context, expanded, 1)
        self.conv_t = nn.Conv2d(context, expanded, 1)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = x.shape[-2]
        cf = x.mean(dim=3, keepdim=True)  # (B, C, F, 1)
        ct = x.mean(dim=2, keepdim=True).transpose(2, 3)  # (B, C, T, 1)
        joint = F.hardswish(self.joint_norm(self.joint_conv(torch.cat([cf, ct], dim=2))))  # (B, H, F + T, 1)
        h = joint.mean(dim=2).flatten(1)  # (B, H)
        hf, ht = joint[:, :, :f], joint[:, :, f:].transpose(2, 3)  # (B, H, F, 1), (B, H, 1, T)
        if self.stride > 1:  # to the depthwise conv's output grid (zero padding counted, as theirs)
            hf = F.avg_pool2d(hf, (3, 1), (self.stride, 1), (1, 0))
            ht = F.avg_pool2d(ht, (1, 3), (1, self.stride), (0, 1))
        return h, self.conv_f(hf), self.conv_t(ht)


class DynamicBlock(nn.Module):
    """One DyMN block. Shape: ``(B, cin, F, T)`` → ``(B, cout, ⌈F/stride⌉, ⌈T/stride⌉)``."""

    def __init__(self, spec: BlockSpec, config: DyMNConfig) -> None:
        super().__init__()
        mn = config.mn
        cin, mid, cout = mn.channels(spec.cin), mn.channels(spec.expanded), mn.channels(spec.cout)
        context = config.context_channels(mid)
        self.act = nn.Hardswish() if spec.hardswish else nn.ReLU()
        self.expands = mid != cin
        if self.expands:
            self.exp_conv = _DynamicConv(cin, mid, context, 1, 1, False, config.kernels)
            self.exp_norm = _bn(mid)
        self.depth_conv = _DynamicConv(mid, mid, context, spec.kernel, spec.stride, True, config.kernels)
        self.depth_norm = _bn(mid)
        self.depth_act = _DyReLUB(mid, context, config.relu_pieces)
        self.proj_conv = _DynamicConv(mid, cout, context, 1, 1, False, config.kernels)
        self.proj_norm = _bn(cout)
        self.context_gen = _ContextGen(cin, context, mid, spec.stride)
        self.residual = spec.stride == 1 and cin == cout
        self.temperature = config.temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, g_f, g_t = self.context_gen(x)
        y = x
        if self.expands:
            y = self.act(self.exp_norm(self.exp_conv(y, h, self.temperature)))
        y = self.depth_act(self.depth_norm(self.depth_conv(y, h, self.temperature)), h)
        y = y * torch.sigmoid(g_f) * torch.sigmoid(g_t)  # coordinate attention
        y = self.proj_norm(self.proj_conv(y, h, self.temperature))
        return x + y if self.residual else y


class DyMN(nn.Module):
    """The DyMN network: log-mel ``(B, 1, F, T)`` in, ``(B, num_classes)`` logits out."""

    def __init__(self, config: DyMNConfig) -> None:
        super().__init__()
        self.config = config
        mn = config.mn
        self.layers = nn.ModuleList(  # registered before in_c, as theirs: the same state-dict order
            DynamicBlock(spec, config) if config.dynamic == "all" or spec.se
            else InvertedResidual(dataclasses.replace(spec, se=False), mn)
            for spec in BLOCKS)
        self.in_c = _conv_bn(config.in_channels, mn.channels(BLOCKS[0].cin), 3, 2, act=nn.Hardswish)
        self.out_c = _conv_bn(mn.channels(BLOCKS[-1].cout), mn.last_channels, 1, act=nn.Hardswish)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(mn.last_channels, mn.hidden_channels), nn.Hardswish(),
            nn.Dropout(config.dropout), nn.Linear(mn.hidden_channels, config.num_classes))

    def forward_features(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.in_c(spec)
        for layer in self.layers:
            x = layer(x)
        return self.out_c(x)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(spec))
