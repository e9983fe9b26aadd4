"""L³-Net: audio-visual correspondence (AVC) and the sound-source heatmap drawn from it.

After *Look, Listen and Learn* (Arandjelović & Zisserman, ICCV 2017): a vision subnet and an
audio subnet of the same shape (four blocks of two 3×3 conv → BN → ReLU, 2×2 max-pool after
blocks 1–3, global max-pool at the end) and a fusion head, concat → FC 128 → ReLU → FC 2, that
says whether a frame and a second of audio belong together (REFERENCE.md §2.1; the paper's
numbers, not the replica's layer order). The optional ``fusion="avol"`` head follows AVOL-Net
(*Objects that Sound*, ECCV 2018): per-cell scalar product of projected vision and audio
vectors, a learned affine calibration and a sigmoid, the AVC score being the max over cells.

**Heatmap.** The last vision conv map (before the global max-pool) is a grid of feature
vectors, 28 × 28 at 224 × 224 input. Applying the fusion head to each cell's vector with the
clip's audio embedding gives a per-cell correspondence probability (class 1 of the softmax
over the head's two logits); bilinear upsampling onto the frame gives the heatmap.
:meth:`L3Net.forward_all` returns the AVC logits and the cell probabilities from one pass of
each subnet. ``fusion="concat"`` (the L³ paper's head, applied per cell) is the default.

**Alignment rule (training and live).** A 1 s audio window goes with the video frame at the
window's *centre*: frame ``k`` (at ``t_k = k / fps``) pairs with the audio samples
``[round(t_k · 48000) − 24000, round(t_k · 48000) + 24000)``. The live adapter declares
``WindowSpec(frame_at="centre")`` so the pipeline hands it the frame nearest that instant.

**Audio input.** 1 s at 48 kHz (48 000 samples) → the one :class:`~models.audio.frontend.FrontEnd`
configured as L³'s linear spectrogram: periodic Hann window of 480 samples, hop 240, each
frame zero-padded to a 512-point FFT, no centring, ``window_frames=True`` (199 frames =
1 + ⌊(48000 − 480) / 240⌋), magnitude, natural ``log(|X| + 1e-4)``. The offset 1e-4 is about
the STFT magnitude of 16-bit quantisation noise (RMS 2⁻¹⁵/√12 ≈ 8.8e-6 times the window's
√Σw² ≈ 13.4), so digital silence lands at log(1e-4) ≈ −9.2, just under the quietest real
recording, instead of at −13.8 (offset 1e-6), an outlier that would dominate the input
statistics. The result is the one-channel image ``(B, 1, 257, 199)`` (freq × time), which a
``BatchNorm2d(1)`` normalises (OpenL3's input normalisation, REFERENCE.md §2.2: a learned
affine map from training statistics; at inference a fixed affine map).

**Vision input.** Frames are RGB uint8 ``(H, W, 3)``; :func:`preprocess_frames` resizes them
to ``image_size`` square (OpenCV area interpolation when shrinking, bilinear when enlarging; a
non-square frame is squashed, not cropped, so the heatmap covers the whole frame) and maps
``[0, 255]`` to ``[-1, 1]`` (``x / 127.5 − 1``, the same for all channels).

Sizes (:data:`L3_PAPER`, :data:`L3_LITE`, :data:`L3_TINY`; multiply-adds from
:func:`count_macs`, per pair, heatmap head included):

======  ===============================  =====  ==========  ========  ==========================
size    widths, vision / audio           image  parameters  MACs      note
======  ===============================  =====  ==========  ========  ==========================
paper   64,128,256,512 / same            224    9 504 900   20.52 G   20.47 G for the AVC alone
lite    16,32,64,128 / 8,16,32,64        112    392 668     0.33 G    14×14 grid
tiny    4,8,16,32 / same                 64     39 348      6.3 M     spectrogram pooled 4×4
======  ===============================  =====  ==========  ========  ==========================

Example::

    model = NETWORKS.create("l3-lite").eval()
    frames = preprocess_frames(frame_uint8, model.config.image_size)       # (1, 3, 224, 224)
    avc_logits, cell_probs = model.forward_all(frames, torch.from_numpy(wave_48k)[None])
    heatmap = L3Localizer(model, threshold=0.5)(wave_48k, frame_uint8)     # live adapter
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.core.atomic import atomic_path, atomic_torch_save
from models.audio.frontend import FrontEnd, FrontEndConfig
from models.core.family import NetworkEntry
from models.core.live import FRAME_AT_CENTRE, Heatmap, WindowSpec

__all__ = [
    "SAMPLE_RATE",
    "WINDOW_SAMPLES",
    "FUSIONS",
    "L3Config",
    "L3_PAPER",
    "L3_LITE",
    "L3_TINY",
    "L3Subnet",
    "ConcatFusion",
    "AvolFusion",
    "L3Net",
    "MacCount",
    "count_macs",
    "count_parameters",
    "l3_frontend_config",
    "preprocess_frames",
    "heatmap_from_cells",
    "audio_window_for_frame",
    "L3Localizer",
    "EXPORT_PARTS",
    "L3Export",
    "export_onnx",
    "save_checkpoint",
    "load_checkpoint",
]

SAMPLE_RATE = 48_000  # L³ resamples all audio to 48 kHz
WINDOW_SAMPLES = SAMPLE_RATE  # one second
FUSIONS = ("concat", "avol")
_POOL_AFTER = (True, True, True, False)  # 2×2/2 max-pool after blocks 1–3, none after block 4
_KERNEL = 3


def l3_frontend_config(log_offset: float = 1e-4) -> FrontEndConfig:
    """L³'s linear log-spectrogram: 480-sample Hann, hop 240, 512-point FFT, 257 × 199 per second.

    Args:
        log_offset: added to the STFT magnitude before the natural log (see the module docstring).
    """
    return FrontEndConfig(
        sample_rate=SAMPLE_RATE, n_fft=512, win_length=480, hop_length=240, center=False,
        window_frames=True, power=1.0, n_mels=None, log=True, log_offset=log_offset,
    )


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class L3Config:
    """Sizes and options of an L³-Net; validated on construction.

    Raises:
        ValueError: a field is out of range; the message names the field and says
            ``expected ... found ...``.
    """

    # Output channels of the four vision blocks (two convs each); the last is the vision
    # embedding size. Paper: 64, 128, 256, 512.
    widths: tuple[int, ...] = (64, 128, 256, 512)
    # The same for the audio subnet; None = ``widths``.
    audio_widths: tuple[int, ...] | None = None
    # Side of the square vision input; the heatmap grid is image_size / 8 (28 at 224).
    image_size: int = 224
    # "concat" (L³: concat → FC → ReLU → FC 2, applied per cell for the map) or "avol"
    # (AVOL-Net: per-cell dot product → affine → sigmoid, max over cells).
    fusion: str = "concat"
    # Hidden units of the concat head's first FC (paper: 128).
    fusion_hidden: int = 128
    # Common dimension the avol head projects vision cells and audio to (AVOL-Net: 128).
    avol_dim: int = 128
    # avol only: compare unit-length, batch-normalised projections (cosine similarity) with a
    # learned scale that starts at 10, instead of raw dot products with a scale of 1/√D at first.
    avol_cosine: bool = False
    # Added to the STFT magnitude before the log (see the module docstring).
    log_offset: float = 1e-4
    # k×k max-pool (stride k) on the normalised spectrogram before the audio subnet; 1 = none
    # (the paper). Only the test preset uses it: there the full-resolution first audio block
    # would dominate CPU training time.
    audio_input_pool: int = 1

    def __post_init__(self) -> None:
        def fail(name: str, expected: str) -> None:
            raise ValueError(f"L3Config.{name}: expected {expected}, found {getattr(self, name)!r}")

        def positive_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0

        for name in ("widths", "audio_widths"):
            value = getattr(self, name)
            if value is None and name == "audio_widths":
                continue
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 4 \
                    or not all(positive_int(w) for w in value):
                fail(name, "4 positive ints (one per block)" + (" or None" if name == "audio_widths" else ""))
            object.__setattr__(self, name, tuple(int(w) for w in value))
        if not positive_int(self.image_size) or self.image_size % 8:
            fail("image_size", "a positive multiple of 8 (three 2x2 pools)")
        if self.fusion not in FUSIONS:
            fail("fusion", " or ".join(repr(f) for f in FUSIONS))
        for name in ("fusion_hidden", "avol_dim", "image_size", "audio_input_pool"):
            if not positive_int(getattr(self, name)):
                fail(name, "a positive int")
            object.__setattr__(self, name, int(getattr(self, name)))
        if not isinstance(self.log_offset, (int, float)) or isinstance(self.log_offset, bool) \
                or not self.log_offset > 0 or not np.isfinite(self.log_offset):
            fail("log_offset", "a finite number > 0")
        object.__setattr__(self, "log_offset", float(self.log_offset))
        if min(self.spectrogram_shape) // self.audio_input_pool < 8:
            fail("audio_input_pool", "at most 24 (the pooled 257×199 image must survive three 2×2 pools)")

    @property
    def resolved_audio_widths(self) -> tuple[int, ...]:
        """The audio subnet's widths (``audio_widths``, or ``widths`` when that is None)."""
        return self.audio_widths if self.audio_widths is not None else self.widths

    @property
    def vision_dim(self) -> int:
        """Size of :meth:`L3Net.embed_vision` (channels of the last vision conv)."""
        return self.widths[-1]

    @property
    def audio_dim(self) -> int:
        """Size of :meth:`L3Net.embed_audio` (channels of the last audio conv)."""
        return self.resolved_audio_widths[-1]

    @property
    def grid_size(self) -> int:
        """Side of the vision conv map, i.e. of the heatmap's cell grid."""
        return self.image_size // 8

    @property
    def frontend(self) -> FrontEndConfig:
        return l3_frontend_config(self.log_offset)

    @property
    def spectrogram_shape(self) -> tuple[int, int]:
        """(freq, time) of the audio image: (257, 199)."""
        fe = self.frontend
        return fe.output_bins, fe.num_frames(WINDOW_SAMPLES)

    @property
    def audio_input_shape(self) -> tuple[int, int]:
        """(freq, time) the audio subnet sees: the spectrogram after ``audio_input_pool``."""
        f, t = self.spectrogram_shape
        return f // self.audio_input_pool, t // self.audio_input_pool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples become lists) for checkpoints and metadata."""
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        d["audio_widths"] = None if self.audio_widths is None else list(self.audio_widths)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> L3Config:
        """Inverse of :meth:`to_dict`; missing fields take their defaults.

        Raises:
            ValueError: unknown keys or invalid values.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"L3Config.from_dict: expected keys among {sorted(names)}, found unknown {unknown}")
        return cls(**d)


L3_PAPER = L3Config()
# Live on CPU: ≤ 1 G multiply-adds per pair. The vision side sees the frame at 112×112 (a 14×14
# grid of 16-pixel cells on a 224 frame, several cells per object of the world) at a quarter of
# the paper's widths; the audio side, whose first block runs on the full 257×199 image, gets an
# eighth (0.16 + 0.16 G). At 224 input the same widths cost 0.82 G and train 2.5× slower on
# 2 CPU cores, which the 60-minute training budget does not allow.
L3_LITE = L3Config(widths=(16, 32, 64, 128), audio_widths=(8, 16, 32, 64), image_size=112)
# For tests: a few million multiply-adds, an 8×8 grid, the spectrogram max-pooled 4×4 to 64×49.
L3_TINY = L3Config(widths=(4, 8, 16, 32), image_size=64, fusion_hidden=32, avol_dim=16, audio_input_pool=4)


# --------------------------------------------------------------------------- blocks


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 'same' conv (no bias: the BN's shift replaces it) → BN → ReLU (the paper's order)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, _KERNEL, padding=_KERNEL // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class L3Subnet(nn.Module):
    """One L³ subnet: four blocks of two conv3×3-BN-ReLU, 2×2/2 max-pool after blocks 1–3.

    ``forward_map`` keeps the spatial grid (the heatmap's cells); ``forward`` takes the max over
    all positions (the embedding).
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        """Args:
            in_channels: 3 (RGB) or 1 (spectrogram).
            widths: output channels of the four blocks.
        """
        super().__init__()
        if len(widths) != len(_POOL_AFTER):
            raise ValueError(f"L3Subnet: expected {len(_POOL_AFTER)} widths, found {widths!r}")
        blocks = []
        for width, pool in zip(widths, _POOL_AFTER):
            layers = [_conv_bn_relu(in_channels, width), _conv_bn_relu(width, width)]
            if pool:
                layers.append(nn.MaxPool2d(2, stride=2))  # floor: 257×199 → 128×99 → 64×49 → 32×24
            blocks.append(nn.Sequential(*layers))
            in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = widths[-1]

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` → last conv map ``(B, C, ⌊⌊⌊H/2⌋/2⌋/2⌋, ⌊⌊⌊W/2⌋/2⌋/2⌋)``."""
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` → ``(B, C)``: max over all positions of the last conv map."""
        return self.forward_map(x).amax(dim=(2, 3))


class ConcatFusion(nn.Module):
    """L³'s head: concat(vision, audio) → FC hidden → ReLU → FC 2 (logits [no, yes]).

    Applied to the max-pooled vision vector it gives the AVC logits; applied to each cell of
    the vision map (the first FC split into its vision and audio columns, so the audio part is
    computed once) it gives the per-cell logits.
    """

    def __init__(self, vision_dim: int, audio_dim: int, hidden: int) -> None:
        super().__init__()
        self.vision_dim = vision_dim
        self.fc1 = nn.Linear(vision_dim + audio_dim, hidden)
        self.fc2 = nn.Linear(hidden, 2)

    def logits(self, vision: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``vision (B, Cv)``, ``audio (B, Ca)`` → logits ``(B, 2)``."""
        return self.fc2(F.relu(self.fc1(torch.cat([vision, audio], dim=1))))

    def forward(self, vision_map: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``vision_map (B, Cv, h, w)``, ``audio (B, Ca)`` → (avc_logits ``(B, 2)``, cell_probs ``(B, h, w)``)."""
        avc_logits = self.logits(vision_map.amax(dim=(2, 3)), audio)
        w_vision = self.fc1.weight[:, : self.vision_dim]  # (hidden, Cv)
        w_audio = self.fc1.weight[:, self.vision_dim:]  # (hidden, Ca)
        audio_part = audio @ w_audio.T + self.fc1.bias  # (B, hidden), shared by all cells
        hidden = torch.einsum("oc,bchw->bohw", w_vision, vision_map) + audio_part[:, :, None, None]
        cell_logits = torch.einsum("ko,bohw->bkhw", self.fc2.weight, F.relu(hidden)) \
            + self.fc2.bias[None, :, None, None]  # (B, 2, h, w)
        cell_probs = cell_logits.softmax(dim=1)[:, 1]  # (B, h, w)
        return avc_logits, cell_probs


class AvolFusion(nn.Module):
    """AVOL-Net's head: per-cell ⟨P_v(cell), P_a(audio)⟩ → a·z + b → sigmoid; AVC = max over cells.

    ``P_v`` is two 1×1 convs with a ReLU between (Cv → D → D), ``P_a`` two FCs (Ca → D → D);
    ``a`` starts at 1/√D so initial logits are O(1). The AVC logits are ``[0, max_cell z]``,
    whose softmax class 1 is the max cell probability (multiple-instance learning).
    """

    def __init__(self, vision_dim: int, audio_dim: int, dim: int, cosine: bool = False) -> None:
        super().__init__()
        if cosine:
            # Batch-normalised projections: the pooled ReLU features of two different inputs start
            # out nearly parallel (cosine ≈ 0.97 for two seconds of the world at init), and unit
            # vectors of nearly parallel features cannot tell anything apart; centring them first
            # (BN, as in contrastive projection heads) keeps the comparison informative.
            self.vision_proj = nn.Sequential(nn.BatchNorm2d(vision_dim), nn.Conv2d(vision_dim, dim, 1, bias=False),
                                             nn.BatchNorm2d(dim), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 1))
            self.audio_proj = nn.Sequential(nn.BatchNorm1d(audio_dim), nn.Linear(audio_dim, dim, bias=False),
                                            nn.BatchNorm1d(dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))
        else:
            self.vision_proj = nn.Sequential(nn.Conv2d(vision_dim, dim, 1), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 1))
            self.audio_proj = nn.Sequential(nn.Linear(audio_dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))
        self.cosine = bool(cosine)
        self.scale = nn.Parameter(torch.tensor(10.0 if cosine else dim ** -0.5))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def project(self, vision_map: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, Cv, h, w)``, ``(B, Ca)`` → the projections ``(B, D, h, w)``, ``(B, D)`` the scores compare."""
        v, a = self.vision_proj(vision_map), self.audio_proj(audio)
        if self.cosine:
            v, a = F.normalize(v, dim=1), F.normalize(a, dim=1)
        return v, a

    def forward(self, vision_map: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``vision_map (B, Cv, h, w)``, ``audio (B, Ca)`` → (avc_logits ``(B, 2)``, cell_probs ``(B, h, w)``)."""
        v, a = self.project(vision_map, audio)  # (B, D, h, w), (B, D)
        z = self.scale * torch.einsum("bdhw,bd->bhw", v, a) + self.bias  # (B, h, w) calibrated logits
        z_max = z.flatten(1).amax(dim=1)  # (B,)
        avc_logits = torch.stack([torch.zeros_like(z_max), z_max], dim=1)  # (B, 2)
        return avc_logits, torch.sigmoid(z)


# --------------------------------------------------------------------------- model


class L3Net(nn.Module):
    """Vision subnet + audio subnet (with its front end inside) + fusion head.

    Inputs everywhere: ``frames (B, 3, S, S)`` float, preprocessed by :func:`preprocess_frames`
    (``S = config.image_size``); ``audio (B, 48000)`` float32 samples at 48 kHz.
    """

    def __init__(self, config: L3Config = L3_PAPER) -> None:
        super().__init__()
        if not isinstance(config, L3Config):
            raise ValueError(f"L3Net: expected an L3Config, found {type(config).__name__}")
        self.config = config
        self.frontend = FrontEnd(config.frontend)  # no parameters; window baked in as a buffer
        self.audio_norm = nn.BatchNorm2d(1)
        k = config.audio_input_pool
        self.audio_input_pool = nn.MaxPool2d(k, stride=k) if k > 1 else nn.Identity()
        self.vision = L3Subnet(3, config.widths)
        self.audio = L3Subnet(1, config.resolved_audio_widths)
        if config.fusion == "concat":
            self.fusion: nn.Module = ConcatFusion(config.vision_dim, config.audio_dim, config.fusion_hidden)
        else:
            self.fusion = AvolFusion(config.vision_dim, config.audio_dim, config.avol_dim, config.avol_cosine)

    # ---- inputs

    def _check_frames(self, frames: torch.Tensor) -> None:
        s = self.config.image_size
        if frames.dim() != 4 or tuple(frames.shape[1:]) != (3, s, s):
            raise ValueError(f"L3Net: expected frames (batch, 3, {s}, {s}) from preprocess_frames, "
                             f"found {tuple(frames.shape)}")
        if not frames.is_floating_point():
            raise ValueError(f"L3Net: expected float frames from preprocess_frames, found {frames.dtype}")

    def _check_audio(self, audio: torch.Tensor) -> None:
        if audio.dim() != 2 or audio.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"L3Net: expected audio (batch, {WINDOW_SAMPLES}) = 1 s at {SAMPLE_RATE} Hz, "
                             f"found {tuple(audio.shape)}")

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, 48000)`` → log-magnitude image ``(B, 1, 257, 199)`` (freq × time), before the input BN."""
        self._check_audio(audio)
        return self.frontend(audio).transpose(1, 2).unsqueeze(1)  # (B, T, F) → (B, 1, F, T)

    # ---- subnets

    def vision_map(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (B, 3, S, S)`` → last vision conv map ``(B, Cv, S/8, S/8)`` (28×28 at 224)."""
        self._check_frames(frames)
        return self.vision.forward_map(frames)

    def audio_map(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, 48000)`` → last audio conv map ``(B, Ca, 32, 24)`` (without ``audio_input_pool``)."""
        return self.audio.forward_map(self.audio_input_pool(self.audio_norm(self.spectrogram(audio))))

    def embed_vision(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (B, 3, S, S)`` → ``(B, Cv)`` (512 at paper size): max over the conv map."""
        return self.vision_map(frames).amax(dim=(2, 3))

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, 48000)`` → ``(B, Ca)`` (512 at paper size): max over the conv map."""
        return self.audio_map(audio).amax(dim=(2, 3))

    # ---- heads

    def forward_all(self, frames: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """AVC logits and the per-cell correspondence map from one pass of each subnet.

        Args:
            frames: ``(B, 3, S, S)`` preprocessed frames.
            audio: ``(B, 48000)`` samples at 48 kHz, the window centred on each frame.

        Returns:
            ``avc_logits (B, 2)`` ([no-correspondence, correspondence]) and
            ``cell_probs (B, S/8, S/8)`` in [0, 1]: per-cell probability of correspondence.
        """
        return self.fusion(self.vision_map(frames), self.embed_audio(audio))

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``frames (B, 3, S, S)``, ``audio (B, 48000)`` → AVC logits ``(B, 2)``."""
        return self.forward_all(frames, audio)[0]


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class MacCount:
    """Multiply-adds per pair (batch 1) of the convolutions and fully connected layers.

    BatchNorm, ReLU, pooling and the STFT are left out (a few ‰ at paper size).

    Attributes:
        vision: vision subnet convs.
        audio: audio subnet convs.
        fusion: the AVC head on the pooled vectors (concat) or on all cells (avol).
        cells: the extra work for the per-cell map (concat: the head on every cell; avol: 0,
            the map is the head).
    """

    vision: int
    audio: int
    fusion: int
    cells: int

    @property
    def pair(self) -> int:
        """One AVC decision: vision + audio + fusion."""
        return self.vision + self.audio + self.fusion

    @property
    def heatmap(self) -> int:
        """AVC decision and heatmap (:meth:`L3Net.forward_all`)."""
        return self.pair + self.cells


def _subnet_macs(in_channels: int, widths: tuple[int, ...], height: int, width: int) -> tuple[int, int, int]:
    """Conv multiply-adds of one subnet and its final grid (macs, h, w)."""
    macs = 0
    for out_channels, pool in zip(widths, _POOL_AFTER):
        macs += height * width * _KERNEL * _KERNEL * (in_channels * out_channels + out_channels * out_channels)
        in_channels = out_channels
        if pool:
            height, width = height // 2, width // 2
    return macs, height, width


def count_macs(config: L3Config) -> MacCount:
    """Multiply-adds per pair, computed analytically from the layer shapes.

    A 3×3 'same' conv from C_in to C_out channels over an H×W map costs H·W·9·C_in·C_out; a
    fully connected layer in·out. Vision runs on S×S, audio on the 257×199 spectrogram (or
    its ``audio_input_pool`` reduction).
    """
    vision, gh, gw = _subnet_macs(3, config.widths, config.image_size, config.image_size)
    audio, _, _ = _subnet_macs(1, config.resolved_audio_widths, *config.audio_input_shape)
    cells_n = gh * gw
    cv, ca = config.vision_dim, config.audio_dim
    if config.fusion == "concat":
        hidden = config.fusion_hidden
        fusion = (cv + ca) * hidden + hidden * 2
        cells = cells_n * (cv * hidden + hidden * 2)  # the audio half of FC1 is shared by all cells
    else:
        d = config.avol_dim
        fusion = cells_n * (cv * d + d * d + d) + ca * d + d * d
        cells = 0
    return MacCount(vision=vision, audio=audio, fusion=fusion, cells=cells)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (BN running statistics are buffers and not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- pre/post-processing


def preprocess_frames(frames: np.ndarray, image_size: int) -> torch.Tensor:
    """RGB uint8 frames → the vision input.

    Args:
        frames: ``(H, W, 3)`` or ``(B, H, W, 3)`` uint8 RGB.
        image_size: side ``S`` of the square input (``config.image_size``).

    Returns:
        ``(B, 3, S, S)`` float32 in [-1, 1]: resized to S×S (area interpolation when
        shrinking, bilinear when enlarging, aspect ratio not kept) and ``x / 127.5 − 1``.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"preprocess_frames: expected uint8 RGB (H, W, 3) or (B, H, W, 3), "
                         f"found {frames.dtype} {frames.shape}")
    out = np.empty((frames.shape[0], image_size, image_size, 3), np.float32)
    for i, frame in enumerate(frames):
        h, w = frame.shape[:2]
        if (h, w) != (image_size, image_size):
            shrink = h > image_size or w > image_size
            frame = cv2.resize(frame, (image_size, image_size),
                               interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        out[i] = frame
    out = out / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(out.transpose(0, 3, 1, 2)))  # (B, 3, S, S)


def heatmap_from_cells(cell_probs: np.ndarray, frame_size: tuple[int, int], threshold: float) -> Heatmap:
    """Upsample a per-cell probability grid onto a frame.

    Args:
        cell_probs: ``(h, w)`` probabilities in [0, 1] (one sample of ``forward_all``'s output).
        frame_size: ``(H, W)`` of the frame.
        threshold: the localizer's "source on screen" threshold, copied into the result.

    Returns:
        A :class:`~models.live.Heatmap` whose map is ``(H, W)`` float32, bilinear (half-pixel
        centres, as ``F.interpolate(align_corners=False)``), hence still in [0, 1]; ``peak``
        is ``(x, y)`` of the first maximum in row-major order and ``score`` the map's value there.
    """
    cells = np.asarray(cell_probs, dtype=np.float32)
    if cells.ndim != 2:
        raise ValueError(f"heatmap_from_cells: expected an (h, w) grid, found shape {cells.shape}")
    h, w = int(frame_size[0]), int(frame_size[1])
    if h < 1 or w < 1:
        raise ValueError(f"heatmap_from_cells: expected a positive frame size (H, W), found {frame_size!r}")
    heat = np.clip(cv2.resize(cells, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)  # (H, W)
    y, x = divmod(int(np.argmax(heat)), w)
    return Heatmap(map=heat, peak=(x, y), score=float(heat[y, x]), threshold=float(threshold))


def audio_window_for_frame(frame_time: float) -> tuple[int, int]:
    """The alignment rule: the 48 kHz sample span ``[start, stop)`` of the 1 s window centred on
    a frame shown at ``frame_time`` seconds (``start`` may be negative near the clip start)."""
    centre = int(round(frame_time * SAMPLE_RATE))
    return centre - WINDOW_SAMPLES // 2, centre + WINDOW_SAMPLES - WINDOW_SAMPLES // 2


# --------------------------------------------------------------------------- live adapter


class L3Localizer:
    """The live :class:`~models.live.Localizer` for an :class:`L3Net`.

    Every call runs :meth:`L3Net.forward_all` once on the 1 s window and its frame and returns
    the per-cell map upsampled to the frame's resolution. The model is put in eval mode.

    Attributes:
        window: ``WindowSpec(1.0, 48000, needs_frame=True, frame_at=frame_at)``.
        model: the network.
        threshold: ``Heatmap.score`` (the map's peak) at or above which a source is on screen.
    """

    def __init__(self, model: L3Net, threshold: float = 0.5, frame_at: str = FRAME_AT_CENTRE) -> None:
        """Args:
            model: the network (on any device; inputs follow its parameters).
            threshold: in [0, 1].
            frame_at: which instant of the window the frame shows. Training pairs use
                ``"centre"`` (the alignment rule); ``"end"`` trades that alignment for half a
                second less latency.
        """
        if not isinstance(model, L3Net):
            raise ValueError(f"L3Localizer: expected an L3Net, found {type(model).__name__}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"L3Localizer.threshold: expected a probability in [0, 1], found {threshold!r}")
        self.model = model.eval()
        self.threshold = float(threshold)
        self.window = WindowSpec(seconds=1.0, sample_rate=SAMPLE_RATE, needs_frame=True, frame_at=frame_at)

    def __call__(self, audio: np.ndarray, frame: np.ndarray) -> Heatmap:
        """``audio (48000,)`` float32 at 48 kHz, ``frame (H, W, 3)`` uint8 RGB → Heatmap at H×W."""
        audio = np.asarray(audio)
        if audio.shape != (self.window.samples,) or not np.issubdtype(audio.dtype, np.floating):
            raise ValueError(f"L3Localizer: expected float audio of shape ({self.window.samples},) at "
                             f"{SAMPLE_RATE} Hz, found {audio.dtype} {audio.shape}")
        frame = np.asarray(frame)
        if frame.ndim != 3:
            raise ValueError(f"L3Localizer: expected one uint8 RGB frame (H, W, 3), found shape {frame.shape}")
        device = next(self.model.parameters()).device
        frames = preprocess_frames(frame, self.model.config.image_size).to(device)
        wave = torch.from_numpy(audio.astype(np.float32, copy=False))[None].to(device)  # (1, 48000)
        with torch.inference_mode():
            _, cell_probs = self.model.forward_all(frames, wave)
        return heatmap_from_cells(cell_probs[0].float().cpu().numpy(), frame.shape[:2], self.threshold)


# --------------------------------------------------------------------------- export

# Each exportable path: its input and output tensor names, in order.
EXPORT_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "heatmap": (("frames", "audio"), ("avc_logits", "cell_probs")),
    "vision": (("frames",), ("vision_embedding",)),
    "audio": (("audio",), ("audio_embedding",)),
}


class L3Export(nn.Module):
    """One path of an :class:`L3Net` as a module of its own, for ``torch.onnx.export``.

    ``"heatmap"``: ``frames (B, 3, S, S)``, ``audio (B, 48000)`` → ``avc_logits (B, 2)``,
    ``cell_probs (B, S/8, S/8)`` (the front end inside the graph); ``"vision"``: ``frames`` →
    ``vision_embedding (B, Cv)``; ``"audio"``: ``audio`` → ``audio_embedding (B, Ca)``.
    """

    def __init__(self, model: L3Net, part: str = "heatmap") -> None:
        super().__init__()
        if part not in EXPORT_PARTS:
            raise ValueError(f"L3Export: expected part in {sorted(EXPORT_PARTS)}, found {part!r}")
        self.model = model
        self.part = part
        self.input_names, self.output_names = EXPORT_PARTS[part]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.part == "heatmap":
            return self.model.forward_all(*inputs)
        if self.part == "vision":
            return self.model.embed_vision(*inputs)
        return self.model.embed_audio(*inputs)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Zero inputs of the right shapes (float32, on the model's device)."""
        device = next(self.model.parameters()).device
        s = self.model.config.image_size
        shapes = {"frames": (batch, 3, s, s), "audio": (batch, WINDOW_SAMPLES)}
        return tuple(torch.zeros(shapes[name], device=device) for name in self.input_names)


def export_onnx(model: L3Net, path: str | os.PathLike, part: str = "heatmap", dynamic_batch: bool = True) -> None:
    """Export one path of ``model`` (see :class:`L3Export`) to ONNX opset 18, atomically.

    The model is put in eval mode (BatchNorm uses its running statistics).

    Args:
        model: the network.
        path: destination ``.onnx`` file; its directory must exist.
        part: ``"heatmap"``, ``"vision"`` or ``"audio"``.
        dynamic_batch: a dynamic first axis ``"batch"`` on every input.
    """
    graph = L3Export(model.eval(), part).eval()
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=1024)
        dynamic_shapes = {"inputs": tuple({0: batch} for _ in graph.input_names)}
    with atomic_path(path) as tmp:
        torch.onnx.export(graph, graph.example_inputs(2), str(tmp), dynamo=True, opset_version=18,
                          input_names=list(graph.input_names), output_names=list(graph.output_names),
                          dynamic_shapes=dynamic_shapes, verbose=False)


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, model: L3Net, threshold: float | None = None) -> None:
    """Write ``{"config", "model_state", "threshold"}`` atomically (loads with ``weights_only=True``)."""
    atomic_torch_save({"config": model.config.to_dict(), "model_state": model.state_dict(),
                       "threshold": None if threshold is None else float(threshold)}, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[L3Net, float | None]:
    """Rebuild the model a checkpoint was saved from.

    Returns:
        ``(model, threshold)``: the model in eval mode and the stored threshold (or None).

    Raises:
        ValueError: ``path`` is not a file holding an L³ checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"L3 checkpoint: expected a file written by models.l3.network.save_checkpoint, found "
                         f"{'a directory' if path.is_dir() else 'nothing'} at {path}")
    data = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(data, dict) or not {"config", "model_state"} <= set(data):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"L3 checkpoint {path}: expected a dict with 'config' and 'model_state', found {found}")
    model = L3Net(L3Config.from_dict(data["config"]))
    model.load_state_dict(data["model_state"])
    return model.to(map_location).eval(), data.get("threshold")


# --------------------------------------------------------------------------- registration


def l3_paper(**overrides: Any) -> L3Net:
    """The paper's L³-Net; ``overrides`` replace :data:`L3_PAPER` fields (e.g. ``fusion="avol"``)."""
    return L3Net(dataclasses.replace(L3_PAPER, **overrides))


def l3_lite(**overrides: Any) -> L3Net:
    """:data:`L3_LITE`, with ``overrides``."""
    return L3Net(dataclasses.replace(L3_LITE, **overrides))


def l3_tiny(**overrides: Any) -> L3Net:
    """:data:`L3_TINY`, with ``overrides``."""
    return L3Net(dataclasses.replace(L3_TINY, **overrides))


#: The sizes as the family declares them (``models.families.NETWORKS`` is built from these).
NETWORK_ENTRIES: tuple[NetworkEntry, ...] = (
    NetworkEntry("l3-paper", l3_paper, "L3-Net AVC at paper size (9.5 M params, 20.5 G MACs per pair)"),
    NetworkEntry("l3-lite", l3_lite, "L3-Net AVC for live CPU use (0.39 M params, 0.33 G MACs per pair, 112x112 frames)"),
    NetworkEntry("l3-tiny", l3_tiny, "L3-Net AVC for tests (64x64 frames, 6 M MACs per pair)"),
)
