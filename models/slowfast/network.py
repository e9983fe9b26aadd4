"""Slow-Fast Auditory Streams (Kazakos, Nagrani, Zisserman, Damen, ICASSP 2021): the network.

A two-pathway 2-D ResNet-50 on a log-mel spectrogram ``(N, 1, T, F)`` (time = dim 2,
frequency = dim 3). The Fast pathway sees all ``T`` frames with ``1/beta`` of the channels
and temporal kernels from the first layer on; the Slow pathway sees ``T/alpha`` frames,
has the full channel width and temporal kernels only in res4/res5. Lateral connections
(a strided temporal conv) add Fast features to Slow after the stem and after res2-res4.

Design, module names and every default follow the authors' code
(``ekazakos/auditory-slow-fast``, a 2-D rewrite of PySlowFast; facts in
``shared/REFERENCE.md`` section 1), so the state dict uses the reference's keys
(``s1.pathway0_stem.conv.weight``, ``s2_fuse.conv_f2s.weight``,
``s3.pathway1_res0.branch2.a.weight``, ``head.projection_verb.weight`` ...) and released
``.pyth`` weights load unchanged (:mod:`models.slowfast.pyth`).

Layout, top to bottom: the data tables, :class:`SlowFastConfig`, the building blocks
(stem, lateral, bottleneck, stage, head), :class:`SlowFast`, the front-end presets, frame
helpers, the live adapter :class:`SlowFastLabeler`, and the registered variants.

Choices where the reference is silent or fixed:

* **Other window lengths.** The reference head average-pools with a kernel fixed from the
  training length (``AUDIO_DATA.NUM_FRAMES``), stride 1, and at test time takes the softmax
  in every pooled cell and averages the cells. ``head_pooling="reference"`` keeps exactly
  that; with two pathways it only accepts the trained length (longer input gives Slow and
  Fast different numbers of cells, which the reference cannot concatenate either), with one
  pathway longer input gives a sliding-window ensemble of cells. ``head_pooling="global"``
  (the default) averages each pathway over all its time x frequency cells: the same single
  cell, so the same output, at the trained length, and one cell at any other length; it
  exports with a dynamic time axis.
* **Frame counts.** Slow/Fast time lengths agree after the stem and the laterals only when
  ``T mod 16`` is not 1, 2 or 3 (with alpha 4); :func:`pad_or_crop_frames` brings any
  log-mel to a multiple of 16 frames.

Example:
    >>> model = SlowFast(SlowFastConfig(num_classes=(97, 300), num_frames=400)).eval()
    >>> verb, noun = model(torch.randn(2, 1, 400, 128))      # (2, 97), (2, 300) probabilities
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.audio.frontend import FrontEnd, FrontEndConfig
from models.core.family import NetworkEntry, variant_entries
from models.core.live import WindowSpec

__all__ = [
    "ARCHS", "HEAD_POOLINGS", "TEMPORAL_KERNELS", "STAGE_DEPTHS", "FREQUENCY_STRIDES",
    "SlowFastConfig", "SlowFast", "Stem", "PathwayStems", "FuseFastToSlow", "Bottleneck", "ResBlock", "ResStage",
    "SlowFastHead", "init_conv_bn", "slow_frame_index", "pad_or_crop_frames", "pad_frames_edge", "count_macs",
    "ClipSpec", "EPIC_FRONTEND", "VGGSOUND_FRONTEND", "EPIC_SLOW_FRONTEND", "VGGSOUND_SLOW_FRONTEND",
    "EPIC_CLIP", "VGGSOUND_CLIP", "EPIC_SLOW_CLIP", "VGGSOUND_SLOW_CLIP", "clip_spec_for",
    "SlowFastLabeler", "VARIANTS",
]

# ---------------------------------------------------------------------------------- tables

#: ``MODEL.ARCH``: two pathways, or one of them alone (the reference's ``ResNet`` model).
ARCHS = ("slowfast", "slow", "fast")

#: How the head pools each pathway's final map (see the module docstring).
HEAD_POOLINGS = ("global", "reference")

#: Temporal kernel size of conv1 and of the ``a`` conv in res2..res5, per pathway
#: (the reference's ``_TEMPORAL_KERNEL_BASIS``): Slow is purely spectral until res4.
TEMPORAL_KERNELS = {
    "slow": (1, 1, 1, 3, 3),  # conv1, res2, res3, res4, res5
    "fast": (5, 3, 3, 3, 3),
}

#: Bottleneck blocks in res2..res5 per ResNet depth (``_MODEL_STAGE_DEPTH``).
STAGE_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}

#: Frequency stride of block 0 in res2..res5 (``RESNET.FREQUENCY_STRIDES``); no temporal
#: stride anywhere after the stem.
FREQUENCY_STRIDES = (1, 2, 2, 2)

_STEM_FREQ_KERNEL = 7  # conv1 is [Tk x 7], stride [2, 2], padding [Tk // 2, 3]


# ---------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SlowFastConfig:
    """Everything that defines a Slow-Fast (or Slow-only / Fast-only) network.

    Defaults are the reference's SlowFast R50 on VGG-Sound (``configs/VGG-Sound/SLOWFAST_R50.yaml``).

    Raises:
        ValueError: a field is out of range; the message names the field and says
            ``expected ... found ...``.
    """

    arch: str = "slowfast"  # MODEL.ARCH: "slowfast", "slow" (Slow alone) or "fast" (Fast alone)
    num_classes: tuple[int, ...] = (309,)  # MODEL.NUM_CLASSES: (K,) one head; (verbs, nouns) two
    width: int = 64  # RESNET.WIDTH_PER_GROUP of Slow; Fast has width // beta_inv channels
    depth: int = 50  # RESNET.DEPTH: 50 or 101
    # Blocks in res2..res5; None = the ResNet depth's (3, 4, 6, 3) / (3, 4, 23, 3). Not in the
    # reference: for small test and live variants.
    blocks: tuple[int, int, int, int] | None = None
    alpha: int = 4  # SLOWFAST.ALPHA: Fast frames per Slow frame (Slow input = T // alpha frames)
    beta_inv: int = 8  # SLOWFAST.BETA_INV: Slow channels per Fast channel
    fusion_channel_ratio: int = 2  # SLOWFAST.FUSION_CONV_CHANNEL_RATIO: lateral out = ratio x Fast channels
    fusion_kernel: int = 7  # SLOWFAST.FUSION_KERNEL_SZ: temporal kernel of the lateral conv
    num_frequencies: int = 128  # AUDIO_DATA.NUM_FREQUENCIES: mel bands of the input
    # AUDIO_DATA.NUM_FRAMES: the input frames the network is trained on (the Fast input for
    # "slowfast", the pathway's own input otherwise); sets the "reference" pooling kernel.
    num_frames: int = 512
    head_pooling: str = "global"  # "global" (any length) or "reference" (fixed kernel, stride 1)
    dropout: float = 0.5  # MODEL.DROPOUT_RATE, before the projection(s)
    bn_eps: float = 1e-5  # every BatchNorm2d
    bn_momentum: float = 0.1
    fc_init_std: float = 0.01  # MODEL.FC_INIT_STD: Linear weights ~ N(0, std), bias 0
    zero_init_final_bn: bool = True  # RESNET.ZERO_INIT_FINAL_BN: gamma 0 in each block's c_bn

    def __post_init__(self) -> None:
        def fail(name: str, expected: str) -> None:
            raise ValueError(f"SlowFastConfig.{name}: expected {expected}, found {getattr(self, name)!r}")

        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                fail(name, "a positive int")
            object.__setattr__(self, name, int(v))

        if self.arch not in ARCHS:
            fail("arch", " or ".join(map(repr, ARCHS)))
        classes = self.num_classes
        if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
            classes = (classes,)
        classes = tuple(classes) if isinstance(classes, (tuple, list)) else ()
        if not 1 <= len(classes) <= 2 or not all(
                isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 1 for c in classes):
            fail("num_classes", "(K,) for one head or (verbs, nouns) for two, positive ints")
        classes = tuple(int(c) for c in classes)
        object.__setattr__(self, "num_classes", classes)
        for name in ("width", "alpha", "beta_inv", "fusion_channel_ratio", "fusion_kernel", "num_frequencies",
                     "num_frames"):
            positive_int(name)
        if self.depth not in STAGE_DEPTHS:
            fail("depth", " or ".join(map(str, STAGE_DEPTHS)))
        if self.blocks is not None:
            blocks = tuple(self.blocks) if isinstance(self.blocks, (tuple, list)) else ()
            if len(blocks) != 4 or not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b >= 1
                                           for b in blocks):
                fail("blocks", "None or four positive ints (blocks in res2..res5)")
            object.__setattr__(self, "blocks", tuple(int(b) for b in blocks))
        if self.width % self.beta_inv:
            fail("width", f"a multiple of beta_inv={self.beta_inv} (Fast has width // beta_inv channels)")
        if self.fusion_kernel % 2 == 0:
            fail("fusion_kernel", "an odd int (padded by fusion_kernel // 2 on both sides)")
        if self.head_pooling not in HEAD_POOLINGS:
            fail("head_pooling", " or ".join(map(repr, HEAD_POOLINGS)))
        if self.head_pooling == "reference" and min(self.reference_pool_kernels()[i][j]
                                                    for i in range(len(self.pathways)) for j in (0, 1)) < 1:
            fail("num_frames", "enough frames for a pooling kernel of at least 1 x 1 (\"reference\" head)")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            fail("dropout", "a number in [0, 1)")
        for name in ("bn_eps", "bn_momentum", "fc_init_std"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                fail(name, "a finite number > 0")
        if not isinstance(self.zero_init_final_bn, bool):
            fail("zero_init_final_bn", "a bool")

    # --------------------------------------------------------------------- derived

    @property
    def pathways(self) -> tuple[str, ...]:
        """Pathway kinds in ``pathway{p}`` order: ``("slow", "fast")``, ``("slow",)`` or ``("fast",)``."""
        return ("slow", "fast") if self.arch == "slowfast" else (self.arch,)

    def pathway_width(self, kind: str) -> int:
        """Stem channels of a pathway: ``width`` (Slow) or ``width // beta_inv`` (Fast)."""
        return self.width if kind == "slow" else self.width // self.beta_inv

    @property
    def stage_blocks(self) -> tuple[int, int, int, int]:
        """Blocks in res2..res5: ``blocks`` or ``STAGE_DEPTHS[depth]``."""
        return self.blocks if self.blocks is not None else STAGE_DEPTHS[self.depth]

    @property
    def feature_dim(self) -> int:
        """Channels of the pooled features: 32 x the summed pathway widths (2304 for R50)."""
        return sum(32 * self.pathway_width(k) for k in self.pathways)

    @property
    def frame_multiple(self) -> int:
        """Frame counts that are multiples of this (``4 alpha``; 1 with one pathway) always give
        the laterals Slow's time length; with alpha 4 only ``T mod 16`` in 1..3 fail
        (:func:`pad_or_crop_frames`)."""
        return 4 * self.alpha if self.arch == "slowfast" else 1

    def reference_pool_kernels(self) -> tuple[tuple[int, int], ...]:
        """The reference head's AvgPool kernel per pathway, ``(time, freq)``.

        Slow: ``num_frames // alpha // 4`` (two pathways) or ``num_frames // 4`` (alone);
        Fast: ``num_frames // 4``; frequency ``num_frequencies // 32``.
        """
        freq = self.num_frequencies // 32
        out = []
        for kind in self.pathways:
            frames = self.num_frames // self.alpha if (kind == "slow" and self.arch == "slowfast") else self.num_frames
            out.append((frames // 4, freq))
        return tuple(out)


# ---------------------------------------------------------------------------------- blocks


def _bn(channels: int, cfg: SlowFastConfig) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum)


class Stem(nn.Module):
    """conv ``[Tk x 7]`` stride 2 in time and frequency -> BN -> ReLU -> 3 x 3 max pool, stride 2.

    ``(N, C_in, T, F)`` -> ``(N, C_out, ceil(ceil(T/2)/2), ceil(ceil(F/2)/2))``.
    """

    def __init__(self, in_channels: int, out_channels: int, temporal_kernel: int, cfg: SlowFastConfig) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (temporal_kernel, _STEM_FREQ_KERNEL), stride=(2, 2),
                              padding=(temporal_kernel // 2, _STEM_FREQ_KERNEL // 2), bias=False)
        self.bn = _bn(out_channels, cfg)
        self.relu = nn.ReLU(inplace=True)
        self.pool_layer = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_layer(self.relu(self.bn(self.conv(x))))


class PathwayStems(nn.Module):
    """One :class:`Stem` per pathway, named ``pathway{p}_stem`` (the reference's ``s1``)."""

    def __init__(self, stems: Sequence[Stem]) -> None:
        super().__init__()
        self.num_pathways = len(stems)
        for p, stem in enumerate(stems):
            self.add_module(f"pathway{p}_stem", stem)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(xs) != self.num_pathways:
            raise ValueError(f"PathwayStems: expected {self.num_pathways} pathway inputs, found {len(xs)}")
        return [getattr(self, f"pathway{p}_stem")(x) for p, x in enumerate(xs)]


class FuseFastToSlow(nn.Module):
    """Lateral connection: ``[Slow, Fast]`` -> ``[cat(Slow, ReLU(BN(conv_f2s(Fast)))), Fast]``.

    ``conv_f2s`` is ``[k x 1]`` with temporal stride ``alpha`` and padding ``k // 2``, mapping
    ``C_f`` Fast channels to ``ratio x C_f``; its output joins Slow along channels.
    """

    def __init__(self, fast_channels: int, cfg: SlowFastConfig) -> None:
        super().__init__()
        out = fast_channels * cfg.fusion_channel_ratio
        self.conv_f2s = nn.Conv2d(fast_channels, out, (cfg.fusion_kernel, 1), stride=(cfg.alpha, 1),
                                  padding=(cfg.fusion_kernel // 2, 0), bias=False)
        self.bn = _bn(out, cfg)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        slow, fast = xs
        lateral = self.relu(self.bn(self.conv_f2s(fast)))  # (N, ratio*C_f, T_s, F)
        return [torch.cat([slow, lateral], dim=1), fast]


class Bottleneck(nn.Module):
    """``a``: ``[Tk x 1]`` temporal conv -> ``b``: ``[1 x 3]`` frequency conv (stride ``[1, s]``)
    -> ``c``: 1 x 1 conv; BN after each, ReLU after ``a`` and ``b`` (``STRIDE_1X1 False``).

    ``c_bn`` is the block's final BN (gamma starts at 0 with ``zero_init_final_bn``).
    """

    def __init__(self, in_channels: int, out_channels: int, inner_channels: int, temporal_kernel: int,
                 freq_stride: int, cfg: SlowFastConfig) -> None:
        super().__init__()
        self.a = nn.Conv2d(in_channels, inner_channels, (temporal_kernel, 1), padding=(temporal_kernel // 2, 0),
                           bias=False)
        self.a_bn = _bn(inner_channels, cfg)
        self.a_relu = nn.ReLU(inplace=True)
        self.b = nn.Conv2d(inner_channels, inner_channels, (1, 3), stride=(1, freq_stride), padding=(0, 1), bias=False)
        self.b_bn = _bn(inner_channels, cfg)
        self.b_relu = nn.ReLU(inplace=True)
        self.c = nn.Conv2d(inner_channels, out_channels, 1, bias=False)
        self.c_bn = _bn(out_channels, cfg)
        self.c_bn.is_final_bn = True  # read by SlowFast._init_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a_relu(self.a_bn(self.a(x)))
        x = self.b_relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class ResBlock(nn.Module):
    """Residual block: ``ReLU(shortcut(x) + branch2(x))``; the shortcut ``branch1`` (1 x 1 conv,
    stride ``[1, s]``, + BN) exists when channels or resolution change (block 0 of a stage)."""

    def __init__(self, in_channels: int, out_channels: int, inner_channels: int, temporal_kernel: int,
                 freq_stride: int, cfg: SlowFastConfig) -> None:
        super().__init__()
        if in_channels != out_channels or freq_stride != 1:
            self.branch1 = nn.Conv2d(in_channels, out_channels, 1, stride=(1, freq_stride), bias=False)
            self.branch1_bn = _bn(out_channels, cfg)
        self.branch2 = Bottleneck(in_channels, out_channels, inner_channels, temporal_kernel, freq_stride, cfg)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.branch1_bn(self.branch1(x)) if hasattr(self, "branch1") else x
        return self.relu(shortcut + self.branch2(x))


class ResStage(nn.Module):
    """One ResNet stage for every pathway; blocks are named ``pathway{p}_res{i}``.

    Args:
        blocks: per pathway, the stage's blocks in order.
    """

    def __init__(self, blocks: Sequence[Sequence[ResBlock]]) -> None:
        super().__init__()
        self.num_pathways = len(blocks)
        self.num_blocks = tuple(len(b) for b in blocks)
        for p, pathway_blocks in enumerate(blocks):
            for i, block in enumerate(pathway_blocks):
                self.add_module(f"pathway{p}_res{i}", block)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for p, x in enumerate(xs):
            for i in range(self.num_blocks[p]):
                x = getattr(self, f"pathway{p}_res{i}")(x)
            out.append(x)
        return out


class SlowFastHead(nn.Module):
    """Pool each pathway, concatenate, dropout, then one or two Linear projections.

    Projections are ``projection`` (one head) or ``projection_verb`` + ``projection_noun``.
    """

    def __init__(self, in_channels: Sequence[int], cfg: SlowFastConfig) -> None:
        super().__init__()
        self.pool_kernels = cfg.reference_pool_kernels() if cfg.head_pooling == "reference" else None
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        dim = sum(in_channels)
        if len(cfg.num_classes) == 1:
            self.projection = nn.Linear(dim, cfg.num_classes[0])
            self.projection_names: tuple[str, ...] = ("projection",)
        else:
            self.projection_verb = nn.Linear(dim, cfg.num_classes[0])
            self.projection_noun = nn.Linear(dim, cfg.num_classes[1])
            self.projection_names = ("projection_verb", "projection_noun")

    def pool(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """Pathway maps ``[(N, C_p, T_p, F_p)]`` -> cells ``(N, T_c, F_c, sum C_p)``.

        ``"global"``: one cell per pathway (mean over its T x F). ``"reference"``: AvgPool
        with the fixed kernel, stride 1 (one cell at the trained length, more if longer).
        """
        if self.pool_kernels is None:
            pooled = [x.mean(dim=(2, 3), keepdim=True) for x in xs]  # (N, C_p, 1, 1)
        else:
            pooled = []
            for x, kernel in zip(xs, self.pool_kernels):
                if x.shape[2] < kernel[0] or x.shape[3] < kernel[1]:
                    raise ValueError(f"SlowFastHead: \"reference\" pooling needs a map of at least {kernel} "
                                     f"(the trained length), found {tuple(x.shape[2:])}; use head_pooling=\"global\" "
                                     f"or pad the input to num_frames")
                pooled.append(F.avg_pool2d(x, kernel, stride=1))  # (N, C_p, T_p - k_t + 1, F_p - k_f + 1)
            if len({tuple(p.shape[2:]) for p in pooled}) > 1:
                raise ValueError(f"SlowFastHead: \"reference\" pooling gives pathways different cell grids "
                                 f"{[tuple(p.shape[2:]) for p in pooled]}: with two pathways it accepts only the "
                                 f"trained length (num_frames); use head_pooling=\"global\"")
        cells = torch.cat(pooled, dim=1)  # (N, C, T_c, F_c)
        return cells.permute(0, 2, 3, 1)  # (N, T_c, F_c, C)

    def projections(self) -> list[nn.Linear]:
        return [getattr(self, n) for n in self.projection_names]

    def forward(self, cells: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Cells ``(N, T_c, F_c, C)`` (or features ``(N, C)``) -> scores per head.

        Training: logits ``(N, K)`` (averaged over cells; there is one cell in normal use).
        Eval: softmax over classes in every cell, averaged over the cells (the reference's
        test-time output), ``(N, K)`` probabilities. Two heads return ``(verb, noun)``.
        """
        if cells.dim() == 2:
            cells = cells[:, None, None, :]  # (N, 1, 1, C)
        x = self.dropout(cells)
        outs = []
        for proj in self.projections():
            y = proj(x)  # (N, T_c, F_c, K)
            y = y.mean(dim=(1, 2)) if self.training else y.softmax(dim=-1).mean(dim=(1, 2))
            outs.append(y)
        return outs[0] if len(outs) == 1 else (outs[0], outs[1])


# ---------------------------------------------------------------------------------- network


def init_conv_bn(module: nn.Module, zero_init_final_bn: bool) -> None:
    """PySlowFast's init of every convolution (1-, 2- or 3-D: ``c2_msra_fill``, Kaiming normal,
    fan_out) and BatchNorm (gamma 1, beta 0; gamma 0 in a block's final BN, the one marked
    ``is_final_bn``, when ``zero_init_final_bn``) inside ``module``."""
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.constant_(m.weight, 0.0 if zero_init_final_bn and getattr(m, "is_final_bn", False) else 1.0)
            nn.init.zeros_(m.bias)


def slow_frame_index(num_frames: int, alpha: int = 4, device: torch.device | None = None) -> torch.Tensor:
    """Frames of the Fast input that the Slow pathway sees: ``torch.linspace(0, T-1, T // alpha).long()``.

    This is the reference's selection (``datasets/utils.py pack_pathway_output``): float32
    linspace rounded down, not a strided slice (for T = 400 it picks 0, 4, 8, ..., 399).
    Eager code calls ``torch.linspace`` itself. While exporting (``torch.export`` / ONNX)
    the same float32 arithmetic is spelled out so the time axis can stay dynamic
    (``torch.linspace`` would freeze it); the tests check both agree for every T <= 4096.

    Returns:
        ``(T // alpha,)`` int64 indices.
    """
    n = num_frames // alpha
    if not torch.compiler.is_exporting():
        return torch.linspace(0, num_frames - 1, n, device=device).long()
    # torch's CPU linspace kernel: step = (end - start) / (n - 1) in float32; the first half
    # counts up from start, the second half down from end (one step: just start).
    i = torch.arange(n, device=device, dtype=torch.float32)
    end = torch.full((), num_frames - 1, dtype=torch.float32, device=device)
    step = end / torch.clamp(torch.full((), n - 1, dtype=torch.float32, device=device), min=1.0)
    return torch.where((i < n // 2) | (i == 0), step * i, end - step * (n - 1 - i)).long()


class SlowFast(nn.Module):
    """The Slow-Fast auditory network (or its Slow-only / Fast-only ResNet).

    Modules, in the reference's order: ``s1`` (stems), ``s1_fuse``, ``s2``, ``s2_fuse``,
    ``s3``, ``s3_fuse``, ``s4``, ``s4_fuse``, ``s5``, ``head`` (no ``*_fuse`` with one
    pathway). The reference's ``pathway{p}_pool`` after res2 is a 1 x 1 max pool
    (``_POOL1``), i.e. the identity, and is left out; it has no parameters.

    Args:
        config: the network definition.
    """

    def __init__(self, config: SlowFastConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else SlowFastConfig()
        if not isinstance(cfg, SlowFastConfig):
            raise ValueError(f"SlowFast: expected a SlowFastConfig, found {type(cfg).__name__}")
        self.config = cfg
        kinds = cfg.pathways
        two = cfg.arch == "slowfast"
        widths = [cfg.pathway_width(k) for k in kinds]

        self.s1 = PathwayStems([Stem(1, w, TEMPORAL_KERNELS[k][0], cfg) for k, w in zip(kinds, widths)])
        # Channels entering each pathway's next stage; Slow (pathway 0) grows by the lateral.
        in_ch = list(widths)
        if two:
            self.s1_fuse = FuseFastToSlow(widths[1], cfg)
            in_ch[0] += widths[1] * cfg.fusion_channel_ratio
        for stage, blocks in enumerate(cfg.stage_blocks):
            name = f"s{stage + 2}"
            stage_blocks = []
            for p, (kind, w) in enumerate(zip(kinds, widths)):
                inner, out = w * 2**stage, 4 * w * 2**stage
                tk = TEMPORAL_KERNELS[kind][stage + 1]
                stage_blocks.append([ResBlock(in_ch[p] if i == 0 else out, out, inner, tk,
                                              FREQUENCY_STRIDES[stage] if i == 0 else 1, cfg) for i in range(blocks)])
                in_ch[p] = out
            self.add_module(name, ResStage(stage_blocks))
            if two and stage < 3:  # laterals after res2, res3, res4; none after res5
                self.add_module(f"{name}_fuse", FuseFastToSlow(in_ch[1], cfg))
                in_ch[0] += in_ch[1] * cfg.fusion_channel_ratio
        self.head = SlowFastHead(in_ch, cfg)
        self._init_weights()

    # ------------------------------------------------------------------ init

    def _init_weights(self) -> None:
        """The reference's ``init_weights``: convs ``c2_msra_fill`` (Kaiming normal, fan_out),
        BN gamma 1 / beta 0 (gamma 0 in each block's ``c_bn``), Linear N(0, fc_init_std), bias 0."""
        init_conv_bn(self, self.config.zero_init_final_bn)
        self.reset_head()

    def reset_head(self) -> None:
        """Re-initialise the projection(s): weights N(0, fc_init_std), bias 0 (fine-tuning)."""
        for proj in self.head.projections():
            nn.init.normal_(proj.weight, mean=0.0, std=self.config.fc_init_std)
            nn.init.zeros_(proj.bias)

    # ------------------------------------------------------------------ forward

    @property
    def frame_multiple(self) -> int:
        """See :attr:`SlowFastConfig.frame_multiple`."""
        return self.config.frame_multiple

    def pathway_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The network input ``(N, 1, T, F)`` -> per-pathway inputs.

        Two pathways: ``[Slow (N, 1, T // alpha, F), Fast (N, 1, T, F)]`` with Slow's frames
        from :func:`slow_frame_index`. One pathway: ``[x]``.

        Raises:
            ValueError: on another shape, or (two pathways) ``T mod 16`` in 1..3, where
                Slow and the laterals disagree in length.
        """
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"SlowFast: expected a log-mel (N, 1, T, F), found shape {tuple(x.shape)}")
        if cfg.arch != "slowfast":
            return [x]
        frames = x.shape[2]
        if not torch.compiler.is_exporting():  # exporting: dynamic T is declared as a multiple of 16
            slow, lateral = self._stem_lengths(frames)
            if frames < cfg.alpha or slow != lateral:
                raise ValueError(f"SlowFast: {frames} input frames give Slow {slow} and the Fast->Slow laterals "
                                 f"{lateral} time steps (with alpha 4: T mod 16 in 1..3); "
                                 f"use pad_or_crop_frames(logmel, {cfg.frame_multiple})")
        slow = torch.index_select(x, 2, slow_frame_index(frames, cfg.alpha, x.device))  # (N, 1, T//alpha, F)
        return [slow, x]

    def _stem_lengths(self, frames: int) -> tuple[int, int]:
        """Time steps of Slow after the stem and of the first lateral, for ``frames`` input frames."""
        def stem(t: int, k: int) -> int:  # conv k, stride 2, pad k//2 -> max pool 3, stride 2, pad 1
            t = (t + 2 * (k // 2) - k) // 2 + 1
            return (t - 1) // 2 + 1

        cfg = self.config
        slow = stem(frames // cfg.alpha, TEMPORAL_KERNELS["slow"][0])
        fast = stem(frames, TEMPORAL_KERNELS["fast"][0])
        return slow, (fast + 2 * (cfg.fusion_kernel // 2) - cfg.fusion_kernel) // cfg.alpha + 1

    def forward_backbone(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Log-mel ``(N, 1, T, F)`` -> final maps per pathway.

        R50, T = 400, F = 128: ``[Slow (N, 2048, 25, 4), Fast (N, 256, 100, 4)]``.
        """
        xs = self.s1(self.pathway_inputs(x))
        if self.config.arch == "slowfast":
            xs = self.s1_fuse(xs)
        for stage in range(2, 6):
            xs = getattr(self, f"s{stage}")(xs)
            if self.config.arch == "slowfast" and stage < 5:
                xs = getattr(self, f"s{stage}_fuse")(xs)
        return xs

    def forward_cells(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(N, 1, T, F)`` -> pooled cells ``(N, T_c, F_c, feature_dim)`` (pre-dropout);
        ``T_c = F_c = 1`` with ``"global"`` pooling or at the trained length."""
        return self.head.pool(self.forward_backbone(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(N, 1, T, F)`` -> pooled features ``(N, feature_dim)`` (2304 for R50),
        before dropout; the mean of :meth:`forward_cells` over its cells."""
        return self.forward_cells(x).mean(dim=(1, 2))

    def forward_head(self, cells: torch.Tensor, pre_logits: bool = False
                     ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Cells ``(N, T_c, F_c, C)`` or features ``(N, C)`` -> scores (see :class:`SlowFastHead`).

        With ``pre_logits`` returns the features after dropout, ``(N, C)``.
        """
        if pre_logits:
            if cells.dim() == 4:
                cells = cells.mean(dim=(1, 2))
            return self.head.dropout(cells)
        return self.head(cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Log-mel ``(N, 1, T, F)`` (the Fast input; Slow's frames are picked inside).

        Returns:
            Training: logits ``(N, K)``; eval: probabilities ``(N, K)`` (softmax per pooled
            cell, averaged over cells). Two heads (EPIC-100) return ``(verb, noun)``.
        """
        return self.forward_head(self.forward_cells(x))

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits in any mode (per-cell logits averaged; dropout only in training): for losses in eval."""
        cells = self.head.dropout(self.forward_cells(x))
        outs = [proj(cells).mean(dim=(1, 2)) for proj in self.head.projections()]
        return outs[0] if len(outs) == 1 else (outs[0], outs[1])


# ---------------------------------------------------------------------------------- helpers


def pad_frames_edge(logmel: Any, num_frames: int) -> Any:
    """Right-pad the time axis (``-2``) to ``num_frames`` by repeating the last frame.

    The reference's rule for segments shorter than a clip (``np.pad(..., 'edge')``); longer
    input is returned unchanged.

    Args:
        logmel: ``(..., T, F)`` torch tensor or numpy array, ``T >= 1``.
        num_frames: frames wanted.
    """
    frames = logmel.shape[-2]
    if frames < 1:
        raise ValueError(f"pad_frames_edge: expected at least one frame, found shape {tuple(logmel.shape)}")
    if frames >= num_frames:
        return logmel
    if isinstance(logmel, np.ndarray):
        widths = [(0, 0)] * logmel.ndim
        widths[-2] = (0, num_frames - frames)
        return np.pad(logmel, widths, mode="edge")
    last = logmel[..., -1:, :]
    return torch.cat([logmel, last.expand(*last.shape[:-2], num_frames - frames, last.shape[-1])], dim=-2)


def pad_or_crop_frames(logmel: Any, multiple: int = 16) -> Any:
    """Bring the time axis (``-2``) to the nearest multiple of ``multiple`` frames.

    Slow-Fast needs it: with alpha 4 the Slow pathway and the Fast->Slow laterals have
    different lengths when ``T mod 16`` is 1, 2 or 3 (e.g. 401 frames from a 2.000 s window
    at 24 kHz; the reference's 1.999 s clips give 400). With ``r = T mod multiple``:

    * ``r == 0``: unchanged;
    * ``r < multiple / 2`` (and ``T >= multiple``): the first (oldest) ``r`` frames are
      dropped, so a live window keeps its newest audio;
    * otherwise: the last frame is repeated up to the next multiple (the reference's
      ``'edge'`` padding).

    Args:
        logmel: ``(..., T, F)`` torch tensor or numpy array.
        multiple: frame multiple (:attr:`SlowFast.frame_multiple`; 1 leaves ``T`` alone).

    Returns:
        The same type, ``(..., T', F)`` with ``T'`` a multiple of ``multiple``.
    """
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"pad_or_crop_frames: expected a positive int multiple, found {multiple!r}")
    frames = logmel.shape[-2]
    rest = frames % multiple
    if rest == 0:
        return logmel
    if frames >= multiple and 2 * rest < multiple:
        return logmel[..., rest:, :]
    return pad_frames_edge(logmel, frames + multiple - rest)


def count_macs(model: nn.Module, *inputs: torch.Tensor | None) -> int:
    """Multiply-adds of every convolution (1-, 2- or 3-D) and Linear for one forward of
    ``model(*inputs)`` (BN, pooling and activations excluded: what fvcore reports as "GFLOPs").
    Runs on the meta device (shapes only, no arithmetic); a model not already there is copied
    first, never modified. ``None`` inputs are passed through (a network's absent pathway).
    """
    import copy

    on_meta = all(t.is_meta for t in model.parameters())
    meta = model if on_meta else copy.deepcopy(model).to("meta").eval()  # pass model.to("meta") to skip the copy
    total = 0

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.modules.conv._ConvNd):
            total += output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
        else:
            total += output.numel() * module.in_features

    layers = (nn.modules.conv._ConvNd, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in meta.modules() if isinstance(m, layers)]
    try:
        with torch.no_grad():
            meta(*(None if x is None else x.to("meta") for x in inputs))
    finally:
        for h in handles:
            h.remove()
    return int(total)


# ------------------------------------------------------------------------- front ends


#: EPIC-KITCHENS-100 / EPIC-SOUNDS features (``audio_loader_epic.py``): 24 kHz, 10 ms Hann
#: window, 5 ms hop, 2048-point FFT, centred, magnitude, 128 HTK mels without normalisation,
#: fmin 0, fmax sr/2, ``log(mel + 1e-6)``.
EPIC_FRONTEND = FrontEndConfig(sample_rate=24000, n_fft=2048, win_length=240, hop_length=120, center=True,
                               power=1.0, n_mels=128, fmin=0.0, fmax=None, mel_scale="htk", mel_norm=None,
                               log=True, log_offset=1e-6)
#: VGG-Sound features (``audio_loader_vggsound.py``): the same at 16 kHz, 20 ms window, 10 ms hop.
VGGSOUND_FRONTEND = dataclasses.replace(EPIC_FRONTEND, sample_rate=16000, win_length=320, hop_length=160)
#: Slow-only EPIC (``configs/EPIC-KITCHENS/SLOW_R50.yaml``): hop 20 ms, window stays 10 ms.
EPIC_SLOW_FRONTEND = dataclasses.replace(EPIC_FRONTEND, hop_length=480)
#: Slow-only VGG-Sound (``configs/VGG-Sound/SLOW_R50.yaml``): hop 40 ms, window 20 ms.
VGGSOUND_SLOW_FRONTEND = dataclasses.replace(VGGSOUND_FRONTEND, hop_length=640)


@dataclass(frozen=True)
class ClipSpec:
    """The audio clip a model is trained on and the log-mel frames it gives.

    Attributes:
        frontend: feature definition.
        clip_samples: samples per clip (the reference slices ``CLIP_SECS * sr - 1``).
        num_frames: frames of the clip's log-mel (``frontend.num_frames(clip_samples)``);
            shorter segments are edge-padded to it.
    """

    frontend: FrontEndConfig
    clip_samples: int
    num_frames: int

    def __post_init__(self) -> None:
        found = self.frontend.num_frames(self.clip_samples)
        if found != self.num_frames:
            raise ValueError(f"ClipSpec.num_frames: expected {found} ({self.clip_samples} samples through the "
                             f"front end), found {self.num_frames}")

    @property
    def seconds(self) -> float:
        """Clip length in seconds (``clip_samples / sample_rate``)."""
        return self.clip_samples / self.frontend.sample_rate

    def logmel(self, wave: np.ndarray | torch.Tensor, frontend: FrontEnd | None = None) -> torch.Tensor:
        """Features of one clip as the reference computes them: the first ``clip_samples``
        samples, through the front end, edge-padded to ``num_frames``.

        Args:
            wave: ``(n,)`` mono samples at ``frontend.sample_rate``.
            frontend: a :class:`FrontEnd` for this spec's config (built if None).

        Returns:
            ``(1, num_frames, F)`` float32.
        """
        wave = torch.as_tensor(np.asarray(wave, dtype=np.float32) if not torch.is_tensor(wave) else wave).float()
        if wave.dim() != 1 or wave.numel() == 0:
            raise ValueError(f"ClipSpec.logmel: expected (n,) samples with n >= 1, found shape {tuple(wave.shape)}")
        fe = frontend if frontend is not None else FrontEnd(self.frontend)
        feats = fe(wave[None, : self.clip_samples])  # (1, T, F)
        return pad_frames_edge(feats, self.num_frames)


#: EPIC: ``CLIP_SECS 1.999`` -> 47 975 samples -> 400 frames (the Fast input).
EPIC_CLIP = ClipSpec(EPIC_FRONTEND, 47_975, 400)
#: VGG-Sound: ``CLIP_SECS 5.119`` -> 81 903 samples -> 512 frames.
VGGSOUND_CLIP = ClipSpec(VGGSOUND_FRONTEND, 81_903, 512)
#: Slow-only EPIC: 100 frames of 20 ms hop.
EPIC_SLOW_CLIP = ClipSpec(EPIC_SLOW_FRONTEND, 47_975, 100)
#: Slow-only VGG-Sound: 128 frames of 40 ms hop.
VGGSOUND_SLOW_CLIP = ClipSpec(VGGSOUND_SLOW_FRONTEND, 81_903, 128)


def clip_spec_for(dataset: str, arch: str = "slowfast") -> ClipSpec:
    """The reference clip for ``dataset`` (``"vggsound"``, ``"epic100"``, ``"epic_sounds"``) and ``arch``.

    Two pathways and Fast-only share the Fast front end; Slow-only uses its coarser hop.
    """
    if dataset not in ("vggsound", "epic100", "epic_sounds"):
        raise ValueError(f"clip_spec_for: expected dataset 'vggsound', 'epic100' or 'epic_sounds', found {dataset!r}")
    if arch not in ARCHS:
        raise ValueError(f"clip_spec_for: expected arch in {ARCHS}, found {arch!r}")
    if dataset == "vggsound":
        return VGGSOUND_SLOW_CLIP if arch == "slow" else VGGSOUND_CLIP
    return EPIC_SLOW_CLIP if arch == "slow" else EPIC_CLIP


# ---------------------------------------------------------------------------------- live


def _trained_window_seconds(frontend: FrontEndConfig, num_frames: int) -> float:
    """The reference clip's length when (frontend, frames) is one of its clips, else the
    fewest samples that give ``num_frames`` frames."""
    for clip in (EPIC_CLIP, VGGSOUND_CLIP, EPIC_SLOW_CLIP, VGGSOUND_SLOW_CLIP):
        if clip.frontend == frontend and clip.num_frames == num_frames:
            return clip.seconds
    samples = (num_frames - 1) * frontend.hop_length + frontend.n_fft - sum(frontend.padding)
    return max(samples, 1) / frontend.sample_rate


class SlowFastLabeler:
    """A :class:`models.live.Labeler` around a Slow-Fast network.

    Each call: waveform -> :class:`FrontEnd` -> edge-pad to the trained frame count if
    shorter (the reference's short-segment rule) -> :func:`pad_or_crop_frames` -> eval
    forward -> probabilities. With two heads (EPIC-100) the scores are the verb softmax
    followed by the noun softmax, and ``labels`` must list verbs then nouns.

    Args:
        model: a :class:`SlowFast` (put in eval mode here).
        frontend_config: the features the model was trained on (e.g. :data:`EPIC_FRONTEND`).
        labels: one per output score, in order.
        window_seconds: audio per call; default the model's trained clip
            (``num_frames`` frames: 1.999 s EPIC, 5.119 s VGG-Sound).

    Raises:
        ValueError: labels do not match the outputs, or the sample rate/bins do not fit.
    """

    def __init__(self, model: SlowFast, frontend_config: FrontEndConfig, labels: Sequence[str],
                 window_seconds: float | None = None) -> None:
        if not isinstance(model, SlowFast):
            raise ValueError(f"SlowFastLabeler: expected a SlowFast model, found {type(model).__name__}")
        cfg = model.config
        if frontend_config.output_bins != cfg.num_frequencies:
            raise ValueError(f"SlowFastLabeler: expected a front end with {cfg.num_frequencies} bins "
                             f"(model.config.num_frequencies), found {frontend_config.output_bins}")
        labels = tuple(labels)
        if len(labels) != sum(cfg.num_classes):
            raise ValueError(f"SlowFastLabeler.labels: expected {sum(cfg.num_classes)} labels for heads "
                             f"{cfg.num_classes}, found {len(labels)}")
        if window_seconds is None:
            window_seconds = _trained_window_seconds(frontend_config, cfg.num_frames)
        self.model = model.eval()
        self.frontend = FrontEnd(frontend_config).to(next(model.parameters()).device)
        self.labels = labels
        self.window = WindowSpec(seconds=float(window_seconds), sample_rate=frontend_config.sample_rate)

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        """Scores ``(C,)`` float32 in [0, 1] for ``audio`` ``(window.samples,)`` float32 (frame unused)."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"SlowFastLabeler: expected (samples,) mono audio, found shape {audio.shape}")
        device = self.frontend.window.device
        feats = self.frontend(torch.from_numpy(audio).to(device)[None])  # (1, T, F)
        feats = pad_frames_edge(feats, self.model.config.num_frames)
        feats = pad_or_crop_frames(feats, self.model.frame_multiple)
        out = self.model(feats[:, None])  # (1, 1, T, F) -> (1, K) or ((1, Kv), (1, Kn))
        scores = torch.cat(out, dim=1) if isinstance(out, tuple) else out
        return scores[0].float().cpu().numpy()


# ------------------------------------------------------------------------ registered variants


#: The registered variants' configs (``NETWORKS`` name -> config).
VARIANTS: dict[str, SlowFastConfig] = {
    "slowfast-vggsound": SlowFastConfig(num_classes=(309,), num_frames=512),
    "slowfast-epic100": SlowFastConfig(num_classes=(97, 300), num_frames=400),
    "slowfast-epicsounds": SlowFastConfig(num_classes=(44,), num_frames=400),
    "slow-vggsound": SlowFastConfig(arch="slow", num_classes=(309,), num_frames=128),
    "fast-vggsound": SlowFastConfig(arch="fast", num_classes=(309,), num_frames=512),
    "slow-epic100": SlowFastConfig(arch="slow", num_classes=(97, 300), num_frames=100),
    "fast-epic100": SlowFastConfig(arch="fast", num_classes=(97, 300), num_frames=400),
    "slowfast-test": SlowFastConfig(num_classes=(5,), width=8, blocks=(1, 1, 1, 1), num_frames=64),
}
_DESCRIPTIONS = {
    "slowfast-vggsound": "Slow-Fast R50, VGG-Sound (309 classes, 512 x 128 log-mel, 26.68 M params)",
    "slowfast-epic100": "Slow-Fast R50, EPIC-KITCHENS-100 verb+noun (97+300, 400 x 128, 26.88 M params)",
    "slowfast-epicsounds": "Slow-Fast R50, EPIC-SOUNDS (44 classes, 400 x 128, 26.07 M params)",
    "slow-vggsound": "Slow-only R50, VGG-Sound (128 frames of 40 ms hop, 24.71 M params)",
    "fast-vggsound": "Fast-only R50, VGG-Sound (512 frames, 0.47 M params)",
    "slow-epic100": "Slow-only R50, EPIC-KITCHENS-100 verb+noun (100 frames of 20 ms hop)",
    "fast-epic100": "Fast-only R50, EPIC-KITCHENS-100 verb+noun (400 frames)",
    "slowfast-test": "tiny Slow-Fast for tests (width 8, one block per stage, 5 classes, 64 frames)",
}


#: The variants as the family declares them (``models.families.NETWORKS`` is built from these).
NETWORK_ENTRIES: tuple[NetworkEntry, ...] = variant_entries(VARIANTS, _DESCRIPTIONS, SlowFast)
