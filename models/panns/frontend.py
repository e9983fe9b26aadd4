"""The PANNs front end: waveform -> log-mel in decibels, as the released checkpoints compute it.

PANNs (Kong et al., 2020) keep their STFT and mel filterbank as frozen layers of the network,
so a checkpoint carries them: ``spectrogram_extractor.stft.conv_real.weight`` and
``...conv_imag.weight`` ``(n_fft // 2 + 1, 1, n_fft)`` (the real and imaginary parts of the
first ``n_fft // 2 + 1`` DFT rows, times a periodic Hann window) and ``logmel_extractor.melW``
``(n_fft // 2 + 1, n_mels)`` (librosa's Slaney mel filterbank, transposed). This module uses
those tensors as they are in the file, under the same keys, so an imported model computes the
features its weights were trained on. Built without a file (:func:`reference_kernels`), they
come from the definitions: the DFT and Hann window in float64 and the filterbank of
:func:`models.audio.frontend.mel_filterbank`, rounded to float32 as the released files hold them.

The steps (facts of the authors' code, ``torchlibrosa`` ``Spectrogram`` / ``LogmelFilterBank``
with ``center=True, pad_mode="reflect", power=2, ref=1, amin=1e-10, top_db=None``):
reflect-pad ``n_fft // 2`` samples at both ends, two strided 1-D convolutions (hop
``hop_length``), power ``re^2 + im^2``, mel projection, ``10 * log10(max(mel, 1e-10))``.
Frames: ``T = 1 + N // hop_length`` for ``N >= n_fft // 2 + 1`` samples (reflection needs
more samples than the pad).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.audio.frontend import hann_window, mel_filterbank

__all__ = ["LogMelFrontEnd", "reference_kernels", "AMIN_POWER"]

#: The floor of the mel power before the log (torchlibrosa ``amin``): -100 dB.
AMIN_POWER = 1e-10


def reference_kernels(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The front-end tensors a PANNs checkpoint holds, built from their definitions.

    Returns:
        ``(conv_real, conv_imag, melW)``: ``(F, 1, n_fft)``, ``(F, 1, n_fft)``, ``(F, n_mels)``
        float32, ``F = n_fft // 2 + 1``; ``conv_real[k, 0, n] = cos(2 pi k n / n_fft) w[n]`` and
        ``conv_imag[k, 0, n] = -sin(2 pi k n / n_fft) w[n]`` (the DFT's ``e^{-2 pi i k n / N}``),
        ``w`` the periodic Hann window.
    """
    n = np.arange(n_fft, dtype=np.float64)
    k = np.arange(n_fft // 2 + 1, dtype=np.float64)
    # k * n reduced mod n_fft before the angle: exact integers, so large products lose nothing
    angle = 2.0 * np.pi * (np.outer(k, n) % n_fft) / n_fft  # (F, n_fft)
    window = hann_window(n_fft, n_fft)  # (n_fft,)
    real = torch.from_numpy(np.cos(angle) * window).float()[:, None, :]
    imag = torch.from_numpy(-np.sin(angle) * window).float()[:, None, :]
    mel = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, "slaney", "slaney").T).float()
    return real.contiguous(), imag.contiguous(), mel.contiguous()


class _Stft(nn.Module):
    """Holds the DFT kernels as ``conv_real`` / ``conv_imag`` (the checkpoint's key names)."""

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop_length, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop_length, bias=False)


class _Spectrogram(nn.Module):
    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.stft = _Stft(n_fft, hop_length)


class _MelProjection(nn.Module):
    def __init__(self, n_fft: int, n_mels: int) -> None:
        super().__init__()
        self.melW = nn.Parameter(torch.zeros(n_fft // 2 + 1, n_mels), requires_grad=False)


class LogMelFrontEnd(nn.Module):
    """Waveform ``(B, N)`` -> log-mel ``(B, T, n_mels)`` in dB, ``T = 1 + N // hop_length``.

    The kernels start as :func:`reference_kernels`; loading a checkpoint replaces them with the
    file's (same keys). Computes in the module's dtype (``.double()`` for float64).

    Args:
        sample_rate: Hz (only for the reference kernels).
        n_fft: DFT size = window length.
        hop_length: samples between frames.
        n_mels: mel bands.
        fmin, fmax: mel band edges in Hz (only for the reference kernels).
    """

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, fmin: float, fmax: float) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.spectrogram_extractor = _Spectrogram(n_fft, hop_length)
        self.logmel_extractor = _MelProjection(n_fft, n_mels)
        real, imag, mel = reference_kernels(sample_rate, n_fft, n_mels, fmin, fmax)
        with torch.no_grad():
            self.spectrogram_extractor.stft.conv_real.weight.copy_(real)
            self.spectrogram_extractor.stft.conv_imag.weight.copy_(imag)
            self.logmel_extractor.melW.copy_(mel)
        for p in self.parameters():
            p.requires_grad_(False)

    def num_frames(self, samples: int) -> int:
        """Frames for ``samples`` input samples: ``1 + samples // hop_length``."""
        return 1 + samples // self.hop_length

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Args:
            wave: ``(B, N)`` samples, ``N > n_fft // 2``.

        Returns:
            ``(B, T, n_mels)`` decibels, ``T = 1 + N // hop_length``.
        """
        pad = self.n_fft // 2
        x = F.pad(wave[:, None, :], (pad, pad), mode="reflect")  # (B, 1, N + n_fft)
        stft = self.spectrogram_extractor.stft
        real = stft.conv_real(x)  # (B, F, T)
        imag = stft.conv_imag(x)
        power = (real * real + imag * imag).transpose(1, 2)  # (B, T, F)
        mel = torch.matmul(power, self.logmel_extractor.melW)  # (B, T, n_mels)
        return 10.0 * torch.log10(torch.clamp(mel, min=AMIN_POWER))
