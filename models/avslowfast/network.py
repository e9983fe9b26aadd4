"""Audiovisual SlowFast (Xiao, Lee, Grauman, Malik, Feichtenhofer, arXiv 2001.08740): the network.

Three pathways over one clip:

* **Slow** (pathway 0): ``T_s`` RGB frames, full width, temporal kernels only in res4/res5;
* **Fast** (pathway 1): ``alpha x T_s`` frames, ``1 / beta_inv`` of the channels, temporal
  kernels throughout; its frames are every one the clip holds, Slow's every ``alpha``-th;
* **Audio** (pathway 2, "Faster Audio"): a log-mel ``(T_a, F)`` at many more steps per second
  than either, ``1 / audio_beta_inv`` of Slow's channels, strided in time and frequency from
  res3 on; res2/res3 use time-frequency blocks (parallel ``[3 x 1]`` and ``[1 x 3]`` convs).

Laterals run A -> F -> S: at a fusion point the Fast features pass a strided temporal conv and
join Slow by concatenation (as in visual SlowFast), and the Audio features, averaged over
frequency, pass two temporal convs (the second strided to Slow's frame rate) and are **added**
to that concatenation. The head pools each pathway, concatenates and classifies.

Where each choice comes from (facts in ``shared/REFERENCE.md`` section 4):

* fusion points, audio widths, strides, stem and blocks, the A->FS lateral (64 inner
  channels): the authors' code (PySlowFast PR #219, ``configs/Kinetics/AVSLOWFAST_*``), whose
  ``FS_FUSION``/``AFS_FUSION`` put laterals after res3 and res4 only — the default here
  (``fast_fusion``, ``audio_fusion``);
* ``pytorchvideo.models.audio_visual_slowfast.create_audio_visual_slowfast`` differs in three
  settings, each a field here: laterals at all four points (after the stem and res2-res4), an
  inner lateral width of a quarter of the audio channels (``audio_lateral_channels=0``) and
  summed rather than concatenated time/frequency branches (``tf_merge``; the authors' code
  concatenates). :data:`PYTORCHVIDEO_8X8` sets them so; its shapes, parameters and
  multiply-adds were checked against pytorchvideo (README, "Audiovisual SlowFast").

Tensors: frames ``(N, 3, T_f, S, S)`` (the Fast clip; Slow's frames are picked inside with
:func:`models.slowfast.network.slow_frame_index`), log-mel ``(N, 1, T_a, F)``. Visual maps are
``(N, C, T, H, W)``, audio maps ``(N, C, T, F)``.

Example:
    >>> model = AVSlowFast(VARIANTS["avslowfast-test"]).eval()
    >>> probs = model(torch.zeros(2, 3, 8, 32, 32), torch.zeros(2, 1, 32, 16))   # (2, 5)
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from models.core.family import NetworkEntry, variant_entries
from models.slowfast.network import init_conv_bn, slow_frame_index

__all__ = [
    "AUDIO_BLOCK_KINDS",
    "FUSION_POINTS",
    "NETWORK_ENTRIES",
    "PATHWAYS",
    "PYTORCHVIDEO_8X8",
    "TF_MERGES",
    "VARIANTS",
    "VISUAL_TEMPORAL_KERNELS",
    "AVSlowFast",
    "AVSlowFastConfig",
    "Taps",
]

# ---------------------------------------------------------------------------------- tables

#: Which pathways a network has: all three, Slow + Fast (visual SlowFast), or Audio alone.
PATHWAYS = ("av", "visual", "audio")

#: Where laterals may join, in order: after the stem and after res2, res3, res4 (never res5).
FUSION_POINTS = ("stem", "res2", "res3", "res4")

#: Temporal kernel of conv1 and of each bottleneck's ``a`` conv in res2..res5 (PySlowFast's
#: ``_TEMPORAL_KERNEL_BASIS`` for SlowFast).
VISUAL_TEMPORAL_KERNELS = {
    "slow": (1, 1, 1, 3, 3),  # conv1, res2, res3, res4, res5
    "fast": (5, 3, 3, 3, 3),
}

#: Audio block per stage res2..res5 (``AUDIO_TRANS_NUM 2``): "tf" = 1x1 -> parallel [3x1] time
#: and [1x3] frequency convs -> 1x1; "plain" = 1x1 -> 3x3 over (time, frequency) -> 1x1.
AUDIO_BLOCK_KINDS = ("tf", "tf", "plain", "plain")

#: Stride in time and frequency of block 0 of res2..res5 in the Audio pathway (``AU_REDUCE_TF_DIM``).
AUDIO_STRIDES = (1, 2, 2, 2)

#: Spatial stride of block 0 of res2..res5 in Slow and Fast.
VISUAL_STRIDES = (1, 2, 2, 2)

#: How a "tf" block joins its two branches: "sum" (pytorchvideo) or "cat" (the authors' code).
TF_MERGES = ("sum", "cat")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


# ---------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class AVSlowFastConfig:
    """Everything that defines an AVSlowFast network (or its visual-only / audio-only parts).

    Defaults are the authors' ``AVSLOWFAST_8x8_R50`` on Kinetics-400.

    Raises:
        ValueError: a field out of range; the message names it and says ``expected ... found ...``.
    """

    pathways: str = "av"  # "av": Slow + Fast + Audio; "visual": Slow + Fast; "audio": Audio alone
    num_classes: int = 400  # MODEL.NUM_CLASSES
    width: int = 64  # RESNET.WIDTH_PER_GROUP: Slow's stem channels
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)  # bottlenecks in res2..res5 (R50)
    slow_frames: int = 8  # Slow's frames, T_s (8x8: 8; 4x16: 4)
    alpha: int = 4  # SLOWFAST.ALPHA: Fast frames per Slow frame (8x8: 4; 4x16: 8)
    beta_inv: int = 8  # SLOWFAST.BETA_INV: Slow channels per Fast channel
    fusion_ratio: int = 2  # SLOWFAST.FUSION_CONV_CHANNEL_RATIO: F->S lateral out = ratio x Fast channels
    fusion_kernel: int = 7  # SLOWFAST.FUSION_KERNEL_SZ: temporal kernel of the F->S conv (8x8: 7; 4x16: 5)
    image_size: int = 224  # side of the square frames (sets nothing but the examples and checks)
    audio_frames: int = 128  # DATA.AUDIO_FRAME_NUM: log-mel frames T_a (16 ms hop: ~2 s)
    audio_mels: int = 80  # DATA.AUDIO_MEL_NUM: mel bands F
    audio_beta_inv: int = 2  # Slow channels per Audio channel (beta_A = 1/2: Audio stem 32 at width 64)
    audio_stem_kernel: int = 9  # the Audio stem's parallel [k x 1] time and [1 x k] frequency convs
    tf_merge: str = "cat"  # "cat" (authors' code) or "sum" (pytorchvideo) of a "tf" block's branches
    # F->S laterals at (stem, res2, res3, res4): the authors' FS_FUSION [F, F, T, T]
    fast_fusion: tuple[bool, bool, bool, bool] = (False, False, True, True)
    # A->FS laterals at the same points: AFS_FUSION [F, F, T, T]
    audio_fusion: tuple[bool, bool, bool, bool] = (False, False, True, True)
    audio_lateral_kernel: int = 5  # temporal kernel of both A->FS convs
    # Inner channels of the A->FS lateral (the authors' 64); 0 = a quarter of the Audio
    # channels at that point (pytorchvideo's conv_fusion_channel_interm_dim 0.25).
    audio_lateral_channels: int = 64
    dropout: float = 0.5  # MODEL.DROPOUT_RATE before the projection
    sync_dim: int = 64  # AV synchronisation embedding size (heads exist only with sync_heads)
    sync_heads: bool = False  # build the AVS heads after res3, res4, res5 (models.avslowfast.sync)
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    fc_init_std: float = 0.01  # Linear weights ~ N(0, std), bias 0
    zero_init_final_bn: bool = True  # gamma 0 in each bottleneck's last BN

    def __post_init__(self) -> None:
        def fail(name: str, expected: str) -> None:
            raise ValueError(f"AVSlowFastConfig.{name}: expected {expected}, found {getattr(self, name)!r}")

        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.pathways not in PATHWAYS:
            fail("pathways", " or ".join(map(repr, PATHWAYS)))
        for name in ("num_classes", "width", "slow_frames", "alpha", "beta_inv", "fusion_ratio", "fusion_kernel",
                     "image_size", "audio_frames", "audio_mels", "audio_beta_inv", "audio_stem_kernel",
                     "audio_lateral_kernel", "sync_dim"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(name, "a positive int")
            set_(name, int(getattr(self, name)))
        if not _is_int(self.audio_lateral_channels) or self.audio_lateral_channels < 0:
            fail("audio_lateral_channels", "an int >= 0 (0: a quarter of the audio channels)")
        blocks = tuple(self.blocks) if isinstance(self.blocks, (tuple, list)) else ()
        if len(blocks) != 4 or not all(_is_int(b) and b >= 1 for b in blocks):
            fail("blocks", "four positive ints (bottlenecks in res2..res5)")
        set_("blocks", tuple(int(b) for b in blocks))
        for name in ("fast_fusion", "audio_fusion"):
            flags = tuple(getattr(self, name)) if isinstance(getattr(self, name), (tuple, list)) else ()
            if len(flags) != 4 or not all(isinstance(f, (bool, np.bool_)) for f in flags):
                fail(name, f"four bools, one per fusion point {FUSION_POINTS}")
            set_(name, tuple(bool(f) for f in flags))
        if self.width % self.beta_inv or self.width % self.audio_beta_inv:
            fail("width", f"a multiple of beta_inv={self.beta_inv} and audio_beta_inv={self.audio_beta_inv}")
        for name in ("fusion_kernel", "audio_lateral_kernel", "audio_stem_kernel"):
            if getattr(self, name) % 2 == 0:
                fail(name, "an odd int (padded by k // 2 on both sides)")
        if self.tf_merge not in TF_MERGES:
            fail("tf_merge", " or ".join(map(repr, TF_MERGES)))
        if self.uses_audio and (self.audio_frames % 8 or self.audio_mels % 8):
            fail("audio_frames", f"audio_frames and audio_mels multiples of 8 (three stride-2 stages), "
                                 f"found {self.audio_frames} x {self.audio_mels}")
        if self.pathways == "av":
            for k, point in enumerate(FUSION_POINTS):
                steps = self.audio_steps_at(k)
                if (self.audio_fusion[k] or (self.sync_heads and k >= 2)) and steps % self.slow_frames:
                    fail("audio_frames", f"audio time steps at {point} ({steps}) a multiple of slow_frames="
                                         f"{self.slow_frames} (the A->FS lateral strides down to Slow's rate)")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            fail("dropout", "a number in [0, 1)")
        for name in ("bn_eps", "bn_momentum", "fc_init_std"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                fail(name, "a finite number > 0")
        for name in ("sync_heads", "zero_init_final_bn"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "a bool")
        if self.sync_heads and self.pathways != "av":
            fail("sync_heads", "False unless pathways='av' (synchronisation needs both modalities)")

    # --------------------------------------------------------------------- derived

    @property
    def uses_visual(self) -> bool:
        return self.pathways in ("av", "visual")

    @property
    def uses_audio(self) -> bool:
        return self.pathways in ("av", "audio")

    @property
    def fast_frames(self) -> int:
        """Frames of the clip the network takes (Fast's): ``alpha x slow_frames``."""
        return self.alpha * self.slow_frames

    @property
    def fast_width(self) -> int:
        return self.width // self.beta_inv

    @property
    def audio_width(self) -> int:
        return self.width // self.audio_beta_inv

    @property
    def au_alpha(self) -> float:
        """``AU_ALPHA``: audio frames per Slow frame at the input (32 for 4x16, 16 for 8x8)."""
        return self.audio_frames / self.slow_frames

    def audio_steps_at(self, point: int) -> int:
        """Audio time steps at fusion point ``point`` (0 = after the stem .. 3 = after res4)."""
        return self.audio_frames // math.prod(AUDIO_STRIDES[:point])

    @property
    def feature_dim(self) -> int:
        """Channels of the pooled features the head classifies (3328 for R50 with audio)."""
        dim = 0
        if self.uses_visual:
            dim += 32 * self.width + 32 * self.fast_width
        if self.uses_audio:
            dim += 32 * self.audio_width
        return dim


#: pytorchvideo's ``create_audio_visual_slowfast`` defaults (8x8 R50, Kinetics-400): laterals at
#: every point, a quarter-width A->FS inner conv, summed time/frequency branches.
PYTORCHVIDEO_8X8 = AVSlowFastConfig(fast_fusion=(True,) * 4, audio_fusion=(True,) * 4, audio_lateral_channels=0,
                                    tf_merge="sum")


# ---------------------------------------------------------------------------------- blocks


def _bn3(channels: int, cfg: AVSlowFastConfig) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum)


