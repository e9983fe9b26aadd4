"""The EfficientAT parity fixture (tests/data/efficientat/): the random checkpoints rebuilt from the
authors' key/shape tables, and the input waveform. Used by tests/test_efficientat.py and by
tests/data/efficientat/make_fixture.py, which ran the authors' code on the same checkpoints.

Recipe (all draws float64 from one ``torch.Generator`` seeded with the table's seed, keys in table
order, then cast to the key's dtype; BN = a key whose prefix also has ``running_mean``):

==========================  =============================================================
key                         value
==========================  =============================================================
``*.num_batches_tracked``   0 (no draw)
BN ``weight``               1 + 0.2 · N(0, 1)
BN ``bias``                 0.2 · N(0, 1)
BN ``running_mean``         0.2 · N(0, 1)
BN ``running_var``          1 + 0.5 · U[0, 1)
DyReLU ``lambdas, init_v``  their constants [1]·M + [0.5]·M and [1] + [0]·(2M-1) (no draw)
dynamic conv ``weight``     N(0, 1) · sqrt(2K / fan_in), fan_in = P / cout, for the DyMN shape
                            (1, 1, K, P), cout = the size of the BN that follows (``X_norm``);
                            K times the variance, as a mix of K independent kernels with
                            weights near 1/K has 1/K of it
other ≥ 2-D (conv, linear)  N(0, 1) · sqrt(2 / fan_in), fan_in = prod(shape[1:])
other 1-D (linear bias)     0.2 · N(0, 1)
==========================  =============================================================

BN running statistics away from (0, 1) make every BN layer a real affine map, so a wrong eps,
a swapped mean/var or a missing layer shows in the outputs. The scales were chosen (by trying a
few) so that both sizes answer the input: a random MobileNet this deep either blows its
activations up or forgets its input, and with these the two clips of the batch move mn10's
logits by up to 0.9 (logit spread 1.4) and mn04's by up to 10 (spread 17).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

FIXTURE = Path(__file__).resolve().parent / "data" / "efficientat"

_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def random_state(table: list[list], seed: int) -> dict[str, torch.Tensor]:
    """A flat state dict for ``table`` (``[[key, shape, dtype], ...]``), drawn by the recipe above."""
    g = torch.Generator().manual_seed(seed)
    shapes = {row[0]: row[1] for row in table}
    out: dict[str, torch.Tensor] = {}
    for key, shape, dtype in table:
        prefix, leaf = key.rsplit(".", 1)
        bn = f"{prefix}.running_mean" in shapes
        if leaf == "num_batches_tracked":
            value = torch.zeros(shape, dtype=torch.float64)
        elif leaf in ("lambdas", "init_v"):  # DyReLU-B's constants
            m = shape[0] // 2
            value = torch.tensor([1.0] * m + [0.5] * m if leaf == "lambdas" else [1.0] + [0.0] * (2 * m - 1),
                                 dtype=torch.float64)
        elif len(shape) == 4 and shape[:2] == [1, 1]:  # a dynamic conv's K kernels, flattened
            cout = shapes[f"{prefix[:-len('_conv')]}_norm.weight"][0]
            value = torch.randn(shape, generator=g, dtype=torch.float64) * math.sqrt(2.0 * shape[2] * cout / shape[3])
        elif bn and leaf == "running_var":
            value = 1.0 + 0.5 * torch.rand(shape, generator=g, dtype=torch.float64)
        elif bn and leaf == "weight":
            value = 1.0 + 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif bn or len(shape) == 1:
            value = 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            fan_in = math.prod(shape[1:])
            value = torch.randn(shape, generator=g, dtype=torch.float64) * math.sqrt(2.0 / fan_in)
        out[key] = value.to(_DTYPES[dtype])
    return out


def load_tables() -> dict:
    """``{"seed": int, "sizes": {name: [[key, shape, dtype], ...]}}``."""
    return json.loads((FIXTURE / "tables.json").read_text())


def waveform_batch(clip_int16: np.ndarray) -> np.ndarray:
    """The (2, N) float32 batch every side computes on: the clip, and the clip reversed at half
    level (both exact in float32)."""
    x = clip_int16.astype(np.float32) / 32768.0
    return np.stack([x, 0.5 * x[::-1]]).astype(np.float32)
