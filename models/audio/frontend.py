"""The one parameterised audio front end: waveform -> (log) linear or mel spectrogram.

Every avlive audio model describes its input features with a :class:`FrontEndConfig`
(stored in checkpoint metadata via :meth:`FrontEndConfig.to_dict`) and computes them with
:class:`FrontEnd`, a torch module that exports to ONNX (``torch.onnx.export(...,
dynamo=True, opset_version=18)``).

The features follow librosa's definitions, so a model trained on librosa features sees
the same numbers here::

    S = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                            window="hann", center=center, pad_mode="constant")) ** power
    S = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                            fmax=fmax, htk=mel_scale == "htk", norm=mel_norm) @ S  # if n_mels
    features = np.log(S + log_offset).T                                          # if log

(``window_frames=True`` adds L3's framing: the same on ``x`` zero-padded by
:attr:`FrontEndConfig.padding`, with ``center=False``.)

Precision: by default (``stft_dtype="float32"``) the features are computed in float32, and
float32 rounding in the STFT, and in the window itself, leaves a noise floor about 140 dB
under a frame's strongest bin. Bands whose energy lies near that floor (little energy above
5 kHz, a codec's empty top band, digital near-silence) then come out up to about 1 log unit
away from librosa's float64 values (README, "Shared pieces", gives the measured table and
``apps/frontend_precision.py`` re-measures it). ``stft_dtype="float64"`` computes the STFT,
the filterbank and the log in float64, in PyTorch and in the exported ONNX graph (the ONNX
``STFT`` op, which ONNX Runtime's CPU build runs in float64), and rounds only the features
to the input's float32: within half a float32 ulp of librosa. TensorRT has no FP64, so
``engines/build_engine.py`` refuses such graphs.

Two formulations of the STFT, chosen per module (:attr:`FrontEnd.stft_impl`, or for a whole
model :func:`stft_impl_override`; ``python -m models.export RUN --frontend conv``):

``"stft"`` (default)  ``torch.stft``, exported as ONNX's ``STFT`` op: an FFT, fast in PyTorch and
                      ONNX Runtime. TensorRT's ONNX parser has no ``STFT`` (nor ``DFT``) op:
                      onnx-tensorrt's operator matrix lists both as unsupported, so such a graph
                      does not build an engine.
``"conv"``            the same frames as a strided ``Conv1d`` whose ``2 · (n_fft // 2 + 1)``
                      kernels are the windowed DFT basis (``w[n]·cos(2πkn/N)``, ``-w[n]·sin(2πkn/N)``),
                      stride ``hop_length``: only convolution, multiply, add, sqrt, matmul, log,
                      which every TensorRT version builds (and runs in FP16 on Tensor Cores). It
                      costs ``n_fft / log2(n_fft)`` times the FFT's arithmetic, small beside the
                      networks that follow. Equal to ``"stft"`` within the export tolerance:
                      tests/test_frontend_conv.py measures both against the float64 features.

librosa is a test-only dependency: the Hann window and the mel filterbank are built here
from their definitions.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FrontEndConfig", "FrontEnd", "stft_dtype_override", "stft_impl_override", "STFT_IMPLS", "hz_to_mel",
           "mel_to_hz", "mel_filterbank", "hann_window", "dft_basis", "windowed_dft_basis", "conv_stft_power",
           "has_stft_impl"]

_MEL_SCALES = ("htk", "slaney")
_MEL_NORMS = (None, "slaney")
_STFT_DTYPES = ("float32", "float64")

#: The STFT formulations :class:`FrontEnd` has (see the module docstring).
STFT_IMPLS = ("stft", "conv")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class FrontEndConfig:
    """Everything that defines the features; validated on construction.

    Raises:
        ValueError: a field is out of range or of the wrong type; the message names the
            field and says ``expected ... found ...``.
    """

    sample_rate: int  # input sample rate in Hz
    n_fft: int  # FFT size; gives n_fft // 2 + 1 linear frequency bins
    win_length: int  # periodic Hann window length, <= n_fft, centred inside the n_fft frame
    hop_length: int  # samples between frame starts
    center: bool = True  # zero-pad n_fft // 2 samples at both ends (librosa pad_mode="constant")
    # Frame only the win_length samples under the window (each zero-padded to n_fft for the
    # FFT): 1 + (n - win_length) // hop frames, as L3 counts them, rather than librosa's
    # 1 + (n - n_fft) // hop. Same values as librosa.stft(center=False) on the signal
    # zero-padded by (n_fft - win_length) // 2 at the start and the rest at the end.
    # Only with center=False.
    window_frames: bool = False
    power: float = 1.0  # 1.0: magnitude |X|; 2.0: power |X|^2
    n_mels: int | None = None  # mel bands; None (or 0) = no filterbank, linear bins
    fmin: float = 0.0  # lowest mel edge in Hz (mel only)
    fmax: float | None = None  # highest mel edge in Hz, <= sample_rate / 2; None = sample_rate / 2
    mel_scale: str = "slaney"  # "htk" (2595 log10(1 + f/700)) or "slaney" (linear < 1 kHz, log above)
    mel_norm: str | None = "slaney"  # None (peak 1) or "slaney" (each band scaled by 2 / its width in Hz)
    log: bool = True  # return natural log(S + log_offset); False returns S itself
    log_offset: float = 1e-6  # added before the log, > 0 (keeps digital silence finite)
    # Precision of the STFT and all that follows it up to the log. "float32": the input's dtype
    # (float32 for every model; runs anywhere, TensorRT included). "float64": the waveform is
    # cast to float64, the features computed there (exact window and filterbank) and cast back
    # to the input's dtype: parity with float64 librosa references, for PyTorch and ONNX
    # Runtime only (TensorRT has no FP64). Old metadata without this key loads as "float32".
    stft_dtype: str = "float32"

    def __post_init__(self) -> None:
        def fail(name: str, expected: str) -> None:
            raise ValueError(f"FrontEndConfig.{name}: expected {expected}, found {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))

        def is_real(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))

        def set_(name: str, value: Any) -> None:  # canonical plain types (frozen dataclass)
            object.__setattr__(self, name, value)

        for name in ("sample_rate", "n_fft", "win_length", "hop_length"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(name, "a positive int")
            set_(name, int(getattr(self, name)))
        if self.win_length > self.n_fft:
            fail("win_length", f"an int <= n_fft={self.n_fft}")
        for name in ("center", "window_frames", "log"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                fail(name, "a bool")
            set_(name, bool(getattr(self, name)))
        if self.window_frames and self.center:
            fail("window_frames", "False when center=True (window_frames only applies without centring)")
        if not is_real(self.power) or float(self.power) not in (1.0, 2.0):
            fail("power", "1.0 (magnitude) or 2.0 (power)")
        set_("power", float(self.power))

        if self.n_mels is not None and (not is_int(self.n_mels) or self.n_mels < 0):
            fail("n_mels", "None, 0 or a positive int")
        set_("n_mels", int(self.n_mels) if self.n_mels else None)
        nyquist = self.sample_rate / 2
        if not is_real(self.fmin) or not 0.0 <= self.fmin < nyquist:
            fail("fmin", f"a number in [0, sample_rate/2={nyquist:g})")
        set_("fmin", float(self.fmin))
        if self.fmax is not None:
            if not is_real(self.fmax) or not self.fmin < self.fmax <= nyquist:
                fail("fmax", f"None or a number in (fmin={self.fmin:g}, sample_rate/2={nyquist:g}]")
            set_("fmax", float(self.fmax))
        if self.mel_scale not in _MEL_SCALES:
            fail("mel_scale", " or ".join(repr(s) for s in _MEL_SCALES))
        if self.mel_norm not in _MEL_NORMS:
            fail("mel_norm", " or ".join(repr(s) for s in _MEL_NORMS))
        if not is_real(self.log_offset) or not (math.isfinite(self.log_offset) and self.log_offset > 0):
            fail("log_offset", "a finite number > 0")
        set_("log_offset", float(self.log_offset))
        if self.stft_dtype not in _STFT_DTYPES:
            fail("stft_dtype", " or ".join(repr(s) for s in _STFT_DTYPES))

    @property
    def n_freqs(self) -> int:
        """Linear frequency bins of the STFT: ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def output_bins(self) -> int:
        """Feature bins per frame: ``n_mels``, or ``n_freqs`` without a filterbank."""
        return self.n_mels if self.n_mels else self.n_freqs

    @property
    def padding(self) -> tuple[int, int]:
        """Zeros added (before, after) the signal before framing it in n_fft-sample frames."""
        if self.center:
            return self.n_fft // 2, self.n_fft // 2
        if self.window_frames:
            extra = self.n_fft - self.win_length
            return extra // 2, extra - extra // 2
        return 0, 0

    def num_frames(self, n_samples: int) -> int:
        """Exact number of frames :class:`FrontEnd` gives for ``n_samples`` samples.

        ``1 + (n_samples + pad_before + pad_after - n_fft) // hop_length``, i.e.
        ``1 + n // hop`` with ``center``, ``1 + (n - win_length) // hop`` with
        ``window_frames`` and ``1 + (n - n_fft) // hop`` otherwise; 0 when not even one
        frame fits or ``n_samples`` is 0 (:meth:`FrontEnd.forward` refuses such input).
        """
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
            raise ValueError(f"num_frames: expected a non-negative int number of samples, found {n_samples!r}")
        padded = int(n_samples) + sum(self.padding)
        return 0 if n_samples == 0 or padded < self.n_fft else 1 + (padded - self.n_fft) // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{field: int | float | bool | str | None}`` for checkpoint metadata."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FrontEndConfig:
        """Inverse of :meth:`to_dict`; missing optional fields take their defaults.

        Raises:
            ValueError: ``d`` has unknown keys, lacks a required one, or a value is invalid.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"FrontEndConfig.from_dict: expected keys among {sorted(fields)}, found unknown {unknown}")
        missing = sorted(n for n, f in fields.items() if f.default is dataclasses.MISSING and n not in d)
        if missing:
            raise ValueError(f"FrontEndConfig.from_dict: expected required keys {missing}, found {sorted(d)}")
        return cls(**d)


# ---------------------------------------------------------------- window and filterbank

# Slaney's (Auditory Toolbox) mel scale: 3 mels per 200 Hz up to 1 kHz, then logarithmic
# with 27 mels per factor 6.4 (continuous at 1 kHz, where the mel value is 15).
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_MELS_PER_LOG_HZ = 27.0 / math.log(6.4)


def hz_to_mel(hz: np.ndarray | float, scale: str) -> np.ndarray:
    """Frequency in Hz -> mel on the ``"htk"`` or ``"slaney"`` scale (float64 array)."""
    hz = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    if scale == "slaney":
        linear = hz / _SLANEY_HZ_PER_MEL
        with np.errstate(divide="ignore", invalid="ignore"):  # log(<= 0) in the branch not taken
            logarithmic = _SLANEY_BREAK_MEL + np.log(hz / _SLANEY_BREAK_HZ) * _SLANEY_MELS_PER_LOG_HZ
        return np.where(hz >= _SLANEY_BREAK_HZ, logarithmic, linear)
    raise ValueError(f"hz_to_mel: expected scale 'htk' or 'slaney', found {scale!r}")


def mel_to_hz(mel: np.ndarray | float, scale: str) -> np.ndarray:
    """Mel on the ``"htk"`` or ``"slaney"`` scale -> frequency in Hz (float64 array)."""
    mel = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    if scale == "slaney":
        linear = mel * _SLANEY_HZ_PER_MEL
        logarithmic = _SLANEY_BREAK_HZ * np.exp((mel - _SLANEY_BREAK_MEL) / _SLANEY_MELS_PER_LOG_HZ)
        return np.where(mel >= _SLANEY_BREAK_MEL, logarithmic, linear)
    raise ValueError(f"mel_to_hz: expected scale 'htk' or 'slaney', found {scale!r}")


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    scale: str = "slaney",
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filterbank, float64, shape ``(n_mels, n_fft // 2 + 1)``.

    Band ``m`` has corners at ``n_mels + 2`` frequencies equally spaced in mel between
    ``fmin`` and ``fmax`` (``edges[m] < edges[m+1] < edges[m+2]``); its weight at FFT bin
    frequency ``f`` rises linearly in Hz from 0 at ``edges[m]`` to 1 at ``edges[m+1]`` and
    falls back to 0 at ``edges[m+2]``. With ``norm="slaney"`` the band is scaled by
    ``2 / (edges[m+2] - edges[m])`` (equal area). Same definition as
    ``librosa.filters.mel(..., htk=scale == "htk", norm=norm)``.

    Args:
        sample_rate: sample rate in Hz.
        n_fft: FFT size.
        n_mels: number of bands.
        fmin: lowest corner in Hz.
        fmax: highest corner in Hz; None means ``sample_rate / 2``.
        scale: ``"htk"`` or ``"slaney"``.
        norm: None or ``"slaney"``.

    Returns:
        ``(n_mels, n_fft // 2 + 1)`` float64 weights.
    """
    if norm not in _MEL_NORMS:
        raise ValueError(f"mel_filterbank: expected norm None or 'slaney', found {norm!r}")
    fmax = sample_rate / 2 if fmax is None else fmax
    bin_hz = np.arange(n_fft // 2 + 1, dtype=np.float64) * (sample_rate / n_fft)  # (F,)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, scale), hz_to_mel(fmax, scale), n_mels + 2), scale)  # (M+2,)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (M, 1) each
    rising = (bin_hz - lower) / (centre - lower)  # (M, F)
    falling = (upper - bin_hz) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= 2.0 / (upper - lower)
    return weights


def hann_window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` centred in ``n_fft`` zeros, float64, ``(n_fft,)``.

    ``0.5 - 0.5 cos(2 pi n / win_length)`` for ``n < win_length``, preceded by
    ``(n_fft - win_length) // 2`` zeros (the placement librosa.stft and torch.stft use).
    """
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
    out = np.zeros(n_fft, dtype=np.float64)
    start = (n_fft - win_length) // 2
    out[start:start + win_length] = window
    return out


def windowed_dft_basis(window: np.ndarray) -> np.ndarray:
    """The one-sided DFT basis times ``window`` (length ``n_fft``) as ``Conv1d`` kernels, float64,
    ``(2 F, 1, n_fft)``, ``F = n_fft // 2 + 1``.

    Rows ``0 .. F-1`` are ``w[n] cos(2 pi k n / n_fft)`` and rows ``F .. 2F-1`` are
    ``-w[n] sin(2 pi k n / n_fft)``, so that ``conv1d(x, basis, stride=hop)`` gives the real and
    imaginary parts of ``torch.stft(x, n_fft, hop, window=w, center=False)`` frame by frame.
    ``k n`` is reduced modulo ``n_fft`` before the angle is formed, keeping the angles exact.
    """
    window = np.asarray(window, dtype=np.float64)
    n_fft = len(window)
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)
    angle = 2.0 * np.pi * ((k[:, None] * n[None, :]) % n_fft) / n_fft  # (F, n_fft)
    basis = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])  # (2F, n_fft)
    return basis[:, None, :]


def dft_basis(win_length: int, n_fft: int) -> np.ndarray:
    """:func:`windowed_dft_basis` of avlive's window, :func:`hann_window` ``(win_length, n_fft)``."""
    return windowed_dft_basis(hann_window(win_length, n_fft))


def conv_stft_power(wave: torch.Tensor, basis: torch.Tensor, hop_length: int) -> torch.Tensor:
    """``|STFT|^2`` of already padded ``(B, N)`` audio as a strided convolution with ``basis``
    (:func:`windowed_dft_basis`, ``(2F, 1, n_fft)``, in ``wave``'s dtype): ``(B, F, T)``."""
    parts = F.conv1d(wave.unsqueeze(1), basis, stride=hop_length)  # (B, 2F, T): real rows, then imaginary
    return parts.square().unflatten(1, (2, basis.shape[0] // 2)).sum(1)


def has_stft_impl(module: nn.Module) -> bool:
    """Whether ``module`` offers the two STFT formulations (an ``stft_impl`` property, as
    :class:`FrontEnd` and EfficientAT's ``LogMel`` have)."""
    return isinstance(getattr(type(module), "stft_impl", None), property)


# --------------------------------------------------------------------------- module


class FrontEnd(nn.Module):
    """Waveform ``(B, N)`` -> features ``(B, T, F)`` as :class:`FrontEndConfig` defines.

    ``T = config.num_frames(N)``, ``F = config.output_bins``. Computes in the input's
    dtype (float32 or float64), or in float64 whatever the input when
    ``config.stft_dtype == "float64"``; returns the input's dtype.

    The window, the filterbank and the log offset are buffers built once, in float64, and
    kept twice: ``window``/``filterbank``/``offset`` in float32 (the float32 path, so a
    default ONNX export carries float32 initializers only; TensorRT has no float64) and
    ``window64``/``filterbank64``/``offset64`` for the float64 path. All are registered with
    ``persistent=False``: they are pure functions of the config (which checkpoints carry as
    metadata), so storing them would only duplicate it (the EPIC filterbank alone is 128 x
    1025 values), and would make loading a checkpoint fail, or silently override the
    config, whenever the front end changes. They follow ``.to(device)`` and are baked into
    ONNX exports. ``.float()``, ``.half()`` or ``.to(dtype)`` on a parent module leave the
    ``*64`` buffers in float64 (only their device follows): a float32-rounded window alone
    moves the EPIC log-mels of audio low-passed at 5 kHz by 0.04, which would cost the
    float64 path its exactness.
    """

    window: torch.Tensor  # (n_fft,) float32
    window64: torch.Tensor  # (n_fft,) float64
    filterbank: torch.Tensor | None  # (n_mels, n_fft // 2 + 1) float32, None without mels
    filterbank64: torch.Tensor | None  # the same in float64
    offset: torch.Tensor  # (1,) float32: config.log_offset
    offset64: torch.Tensor  # (1,) float64

    def __init__(self, config: FrontEndConfig) -> None:
        """Args:
            config: the feature definition (validated already by its constructor).
        """
        super().__init__()
        if not isinstance(config, FrontEndConfig):
            raise ValueError(f"FrontEnd: expected a FrontEndConfig, found {type(config).__name__}")
        self.config = config
        window = torch.from_numpy(hann_window(config.win_length, config.n_fft))  # (n_fft,)
        filterbank = None
        if config.n_mels:
            filterbank = torch.from_numpy(
                mel_filterbank(
                    config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax,
                    config.mel_scale, config.mel_norm,
                )
            )  # (n_mels, n_freqs)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("window64", window, persistent=False)
        self.register_buffer("filterbank", None if filterbank is None else filterbank.float(), persistent=False)
        self.register_buffer("filterbank64", filterbank, persistent=False)
        # log_offset as a (1,) tensor, not a Python scalar: the ONNX exporter's optimizer
        # (onnxscript 0.7) rewrites x + c to x for scalar constants within 1e-8 of 0, which
        # silently dropped log_offset=1e-10 from exported graphs (digital silence gave -inf),
        # and a scalar reaches the graph rounded to float32 even on the float64 path.
        offset = torch.tensor([config.log_offset], dtype=torch.float64)
        self.register_buffer("offset", offset.float(), persistent=False)
        self.register_buffer("offset64", offset, persistent=False)
        # the "conv" formulation's kernels, built on first use (an EPIC front end's are 2050 x 2048)
        self.register_buffer("basis", None, persistent=False)  # (2F, 1, n_fft) float32
        self.register_buffer("basis64", None, persistent=False)  # the same in float64
        self.stft_impl = "stft"

    @property
    def stft_impl(self) -> str:
        """``"stft"`` (``torch.stft``, ONNX ``STFT``) or ``"conv"`` (strided ``Conv1d`` with the
        windowed DFT basis, which TensorRT builds); see the module docstring."""
        return self.__dict__.get("_stft_impl", "stft")  # a module pickled before it existed: "stft"

    @stft_impl.setter
    def stft_impl(self, value: str) -> None:
        if value not in STFT_IMPLS:
            raise ValueError(f"FrontEnd.stft_impl: expected {' or '.join(map(repr, STFT_IMPLS))}, found {value!r}")
        if value == "conv" and getattr(self, "basis", None) is None:
            basis = torch.from_numpy(dft_basis(self.config.win_length, self.config.n_fft)).to(self.window.device)
            self.basis = basis.float()
            self.basis64 = basis
        self._stft_impl = value

    @property
    def output_bins(self) -> int:
        """Feature bins per frame (``F`` of the output)."""
        return self.config.output_bins

    def _apply(self, fn: Any, recurse: bool = True) -> FrontEnd:
        """``nn.Module._apply`` (behind ``.to``, ``.float()``, ``.cuda()`` ...), except that the
        float64 buffers keep their exact float64 values and follow only the device."""
        exact = {"window64": self.window64, "filterbank64": self.filterbank64, "offset64": self.offset64,
                 "basis64": getattr(self, "basis64", None)}
        super()._apply(fn, recurse)
        for name, before in exact.items():
            after = getattr(self, name)
            if before is not None and after is not None and after.dtype != torch.float64:
                setattr(self, name, before.to(device=after.device))
        return self

    def num_frames(self, n_samples: int) -> int:
        """Frames (``T`` of the output) for ``n_samples`` input samples; see
        :meth:`FrontEndConfig.num_frames`."""
        return self.config.num_frames(n_samples)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Features of a batch of waveforms.

        Args:
            wave: ``(B, N)`` float32 or float64 samples; ``N`` must give at least one
                frame (``num_frames(N) >= 1``).

        Returns:
            ``(B, T, F)`` in ``wave``'s dtype, ``T = num_frames(N)``, ``F = output_bins``:
            ``log(S + log_offset)`` (or ``S`` with ``log=False``), ``S`` the mel-filtered
            (or linear) STFT magnitude raised to ``power``; computed in float64 when
            ``config.stft_dtype == "float64"`` or ``wave`` is float64.
        """
        if wave.dim() != 2:
            raise ValueError(f"FrontEnd: expected a (batch, samples) waveform, found shape {tuple(wave.shape)}")
        if wave.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"FrontEnd: expected float32 or float64 samples, found {wave.dtype}")
        if wave.shape[1] == 0:  # padding alone would make a frame of it
            raise ValueError("FrontEnd: expected at least one sample, found 0")
        cfg = self.config
        out_dtype = wave.dtype
        double = cfg.stft_dtype == "float64" or wave.dtype == torch.float64
        if double:
            wave = wave.to(torch.float64)  # an ONNX Cast; the graph computes in float64 from here
        window = (self.window64 if double else self.window).to(wave.dtype)  # no-op unless .double()
        filterbank = self.filterbank64 if double else self.filterbank
        offset = self.offset64 if double else self.offset
        before, after = cfg.padding
        if before or after:
            wave = F.pad(wave, (before, after))  # zeros, (B, N + before + after)
        if self.stft_impl == "conv":
            basis = (self.basis64 if double else self.basis).to(wave.dtype)  # (2F, 1, n_fft)
            s = conv_stft_power(wave, basis, cfg.hop_length).transpose(1, 2)  # |X|^2, (B, T, n_freqs)
        else:
            spec = torch.stft(
                wave, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft,
                window=window, center=False, onesided=True, return_complex=True,
            )  # (B, n_freqs, T) complex
            re_im = torch.view_as_real(spec)  # (B, n_freqs, T, 2): one path for both powers
            s = re_im.square().sum(-1).transpose(1, 2)  # |X|^2, (B, T, n_freqs)
        if cfg.power == 1.0:
            s = s.sqrt()
        if filterbank is not None:
            s = torch.matmul(s, filterbank.to(wave.dtype).T)  # (B, T, n_mels)
        if cfg.log:
            s = torch.log(s + offset.to(wave.dtype))
        return s.to(out_dtype)  # no-op unless stft_dtype="float64" on float32 input

    def extra_repr(self) -> str:
        return repr(self.config) + (", stft_impl='conv'" if self.stft_impl == "conv" else "")


@contextlib.contextmanager
def stft_dtype_override(module: nn.Module, stft_dtype: str) -> Iterator[list[FrontEnd]]:
    """Run every :class:`FrontEnd` inside ``module`` with ``stft_dtype`` until the block ends.

    For measuring what float32 costs a whole model: its output with the front ends as
    configured against the same with ``"float64"`` (models/export/onnx.py does this). Each
    front end's config is replaced (``dataclasses.replace``) and restored on exit, even on
    error; the buffers for both precisions are always there, so nothing is rebuilt.

    Yields:
        The front ends found (empty when ``module`` holds none).

    Raises:
        ValueError: ``stft_dtype`` is not ``"float32"`` or ``"float64"``.
    """
    if stft_dtype not in _STFT_DTYPES:
        raise ValueError(f"stft_dtype_override: expected {' or '.join(map(repr, _STFT_DTYPES))}, found {stft_dtype!r}")
    front_ends = [m for m in module.modules() if isinstance(m, FrontEnd)]
    saved = [fe.config for fe in front_ends]
    try:
        for fe in front_ends:
            fe.config = dataclasses.replace(fe.config, stft_dtype=stft_dtype)
        yield front_ends
    finally:
        for fe, config in zip(front_ends, saved):
            fe.config = config


@contextlib.contextmanager
def stft_impl_override(module: nn.Module, stft_impl: str) -> Iterator[list[nn.Module]]:
    """Run every front end inside ``module`` that has both formulations (:func:`has_stft_impl`:
    :class:`FrontEnd`, EfficientAT's ``LogMel``) with the STFT formulation ``stft_impl``
    (``"stft"`` or ``"conv"``) until the block ends, restoring each one's own on exit, even on
    error. ``python -m models.export RUN --frontend conv`` exports under it.

    Yields:
        The front ends found (empty when ``module`` holds none).

    Raises:
        ValueError: ``stft_impl`` is not one of :data:`STFT_IMPLS`.
    """
    if stft_impl not in STFT_IMPLS:
        raise ValueError(f"stft_impl_override: expected {' or '.join(map(repr, STFT_IMPLS))}, found {stft_impl!r}")
    front_ends = [m for m in module.modules() if has_stft_impl(m)]
    saved = [fe.stft_impl for fe in front_ends]
    try:
        for fe in front_ends:
            fe.stft_impl = stft_impl
        yield front_ends
    finally:
        for fe, impl in zip(front_ends, saved):
            fe.stft_impl = impl