def _bn2(channels: int, cfg: AVSlowFastConfig) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum)


def _pad(kernel: Sequence[int]) -> tuple[int, ...]:
    return tuple(k // 2 for k in kernel)


class VisualStem(nn.Module):
    """conv ``[Tk x 7 x 7]`` stride (1, 2, 2) -> BN -> ReLU -> max pool ``[1 x 3 x 3]`` stride (1, 2, 2).

    ``(N, 3, T, S, S)`` -> ``(N, C, T, S/4, S/4)`` (rounded up).
    """

    def __init__(self, out_channels: int, temporal_kernel: int, cfg: AVSlowFastConfig) -> None:
        super().__init__()
        kernel = (temporal_kernel, 7, 7)
        self.conv = nn.Conv3d(3, out_channels, kernel, stride=(1, 2, 2), padding=_pad(kernel), bias=False)
        self.bn = _bn3(out_channels, cfg)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class AudioStem(nn.Module):
    """Parallel ``[k x 1]`` (time) and ``[1 x k]`` (frequency) convs, summed -> BN -> ReLU; no
    stride, no pool (the authors' audio stem). ``(N, 1, T, F)`` -> ``(N, C, T, F)``."""

    def __init__(self, out_channels: int, cfg: AVSlowFastConfig) -> None:
        super().__init__()
        k = cfg.audio_stem_kernel
        self.conv_t = nn.Conv2d(1, out_channels, (k, 1), padding=(k // 2, 0), bias=False)
        self.conv_f = nn.Conv2d(1, out_channels, (1, k), padding=(0, k // 2), bias=False)
        self.bn = _bn2(out_channels, cfg)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv_t(x) + self.conv_f(x)))


class VisualBottleneck(nn.Module):
    """``a``: ``[Tk x 1 x 1]`` -> ``b``: ``[1 x 3 x 3]`` (spatial stride s) -> ``c``: 1x1x1; BN after
    each, ReLU after ``a`` and ``b``; ``c_bn`` is the block's final BN."""

    def __init__(self, cin: int, cout: int, inner: int, temporal_kernel: int, stride: int,
                 cfg: AVSlowFastConfig) -> None:
        super().__init__()
        self.a = nn.Conv3d(cin, inner, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0), bias=False)
        self.a_bn = _bn3(inner, cfg)
        self.b = nn.Conv3d(inner, inner, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.b_bn = _bn3(inner, cfg)
        self.c = nn.Conv3d(inner, cout, 1, bias=False)
        self.c_bn = _bn3(cout, cfg)
        self.c_bn.is_final_bn = True
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.a_bn(self.a(x)))
        x = self.relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class AudioBottleneck(nn.Module):
    """``a``: 1x1 -> ``b``: a 3x3 conv over (time, frequency) ("plain"), or parallel ``[3 x 1]``
    and ``[1 x 3]`` convs each with BN and ReLU, summed or concatenated ("tf") -> ``c``: 1x1.

    A stride ``s`` is split as pytorchvideo does: time in ``a`` (the 1x1 conv), frequency in ``b``
    (checked there: the same multiply-adds to the unit)."""

    def __init__(self, cin: int, cout: int, inner: int, kind: str, stride: int, cfg: AVSlowFastConfig) -> None:
        super().__init__()
        self.kind = kind
        self.a = nn.Conv2d(cin, inner, 1, stride=(stride, 1), bias=False)
        self.a_bn = _bn2(inner, cfg)
        if kind == "plain":
            self.b = nn.Conv2d(inner, inner, 3, stride=(1, stride), padding=1, bias=False)
            self.b_bn = _bn2(inner, cfg)
            c_in = inner
        else:
            self.b_t = nn.Conv2d(inner, inner, (3, 1), stride=(1, stride), padding=(1, 0), bias=False)
            self.b_t_bn = _bn2(inner, cfg)
            self.b_f = nn.Conv2d(inner, inner, (1, 3), stride=(1, stride), padding=(0, 1), bias=False)
            self.b_f_bn = _bn2(inner, cfg)
            c_in = 2 * inner if cfg.tf_merge == "cat" else inner
        self.merge = cfg.tf_merge
        self.c = nn.Conv2d(c_in, cout, 1, bias=False)
        self.c_bn = _bn2(cout, cfg)
        self.c_bn.is_final_bn = True
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.a_bn(self.a(x)))
        if self.kind == "plain":
            x = self.relu(self.b_bn(self.b(x)))
        else:
            t = self.relu(self.b_t_bn(self.b_t(x)))
            f = self.relu(self.b_f_bn(self.b_f(x)))
            x = torch.cat([t, f], dim=1) if self.merge == "cat" else t + f
        return self.c_bn(self.c(x))


class ResBlock(nn.Module):
    """``ReLU(shortcut(x) + branch2(x))``; the shortcut ``branch1`` (1x1 conv with the block's
    stride, + BN) exists when channels or resolution change."""

    def __init__(self, branch2: nn.Module, cin: int, cout: int, stride: tuple[int, ...], visual: bool,
                 cfg: AVSlowFastConfig) -> None:
        super().__init__()
        if cin != cout or any(s != 1 for s in stride):
            conv = nn.Conv3d if visual else nn.Conv2d
            self.branch1 = conv(cin, cout, 1, stride=stride, bias=False)
            self.branch1_bn = (_bn3 if visual else _bn2)(cout, cfg)
        self.branch2 = branch2
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.branch1_bn(self.branch1(x)) if hasattr(self, "branch1") else x
        return self.relu(shortcut + self.branch2(x))


class FastToSlow(nn.Module):
    """F->S lateral: ``[k x 1 x 1]`` conv, temporal stride ``alpha``, ``C_f -> ratio x C_f``, BN, ReLU.

    ``(N, C_f, T_f, H, W)`` -> ``(N, ratio C_f, T_f / alpha, H, W)``, concatenated onto Slow.
    """

    def __init__(self, fast_channels: int, cfg: AVSlowFastConfig) -> None:
        super().__init__()
        out = fast_channels * cfg.fusion_ratio
        k = cfg.fusion_kernel
        self.conv_f2s = nn.Conv3d(fast_channels, out, (k, 1, 1), stride=(cfg.alpha, 1, 1), padding=(k // 2, 0, 0),
                                  bias=False)
        self.bn = _bn3(out, cfg)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, fast: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv_f2s(fast)))


