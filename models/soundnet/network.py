"""SoundNet (Aytar, Vondrick & Torralba, NeurIPS 2016): fully convolutional 1-D networks on raw
22,050 Hz waveforms, with an object (1000 ImageNet classes) and a scene (401 Places2 classes)
head that answer once per output step.

The two paper sizes follow the authors' Torch7 code (cvondrick/soundnet ``main_train.lua``,
8 layers, and ``main_train_small.lua``, 5 layers); every convolution there is
``SpatialConvolution(in, out, 1, kernel, 1, stride, 0, padding)`` with time on the second axis,
here a ``Conv1d(in, out, kernel, stride, padding)`` with a bias. Each feature layer is conv ->
batch norm -> ReLU, some followed by a non-overlapping max pool (floor mode, as Torch's
``SpatialMaxPooling``). The two heads are parallel convolutions on the last feature layer; the
loss takes a log-softmax over classes at every time step. Input scaling: the authors' loader
reads integer audio and multiplies by 2^-23, so a full-scale waveform spans [-256, 256]; here
the network takes float audio in [-1, 1] and multiplies by ``input_scale`` = 256 itself. No
mean subtraction (their ``mean=0``).

Shapes for a 20 s input (441,000 samples), 8 layers (checked by tests/test_soundnet.py)::

    conv1 16 x 220501  pool1 16 x 27562   conv2 32 x 13782  pool2 32 x 1722
    conv3 64 x 862     conv4 128 x 432    conv5 256 x 217   pool5 256 x 54
    conv6 512 x 28     conv7 1024 x 15    objects 1000 x 4  scenes 401 x 4

Every layer runs on any length; the heads need conv7 to be at least 8 steps long (about 10.6 s
of audio), the feature layers much less, so live windows of a few seconds use a feature layer
(:mod:`models.soundnet.transfer`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 22_050
#: The authors' training crop: 20 s.
TRAIN_SAMPLES = 20 * SAMPLE_RATE
OBJECT_CLASSES = 1000
SCENE_CLASSES = 401


@dataclass(frozen=True)
class ConvSpec:
    """One feature layer: conv -> batch norm -> ReLU, then an optional max pool.

    Attributes:
        out_channels: filters.
        kernel, stride, padding: of the convolution, in samples of its input.
        pool: max-pool size = stride (0: no pool); its output is tapped as ``pool<i>``.
    """

    out_channels: int
    kernel: int
    stride: int
    padding: int
    pool: int = 0


@dataclass(frozen=True)
class SoundNetConfig:
    """A SoundNet's shape.

    Attributes:
        layers: the feature layers, named ``conv1 ..`` in order.
        head_kernel, head_stride, head_padding: the two heads' convolution.
        object_classes: outputs of the object head (ImageNet: 1000).
        scene_classes: outputs of the scene head (Places2: 401); 0: no scene head.
        input_scale: the factor applied to [-1, 1] audio (the authors' 2^-23 on 32-bit integers = 256).
        name: for listings and metadata.
    """

    layers: tuple[ConvSpec, ...]
    head_kernel: int
    head_stride: int
    head_padding: int
    object_classes: int = OBJECT_CLASSES
    scene_classes: int = SCENE_CLASSES
    input_scale: float = 256.0
    name: str = "soundnet8"

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("SoundNetConfig.layers: expected at least one feature layer, found none")
        for i, spec in enumerate(self.layers, 1):
            if min(spec.out_channels, spec.kernel, spec.stride) < 1 or spec.padding < 0 or spec.pool < 0:
                raise ValueError(f"SoundNetConfig.layers[conv{i}]: expected channels, kernel, stride >= 1 and "
                                 f"padding, pool >= 0, found {spec}")
        if min(self.head_kernel, self.head_stride, self.object_classes) < 1 or self.head_padding < 0 or self.scene_classes < 0:
            raise ValueError(f"SoundNetConfig head: expected kernel, stride, object_classes >= 1, padding and "
                             f"scene_classes >= 0, found kernel {self.head_kernel}, stride {self.head_stride}, "
                             f"padding {self.head_padding}, {self.object_classes}/{self.scene_classes} classes")

    @property
    def head_name(self) -> str:
        """The heads' layer name: ``conv<number of feature layers + 1>`` (conv8 / conv5)."""
        return f"conv{len(self.layers) + 1}"

    def layer_names(self) -> tuple[str, ...]:
        """Every tap in forward order: ``conv1, pool1, conv2, ..`` (a pool after its conv)."""
        names = []
        for i, spec in enumerate(self.layers, 1):
            names.append(f"conv{i}")
            if spec.pool:
                names.append(f"pool{i}")
        return tuple(names)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = [dataclasses.asdict(s) for s in self.layers]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SoundNetConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"SoundNetConfig: unknown fields {unknown}; expected some of {sorted(names)}")
        values = dict(data)
        values["layers"] = tuple(ConvSpec(**s) for s in data.get("layers", ()))
        return cls(**values)


