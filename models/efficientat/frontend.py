"""EfficientAT's front end at evaluation: 32 kHz waveform → normalised log-mel, as the authors'
``AugmentMelSTFT`` (``models/preprocess.py``) computes it with augmentation off.

Steps (each default below is theirs, from that module and ``inference.py``):

1. pre-emphasis ``y[n] = x[n+1] - 0.97 x[n]`` (a valid convolution: N samples → N - 1);
2. STFT: n_fft 1024, an 800-sample *symmetric* Hann window zero-padded centrally to 1024, hop 320,
   centred with reflect padding of n_fft / 2 (``torch.stft(center=True)``'s default), not
   normalised → ``1 + (N - 1) // 320`` frames (100 per second);
3. power ``re² + im²``;
4. Kaldi-style mel banks (:func:`kaldi_mel_banks`), 128 bands from 0 to 15000 Hz (their ``fmax=None``
   means ``sr / 2 - fmax_aug_range / 2`` = 16000 - 1000), a zero column for the Nyquist bin;
5. ``ln(mel + 1e-5)``, then ``(x + 4.5) / 5``.

This module has no state-dict keys (the authors keep the window and the pre-emphasis kernel as
non-persistent buffers, so their checkpoints hold none either).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.audio.frontend import STFT_IMPLS, conv_stft_power, windowed_dft_basis

__all__ = ["MelConfig", "kaldi_mel_banks", "symmetric_hann", "LogMel"]


@dataclass(frozen=True)
class MelConfig:
    """The front end's settings (the authors' evaluation values as defaults)."""

    sample_rate: int = 32000  # Hz; the authors resample every clip to 32 kHz
    n_fft: int = 1024  # FFT size → 513 bins
    win_length: int = 800  # symmetric Hann length, zero-padded centrally to n_fft
    hop_length: int = 320  # 10 ms
    n_mels: int = 128  # mel bands
    fmin: float = 0.0  # lowest mel edge, Hz
    fmax: float = 15000.0  # highest mel edge, Hz
    preemphasis: float = 0.97  # y[n] = x[n+1] - preemphasis · x[n]
    log_offset: float = 1e-5  # ln(mel + log_offset)
    shift: float = 4.5  # (ln mel + shift) / scale: the authors' "fast normalization"
    scale: float = 5.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MelConfig.{name}: expected an int >= 1, found {value!r}")
        if self.win_length > self.n_fft or self.n_fft % 2:
            raise ValueError(f"MelConfig: expected an even n_fft >= win_length, found n_fft {self.n_fft}, "
                             f"win_length {self.win_length}")
        if self.n_mels <= 3:
            raise ValueError(f"MelConfig.n_mels: expected > 3 (Kaldi's banks), found {self.n_mels}")
        if not 0.0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"MelConfig: expected 0 <= fmin < fmax <= {self.sample_rate / 2:g} Hz, "
                             f"found fmin {self.fmin!r}, fmax {self.fmax!r}")

    def num_frames(self, n_samples: int) -> int:
        """Frames for ``n_samples`` samples: one per hop of the pre-emphasised signal, centred."""
        return 1 + (n_samples - 1) // self.hop_length

    @property
    def min_samples(self) -> int:
        """The shortest input: reflect padding needs more pre-emphasised samples than n_fft / 2."""
        return self.n_fft // 2 + 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi's triangular mel filters (no VTLN warp), as the authors get them from torchaudio's
    ``compliance.kaldi.get_mel_banks`` and pad with a zero column.

    The mel scale is ``1127 ln(1 + f / 700)``. Band ``m`` (0-based) rises from mel edge
    ``mel(fmin) + m·Δ`` to a peak of 1 at ``+ (m+1)·Δ`` and falls to 0 at ``+ (m+2)·Δ``,
    ``Δ = (mel(fmax) - mel(fmin)) / (n_mels + 1)``; the triangles are linear *in mel* (not in Hz)
    and not area-normalised. They are sampled at FFT bins ``k · sample_rate / n_fft`` for
    ``k < n_fft / 2``; the Nyquist bin ``k = n_fft / 2`` gets 0.

    Returns:
        ``(n_mels, n_fft // 2 + 1)`` float64.
    """
    delta = (_mel(fmax) - _mel(fmin)) / (n_mels + 1)
    edges = _mel(fmin) + np.arange(n_mels + 2, dtype=np.float64) * delta  # (n_mels + 2,)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1) each
    bins = _mel(np.arange(n_fft // 2, dtype=np.float64) * (sample_rate / n_fft))[None, :]  # (1, n_fft / 2)
    rise = (bins - left) / (centre - left)
    fall = (right - bins) / (right - centre)
    banks = np.maximum(0.0, np.minimum(rise, fall))  # (n_mels, n_fft / 2)
    return np.concatenate([banks, np.zeros((n_mels, 1))], axis=1)


def symmetric_hann(win_length: int, n_fft: int) -> np.ndarray:
    """``0.5 - 0.5 cos(2π n / (win_length - 1))`` (``torch.hann_window(periodic=False)``), zero-padded
    to ``n_fft`` with ``(n_fft - win_length) // 2`` zeros before it, as ``torch.stft`` places it.

    Returns:
        ``(n_fft,)`` float64.
    """
    n = np.arange(win_length, dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2.0 * math.pi * n / (win_length - 1))
    before = (n_fft - win_length) // 2
    return np.pad(window, (before, n_fft - win_length - before))


class LogMel(nn.Module):
    """Waveform → the authors' normalised log-mel, computed in the input's dtype.

    Shape: ``(B, N)`` float32 or float64 at ``config.sample_rate``, ``N >= config.min_samples`` →
    ``(B, 1, n_mels, T)``, ``T = config.num_frames(N)`` (the network's input, channel axis added).
    """

    def __init__(self, config: MelConfig = MelConfig()) -> None:
        super().__init__()
        self.config = config
        window = symmetric_hann(config.win_length, config.n_fft)
        banks = kaldi_mel_banks(config.n_mels, config.n_fft, config.sample_rate, config.fmin, config.fmax)
        # float32 copies for float32 input, exact float64 ones for float64 input (parity runs)
        self.register_buffer("window", torch.tensor(window, dtype=torch.float32), persistent=False)
        self.register_buffer("banks", torch.tensor(banks, dtype=torch.float32), persistent=False)
        self.register_buffer("window64", torch.tensor(window, dtype=torch.float64), persistent=False)
        self.register_buffer("banks64", torch.tensor(banks, dtype=torch.float64), persistent=False)
        # the "conv" formulation's kernels (models/audio/frontend.py), built on first use
        self.register_buffer("basis", None, persistent=False)
        self.register_buffer("basis64", None, persistent=False)

    @property
    def stft_impl(self) -> str:
        """``"stft"`` (``torch.stft``, ONNX ``STFT``) or ``"conv"`` (a strided ``Conv1d`` with the
        windowed DFT basis, which TensorRT's ONNX parser builds; ``models.export --frontend conv``)."""
        return self.__dict__.get("_stft_impl", "stft")

    @stft_impl.setter
    def stft_impl(self, value: str) -> None:
        if value not in STFT_IMPLS:
            raise ValueError(f"LogMel.stft_impl: expected {' or '.join(map(repr, STFT_IMPLS))}, found {value!r}")
        if value == "conv" and getattr(self, "basis", None) is None:
            basis = torch.from_numpy(windowed_dft_basis(self.window64.cpu().numpy())).to(self.window.device)
            self.basis, self.basis64 = basis.float(), basis
        self.__dict__["_stft_impl"] = value

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        double = wave.dtype == torch.float64
        window, banks = (self.window64, self.banks64) if double else (self.window, self.banks)
        x = wave[:, 1:] - cfg.preemphasis * wave[:, :-1]  # (B, N - 1)
        pad = cfg.n_fft // 2
        x = F.pad(x[:, None, :], (pad, pad), mode="reflect")[:, 0, :]  # (B, N - 1 + n_fft)
        if self.stft_impl == "conv":
            power = conv_stft_power(x, (self.basis64 if double else self.basis), cfg.hop_length)  # (B, F, T)
        else:
            spec = torch.stft(x, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft, window=window,
                              center=False, normalized=False, onesided=True, return_complex=True)  # (B, F, T)
            power = torch.view_as_real(spec).square().sum(-1)  # (B, n_fft / 2 + 1, T)
        mel = torch.matmul(banks, power)  # (B, n_mels, T)
        logmel = (torch.log(mel + cfg.log_offset) + cfg.shift) / cfg.scale
        return logmel[:, None, :, :]  # (B, 1, n_mels, T)