class AudioToFastSlow(nn.Module):
    """A->FS lateral: mean over frequency -> ``[k x 1]`` conv to ``inner`` channels -> BN -> ReLU ->
    ``[k x 1]`` conv with temporal stride ``T_a / T_s`` to the fused visual channels -> BN -> ReLU.

    ``(N, C_a, T_a, F_a)`` -> ``(N, C_v, T_s, 1, 1)``, added to ``cat(Slow, F->S)`` (broadcast over
    H, W).
    """

    def __init__(self, audio_channels: int, visual_channels: int, stride: int, cfg: AVSlowFastConfig) -> None:
        super().__init__()
        inner = cfg.audio_lateral_channels or audio_channels // 4
        k = cfg.audio_lateral_kernel
        self.conv_a = nn.Conv2d(audio_channels, inner, (k, 1), padding=(k // 2, 0), bias=False)
        self.bn_a = _bn2(inner, cfg)
        self.conv_b = nn.Conv2d(inner, visual_channels, (k, 1), stride=(stride, 1), padding=(k // 2, 0), bias=False)
        self.bn_b = _bn2(visual_channels, cfg)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio.mean(dim=3, keepdim=True)  # (N, C_a, T_a, 1)
        x = self.relu(self.bn_a(self.conv_a(x)))
        x = self.relu(self.bn_b(self.conv_b(x)))  # (N, C_v, T_s, 1)
        return x.unsqueeze(-1)  # (N, C_v, T_s, 1, 1)


class Stage(nn.Module):
    """One ResNet stage for every pathway present: ``slow``, ``fast``, ``audio`` block lists."""

    def __init__(self, pathways: dict[str, list[nn.Module]]) -> None:
        super().__init__()
        for name, blocks in pathways.items():
            self.add_module(name, nn.Sequential(*blocks))


class Taps(NamedTuple):
    """What the synchronisation loss reads from one forward (each entry ``None`` when not computed).

    Attributes:
        visual: per AVS stage (res3, res4, res5), the visual features before audio joins, pooled
            over time and space: ``(N, C_v)``.
        audio: per AVS stage, the audio side pooled over time: the A->FS lateral's output at
            res3/res4 ``(N, C_v)``, the Audio pathway's res5 map at res5 ``(N, 32 C_a0)``.
        active_fusion: index of the earliest fusion point where audio reached the visual
            pathways this forward (0..3), or None (none: DropPathway, or no audio laterals).
    """

    visual: tuple[torch.Tensor, ...]
    audio: tuple[torch.Tensor, ...]
    active_fusion: int | None


#: AVS heads sit after these stages; 2, 3 are the fusion points after res3, res4, 4 is res5.
SYNC_STAGES = (2, 3, 4)


class AVSlowFast(nn.Module):
    """The AVSlowFast network, or its visual-only or audio-only parts (``config.pathways``).

    Modules: ``s1`` (stems ``slow``/``fast``/``audio``), ``s{2..5}`` (stages), ``s{1..4}_fuse_fs``
    (F->S laterals), ``s{1..4}_fuse_afs`` (A->FS laterals), ``head`` (``projection``), and with
    ``sync_heads`` ``sync_visual{2,3,4}`` / ``sync_audio{2,3,4}`` (Linear to ``sync_dim``).

    Args:
        config: the network definition.
    """

    def __init__(self, config: AVSlowFastConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else AVSlowFastConfig()
        if not isinstance(cfg, AVSlowFastConfig):
            raise TypeError(f"AVSlowFast: expected an AVSlowFastConfig, found {type(cfg).__name__}")
        self.config = cfg
        ch: dict[str, int] = {}  # channels entering the next stage, per pathway
        stems = {}
        if cfg.uses_visual:
            stems["slow"] = VisualStem(cfg.width, VISUAL_TEMPORAL_KERNELS["slow"][0], cfg)
            stems["fast"] = VisualStem(cfg.fast_width, VISUAL_TEMPORAL_KERNELS["fast"][0], cfg)
            ch.update(slow=cfg.width, fast=cfg.fast_width)
        if cfg.uses_audio:
            stems["audio"] = AudioStem(cfg.audio_width, cfg)
            ch["audio"] = cfg.audio_width
        self.s1 = nn.ModuleDict(stems)
        self._sync_channels: dict[int, tuple[int, int]] = {}
        for stage in range(4):  # res2..res5; the fusion point before it is `stage`
            if cfg.uses_visual:
                self._build_fusion(stage, ch)
            blocks: dict[str, list[nn.Module]] = {}
            for name, cin in list(ch.items()):
                width = {"slow": cfg.width, "fast": cfg.fast_width, "audio": cfg.audio_width}[name]
                inner, out = width * 2**stage, 4 * width * 2**stage
                blocks[name] = [self._block(name, stage, cin if i == 0 else out, out, inner, i == 0)
                                for i in range(cfg.blocks[stage])]
                ch[name] = out
            self.add_module(f"s{stage + 2}", Stage(blocks))
        if cfg.sync_heads:
            self._sync_channels[4] = (ch["slow"] + ch["fast"], ch["audio"])
            for s, (cv, ca) in self._sync_channels.items():
                self.add_module(f"sync_visual{s}", nn.Linear(cv, cfg.sync_dim))
                self.add_module(f"sync_audio{s}", nn.Linear(ca, cfg.sync_dim))
        self.head_dim = sum(ch.values())
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.projection = nn.Linear(self.head_dim, cfg.num_classes)
        self._init_weights()

    def _build_fusion(self, point: int, ch: dict[str, int]) -> None:
        """Laterals at fusion point ``point`` (before res{point + 2}); updates Slow's channels."""
        cfg = self.config
        if cfg.fast_fusion[point]:
            self.add_module(f"s{point + 1}_fuse_fs", FastToSlow(ch["fast"], cfg))
            ch["slow"] += ch["fast"] * cfg.fusion_ratio
        audio_here = cfg.pathways == "av" and (cfg.audio_fusion[point] or (cfg.sync_heads and point in SYNC_STAGES))
        if audio_here:
            stride = cfg.audio_steps_at(point) // cfg.slow_frames
            self.add_module(f"s{point + 1}_fuse_afs", AudioToFastSlow(ch["audio"], ch["slow"], stride, cfg))
            if cfg.sync_heads and point in SYNC_STAGES:
                self._sync_channels[point] = (ch["slow"], ch["slow"])

    def _block(self, pathway: str, stage: int, cin: int, cout: int, inner: int, first: bool) -> ResBlock:
        cfg = self.config
        if pathway == "audio":
            s = AUDIO_STRIDES[stage] if first else 1
            return ResBlock(AudioBottleneck(cin, cout, inner, AUDIO_BLOCK_KINDS[stage], s, cfg), cin, cout, (s, s),
                            False, cfg)
        s = VISUAL_STRIDES[stage] if first else 1
        tk = VISUAL_TEMPORAL_KERNELS[pathway][stage + 1]
        return ResBlock(VisualBottleneck(cin, cout, inner, tk, s, cfg), cin, cout, (1, s, s), True, cfg)

    def _init_weights(self) -> None:
        """PySlowFast's init: convs Kaiming normal (fan_out), BN gamma 1 / beta 0 (gamma 0 in each
        bottleneck's final BN), Linear N(0, fc_init_std), bias 0."""
        init_conv_bn(self, self.config.zero_init_final_bn)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=self.config.fc_init_std)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ forward

    def _check(self, frames: torch.Tensor | None, logmel: torch.Tensor | None) -> None:
        cfg = self.config
        if cfg.uses_visual and (frames is None or frames.dim() != 5 or frames.shape[1] != 3
                                or frames.shape[2] != cfg.fast_frames):
            raise ValueError(f"AVSlowFast: expected frames (N, 3, {cfg.fast_frames}, H, W), found "
                             f"{None if frames is None else tuple(frames.shape)}")
        if cfg.uses_audio and (logmel is None or logmel.dim() != 4 or logmel.shape[1] != 1
                               or tuple(logmel.shape[2:]) != (cfg.audio_frames, cfg.audio_mels)):
            raise ValueError(f"AVSlowFast: expected a log-mel (N, 1, {cfg.audio_frames}, {cfg.audio_mels}), found "
                             f"{None if logmel is None else tuple(logmel.shape)}")

    def forward_maps(self, frames: torch.Tensor | None, logmel: torch.Tensor | None, *, audio_laterals: bool = True,
                     taps: bool = False, trace: list | None = None) -> tuple[dict[str, torch.Tensor], Taps | None]:
        """Inputs -> final maps per pathway, and the synchronisation taps.

        Args:
            frames: ``(N, 3, T_f, S, S)`` normalised RGB (None without visual pathways).
            logmel: ``(N, 1, T_a, F)`` normalised log-mel (None without the Audio pathway).
            audio_laterals: False switches every A->FS lateral off (DropPathway): its output is
                multiplied by 0; the Audio pathway still runs and still feeds the head.
            taps: also return :class:`Taps` (needs ``sync_heads``).
            trace: a list that receives ``(name, shape)`` at each fusion point (for tests).

        Returns:
            ``{"slow": (N, 32w, T_s, S/32, S/32), "fast": (N, 32w/beta_inv, T_f, ...),
            "audio": (N, 32w/audio_beta_inv, T_a/8, F/8)}`` (pathways present), and the taps or None.
        """
        cfg = self.config
        self._check(frames, logmel)
        xs: dict[str, torch.Tensor] = {}
        if cfg.uses_visual:
            slow = torch.index_select(frames, 2, slow_frame_index(cfg.fast_frames, cfg.alpha, frames.device))
            xs["slow"], xs["fast"] = self.s1["slow"](slow), self.s1["fast"](frames)
        if cfg.uses_audio:
            xs["audio"] = self.s1["audio"](logmel)
        tap_v: dict[int, torch.Tensor] = {}
        tap_a: dict[int, torch.Tensor] = {}
        active: int | None = None
        for stage in range(4):
            if cfg.uses_visual:
                if cfg.fast_fusion[stage]:
                    lateral = getattr(self, f"s{stage + 1}_fuse_fs")(xs["fast"])
                    xs["slow"] = torch.cat([xs["slow"], lateral], dim=1)  # (N, C_s + ratio C_f, T_s, H, W)
                if hasattr(self, f"s{stage + 1}_fuse_afs"):
                    a = getattr(self, f"s{stage + 1}_fuse_afs")(xs["audio"])  # (N, C_v, T_s, 1, 1)
                    if taps and stage in SYNC_STAGES:
                        tap_v[stage] = xs["slow"].mean(dim=(2, 3, 4))
                        tap_a[stage] = a.mean(dim=(2, 3, 4))  # (N, C_v)
                    if cfg.audio_fusion[stage]:
                        if audio_laterals:
                            xs["slow"] = xs["slow"] + a
                            active = stage if active is None else active
                        else:
                            xs["slow"] = xs["slow"] + 0.0 * a  # keeps the lateral in the graph (DDP)
                    if trace is not None:
                        trace.append((f"afs{stage}", tuple(a.shape)))
                if trace is not None:
                    trace.append((f"fuse{stage}", tuple(xs["slow"].shape)))
            stage_module = getattr(self, f"s{stage + 2}")
            xs = {name: getattr(stage_module, name)(x) for name, x in xs.items()}
            if trace is not None:
                trace.extend((f"res{stage + 2}_{name}", tuple(x.shape)) for name, x in xs.items())
        if taps:
            if not cfg.sync_heads:
                raise ValueError("AVSlowFast.forward_maps(taps=True): the network has no AVS heads (sync_heads=False)")
            tap_v[4] = torch.cat([xs["slow"].mean(dim=(2, 3, 4)), xs["fast"].mean(dim=(2, 3, 4))], dim=1)
            tap_a[4] = xs["audio"].mean(dim=(2, 3))
            return xs, Taps(tuple(tap_v[s] for s in SYNC_STAGES), tuple(tap_a[s] for s in SYNC_STAGES), active)
        return xs, None

    def forward_features(self, frames: torch.Tensor | None, logmel: torch.Tensor | None, *,
                         audio_laterals: bool = True) -> torch.Tensor:
        """Pooled features before dropout, ``(N, feature_dim)``: each pathway averaged over its
        time and space (frequency) cells, concatenated Slow, Fast, Audio."""
        xs, _ = self.forward_maps(frames, logmel, audio_laterals=audio_laterals)
        return self.pool(xs)

    def pool(self, xs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Final maps -> ``(N, feature_dim)``: global average per pathway, concatenated."""
        return torch.cat([x.flatten(2).mean(dim=2) for x in xs.values()], dim=1)

    def forward(self, frames: torch.Tensor | None, logmel: torch.Tensor | None, *,
                audio_laterals: bool = True) -> torch.Tensor:
        """Logits ``(N, num_classes)`` (dropout only in training)."""
        return self.projection(self.dropout(self.forward_features(frames, logmel, audio_laterals=audio_laterals)))

    def sync_embeddings(self, taps: Taps) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Taps -> per AVS stage the visual and audio embeddings ``(N, sync_dim)``, L2-normalised
        and scaled by 0.5 (so any two lie within distance 1)."""
        vs, as_ = [], []
        for s, v, a in zip(SYNC_STAGES, taps.visual, taps.audio):
            vs.append(0.5 * nn.functional.normalize(getattr(self, f"sync_visual{s}")(v), dim=1))
            as_.append(0.5 * nn.functional.normalize(getattr(self, f"sync_audio{s}")(a), dim=1))
        return vs, as_

    def audio_taps(self, logmel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The audio side of the taps for audio alone (misaligned audio): the Audio pathway and
        the A->FS convs at res3/res4, without the visual pathways. ``(N, C)`` per AVS stage."""
        x = self.s1["audio"](logmel)
        out = {}
        for stage in range(4):
            if stage in SYNC_STAGES:
                a = getattr(self, f"s{stage + 1}_fuse_afs")(x)
                out[stage] = a.mean(dim=(2, 3, 4))
            x = getattr(self, f"s{stage + 2}").audio(x)
        out[4] = x.mean(dim=(2, 3))
        return tuple(out[s] for s in SYNC_STAGES)


# ------------------------------------------------------------------------ registered variants

#: The registered variants' configs (``NETWORKS`` name -> config).
VARIANTS: dict[str, AVSlowFastConfig] = {
    "avslowfast-8x8-r50": AVSlowFastConfig(),
    "avslowfast-4x16-r50": AVSlowFastConfig(slow_frames=4, alpha=8, fusion_kernel=5),
    "slowfast-visual-8x8-r50": AVSlowFastConfig(pathways="visual"),
    "avslowfast-lite": AVSlowFastConfig(num_classes=12, width=16, blocks=(1, 1, 1, 1), slow_frames=2, alpha=4,
                                        image_size=56, audio_frames=64, audio_mels=80, audio_lateral_channels=16,
                                        dropout=0.3),
    "avslowfast-test": AVSlowFastConfig(num_classes=5, width=8, blocks=(1, 1, 1, 1), slow_frames=2, alpha=4,
                                        image_size=32, audio_frames=32, audio_mels=16, audio_lateral_channels=4,
                                        sync_heads=True, sync_dim=8),
}
_DESCRIPTIONS = {
    "avslowfast-8x8-r50": "AVSlowFast 8x8 R50 (Kinetics-400; 32 frames 224x224 + 128x80 log-mel)",
    "avslowfast-4x16-r50": "AVSlowFast 4x16 R50 (Kinetics-400; 32 frames, Slow 4, alpha 8)",
    "slowfast-visual-8x8-r50": "visual SlowFast 8x8 R50, the audio pathway off (the ablation's baseline)",
    "avslowfast-lite": "small AVSlowFast for 2 CPU cores (8 frames 56x56 + 64x80 log-mel, 12 classes)",
    "avslowfast-test": "tiny AVSlowFast for tests (width 8, one block per stage, AVS heads)",
}


#: The variants as the family declares them (``models.families.NETWORKS`` is built from these).
NETWORK_ENTRIES: tuple[NetworkEntry, ...] = variant_entries(VARIANTS, _DESCRIPTIONS, AVSlowFast)