# main_train.lua: 8 layers, heads conv8 (kernel 8, stride 2, no padding).
SOUNDNET8 = SoundNetConfig(
    layers=(ConvSpec(16, 64, 2, 32, pool=8), ConvSpec(32, 32, 2, 16, pool=8), ConvSpec(64, 16, 2, 8),
            ConvSpec(128, 8, 2, 4), ConvSpec(256, 4, 2, 2, pool=4), ConvSpec(512, 4, 2, 2), ConvSpec(1024, 4, 2, 2)),
    head_kernel=8, head_stride=2, head_padding=0, name="soundnet8")
# main_train_small.lua: 5 layers, wider early layers, three pools, heads conv5 (kernel 16, stride 12, padding 4).
SOUNDNET5 = SoundNetConfig(
    layers=(ConvSpec(32, 64, 2, 32, pool=8), ConvSpec(64, 32, 2, 16, pool=8), ConvSpec(128, 16, 2, 8, pool=8),
            ConvSpec(256, 8, 2, 4)),
    head_kernel=16, head_stride=12, head_padding=4, name="soundnet5")


def lite_config(divisor: int = 4) -> SoundNetConfig:
    """The 8-layer geometry (same kernels, strides, pools, hence the same output times) with
    ``divisor`` times fewer filters per feature layer: the size that trains on two CPU cores."""
    if divisor < 1:
        raise ValueError(f"lite_config divisor: expected >= 1, found {divisor}")
    layers = tuple(dataclasses.replace(s, out_channels=max(1, s.out_channels // divisor)) for s in SOUNDNET8.layers)
    return dataclasses.replace(SOUNDNET8, layers=layers, name=f"soundnet8-lite{divisor}")


CONFIGS: dict[str, SoundNetConfig] = {"soundnet8": SOUNDNET8, "soundnet5": SOUNDNET5, "lite": lite_config()}


@dataclass(frozen=True)
class TimeGrid:
    """Where a layer's steps sit in the input: step ``j`` is centred on sample ``offset + j * stride``.

    Attributes:
        stride: input samples per step.
        offset: the centre of step 0, in input samples (may be fractional or negative with padding).
        receptive_field: input samples one step sees.
    """

    stride: int
    offset: float
    receptive_field: int

    def centres(self, steps: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """``(steps,)`` float64 seconds of each step's centre from the input's first sample."""
        return (self.offset + self.stride * torch.arange(steps, dtype=torch.float64)) / sample_rate


class SoundNet(nn.Module):
    """A SoundNet of any :class:`SoundNetConfig`.

    ``forward(audio (B, N) in [-1, 1]) -> (objects (B, T, object_classes), scenes (B, T,
    scene_classes) or None)``: logits at every output step (the loss takes the log-softmax);
    :meth:`features` gives the inner layers.
    """

    def __init__(self, config: SoundNetConfig = SOUNDNET8):
        super().__init__()
        self.config = config
        blocks, cin = [], 1
        for spec in config.layers:
            blocks.append(nn.ModuleDict({"conv": nn.Conv1d(cin, spec.out_channels, spec.kernel, spec.stride,
                                                           spec.padding),
                                         "bn": nn.BatchNorm1d(spec.out_channels)}))
            cin = spec.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.feature_dim = cin
        self.objects = nn.Conv1d(cin, config.object_classes, config.head_kernel, config.head_stride, config.head_padding)
        self.scenes = (nn.Conv1d(cin, config.scene_classes, config.head_kernel, config.head_stride, config.head_padding)
                       if config.scene_classes else None)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The authors' initialisation: conv weights N(0, 0.01), biases 0, BN gamma N(1, 0.02), beta 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.normal_(m.weight, 0.0, 0.01, generator=generator)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
                nn.init.zeros_(m.bias)

    def _check(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim != 2:
            raise ValueError(f"SoundNet input: expected audio of shape (batch, samples) at {SAMPLE_RATE} Hz, "
                             f"found {tuple(audio.shape)}")
        return (audio * self.config.input_scale).unsqueeze(1)  # (B, 1, N)

    def features(self, audio: torch.Tensor, upto: str | None = None) -> dict[str, torch.Tensor]:
        """The feature layers' outputs, each ``(B, C, T)``, up to and including ``upto`` (None: all).

        Args:
            audio: ``(B, N)`` float waveform in [-1, 1] at 22,050 Hz.
            upto: a name of :meth:`SoundNetConfig.layer_names` (``conv7``, ``pool5`` ...).

        Raises:
            ValueError: an unknown layer name, or an input too short for a layer.
        """
        names = self.config.layer_names()
        if upto is not None and upto not in names:
            raise ValueError(f"SoundNet layer: expected one of {', '.join(names)}, found {upto!r}")
        x = self._check(audio)
        out: dict[str, torch.Tensor] = {}
        for i, (spec, block) in enumerate(zip(self.config.layers, self.blocks), 1):
            if x.shape[-1] + 2 * spec.padding < spec.kernel:
                raise ValueError(f"SoundNet conv{i}: expected at least {spec.kernel - 2 * spec.padding} steps of its "
                                 f"input, found {x.shape[-1]} ({audio.shape[-1]} samples of audio is too short)")
            x = F.relu(block["bn"](block["conv"](x)))
            out[f"conv{i}"] = x
            if upto == f"conv{i}":
                return out
            if spec.pool:
                if x.shape[-1] < spec.pool:
                    raise ValueError(f"SoundNet pool{i}: expected at least {spec.pool} steps of conv{i}, found "
                                     f"{x.shape[-1]} ({audio.shape[-1]} samples of audio is too short)")
                x = F.max_pool1d(x, spec.pool, spec.pool)
                out[f"pool{i}"] = x
                if upto == f"pool{i}":
                    return out
        return out

    def layer(self, audio: torch.Tensor, name: str) -> torch.Tensor:
        """One layer's output ``(B, C, T)``."""
        return self.features(audio, upto=name)[name]

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Last feature layer ``(B, C, T')`` -> object and scene logits ``(B, T, classes)``."""
        if x.shape[-1] + 2 * self.config.head_padding < self.config.head_kernel:
            raise ValueError(f"SoundNet heads: expected at least {self.config.head_kernel} steps of "
                             f"{self.config.layer_names()[-1]}, found {x.shape[-1]} (audio too short for one output "
                             f"step; at least {self.min_samples()} samples)")
        objects = self.objects(x).transpose(1, 2)  # (B, T, 1000)
        scenes = self.scenes(x).transpose(1, 2) if self.scenes is not None else None
        return objects, scenes

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        last = self.config.layer_names()[-1]
        return self.heads(self.features(audio)[last])

    # --- geometry ---------------------------------------------------------------------
    def _geometry(self) -> list[tuple[str, int, int, int]]:
        """(name, kernel, stride, padding) of every layer in order, pools and the heads included."""
        steps = []
        for i, spec in enumerate(self.config.layers, 1):
            steps.append((f"conv{i}", spec.kernel, spec.stride, spec.padding))
            if spec.pool:
                steps.append((f"pool{i}", spec.pool, spec.pool, 0))
        c = self.config
        steps.append((c.head_name, c.head_kernel, c.head_stride, c.head_padding))
        return steps

    def time_grid(self, name: str | None = None) -> TimeGrid:
        """The :class:`TimeGrid` of a layer (None or the head name: the output steps)."""
        name = name or self.config.head_name
        stride, offset, field = 1, 0.0, 1
        for layer, k, s, p in self._geometry():
            # step i of this layer covers its input steps [i*s - p, i*s - p + k)
            offset = offset + stride * ((k - 1) / 2 - p)
            field = field + (k - 1) * stride
            stride *= s
            if layer == name:
                return TimeGrid(stride, offset, field)
        raise ValueError(f"SoundNet layer: expected one of {', '.join(self.config.layer_names())} or "
                         f"{self.config.head_name}, found {name!r}")

    def output_length(self, samples: int, name: str | None = None) -> int:
        """Steps of a layer (None: the heads) for an input of ``samples``; 0 when too short."""
        name = name or self.config.head_name
        n = samples
        for layer, k, s, p in self._geometry():
            n = (n + 2 * p - k) // s + 1 if n >= 1 and n + 2 * p >= k else 0
            if layer == name:
                return n
        raise ValueError(f"SoundNet layer: unknown {name!r}")

    def min_samples(self, name: str | None = None) -> int:
        """The shortest input with one step of a layer (None: the heads)."""
        lo, hi = 1, 1 << 24
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.output_length(mid, name) >= 1 else (mid + 1, hi)
        return lo


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def soundnet8(**overrides) -> SoundNet:
    return SoundNet(dataclasses.replace(SOUNDNET8, **overrides))


def soundnet5(**overrides) -> SoundNet:
    return SoundNet(dataclasses.replace(SOUNDNET5, **overrides))


def soundnet_lite(divisor: int = 4, **overrides) -> SoundNet:
    return SoundNet(dataclasses.replace(lite_config(divisor), **overrides))
