"""Seeded random PANNs checkpoints in the authors' layout, for tests and benchmarks.

A released Cnn14 file is 327 MB, too big for the repository; a test regenerates a file of the
same keys and shapes from a key/shape table and a seed (tests/data/panns/). The values are
drawn key by key, in table order, from one ``torch.Generator`` (CPU) seeded once, so the same
table and seed give the same tensors on every machine:

=============================  ==============================================================
key                            values
=============================  ==============================================================
front end (DFT kernels, melW)  :func:`models.panns.frontend.reference_kernels` (not random)
conv / linear ``weight``       uniform, Xavier bound ``sqrt(6 / (fan_in + fan_out))``
conv / linear ``bias``         normal, std 0.05
BN ``weight`` / ``bias``       uniform [0.8, 1.2] / normal, std 0.1
BN ``running_mean``            normal, std 0.1 (``bn0``: -30 dB + normal std 5)
BN ``running_var``             uniform [0.5, 1.5] (``bn0``: 100 x that: log-mel in dB)
``num_batches_tracked``        0
=============================  ==============================================================

The perturbed running statistics keep every batch norm away from the identity, so a parity
test checks that each one is applied as the authors apply it.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch

from models.panns.checkpoint import FRONTEND_BY_NFFT
from models.panns.frontend import reference_kernels
from models.panns.network import PannsConfig, PannsNet

__all__ = ["key_table", "random_state_dict", "random_checkpoint"]

_FRONTEND = ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
             "logmel_extractor.melW")


def key_table(config: PannsConfig) -> list[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` of every tensor of ``config``'s network, in state-dict order (the
    authors' keys)."""
    return [(k, tuple(v.shape)) for k, v in PannsNet(config).panns_state_dict().items()]


def _frontend(table: Sequence[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    shapes = dict(table)
    n_fft = shapes[_FRONTEND[0]][-1]
    base = FRONTEND_BY_NFFT[n_fft]
    real, imag, mel = reference_kernels(base.sample_rate, n_fft, shapes[_FRONTEND[2]][1], base.fmin, base.fmax)
    return dict(zip(_FRONTEND, (real, imag, mel)))


def random_state_dict(table: Iterable[tuple[str, Sequence[int]]], seed: int) -> dict[str, torch.Tensor]:
    """A state dict with ``table``'s keys and shapes, values as the module docstring says.

    Args:
        table: ``(key, shape)`` pairs in the order the values are drawn.
        seed: the generator's seed.
    """
    table = [(k, tuple(int(s) for s in shape)) for k, shape in table]
    g = torch.Generator().manual_seed(seed)
    front = _frontend(table) if _FRONTEND[0] in dict(table) else {}

    def uniform(shape, low, high):
        return torch.rand(shape, generator=g) * (high - low) + low

    def normal(shape, mean, std):
        return torch.randn(shape, generator=g) * std + mean

    out: dict[str, torch.Tensor] = {}
    for key, shape in table:
        module, _, name = key.rpartition(".")
        leaf = module.rpartition(".")[2]
        is_bn = leaf.startswith("bn")
        if key in front:
            value = front[key]
        elif name == "num_batches_tracked":
            value = torch.zeros(shape, dtype=torch.int64)
        elif is_bn and name == "weight":
            value = uniform(shape, 0.8, 1.2)
        elif is_bn and name == "bias":
            value = normal(shape, 0.0, 0.1)
        elif name == "running_mean":
            value = normal(shape, -30.0, 5.0) if leaf == "bn0" else normal(shape, 0.0, 0.1)
        elif name == "running_var":
            value = uniform(shape, 0.5, 1.5) * (100.0 if leaf == "bn0" else 1.0)
        elif name == "weight":
            receptive = math.prod(shape[2:])
            bound = math.sqrt(6.0 / ((shape[1] + shape[0]) * receptive))
            value = uniform(shape, -bound, bound)
        elif name == "bias":
            value = normal(shape, 0.0, 0.05)
        else:
            raise ValueError(f"random_state_dict: no rule for key {key!r}")
        out[key] = value.contiguous()
    return out


def random_checkpoint(config: PannsConfig, seed: int) -> dict:
    """``{"model": state dict, "iteration": 0}`` for ``config``: the layout of the authors'
    ``pytorch/main.py`` checkpoints (``torch.save`` it to get a file)."""
    return {"model": random_state_dict(key_table(config), seed), "iteration": 0}
