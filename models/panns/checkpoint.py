"""Reading the authors' PANNs checkpoints and telling which network a file holds.

A released file (Zenodo record 3987831: ``Cnn14_mAP=0.431.pth``,
``Cnn14_DecisionLevelMax_mAP=0.385.pth`` ...) is a dict whose ``"model"`` entry is the state
dict (``pytorch/main.py`` also saves ``"iteration"``, and ``"sampler"`` / ``"optimizer"`` in
some versions); a flat state dict is accepted too. Everything is read with
``torch.load(weights_only=True)``: tensors and plain containers only, no code.

What the keys say: the conv blocks' widths (6 blocks: Cnn14, 4: Cnn10), the front end's size
(``n_fft`` from the DFT kernels: 1024 -> 32 kHz, 512 -> Cnn14_16k at 16 kHz), the classes, and
the head (``att_block.*``: DecisionLevelAtt; ``fc_audioset.*``: Cnn14 or DecisionLevelMax). Those
last two have identical keys; the file name decides (:func:`head_from_name`), or the caller.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path
from typing import Mapping

import torch

from models.panns.network import CNN10, CNN14, CNN14_16K, PannsConfig

__all__ = ["PANNS_SUFFIX", "FRONTEND_BY_NFFT", "read_state_dict", "looks_like_panns", "head_from_name",
           "config_from_state", "ARCH_NAMES"]

#: The authors' checkpoints end in .pth.
PANNS_SUFFIX = ".pth"

#: n_fft of the DFT kernels -> the base config whose front end it is (the hop is not in the file).
FRONTEND_BY_NFFT = {1024: CNN14, 512: CNN14_16K}

#: (trunk arch, head) -> the authors' class name.
ARCH_NAMES = {("Cnn14", "clip"): "Cnn14", ("Cnn14", "decision-max"): "Cnn14_DecisionLevelMax",
              ("Cnn14", "decision-att"): "Cnn14_DecisionLevelAtt", ("Cnn14_16k", "clip"): "Cnn14_16k",
              ("Cnn10", "clip"): "Cnn10"}

_CORE_KEYS = ("conv_block1.conv1.weight", "bn0.running_mean", "fc1.weight")


def _load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):  # legacy (non-zip) files cannot be memory-mapped
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


@functools.lru_cache(maxsize=2)  # a legacy (non-zip) file is held in memory: keep few
def _cached(path: str, size: int, mtime_ns: int) -> dict[str, torch.Tensor]:
    p = Path(path)
    try:
        data = _load(p)
    except Exception as e:  # noqa: BLE001 - torch raises several types for foreign or broken files
        raise ValueError(f"{p}: not a readable PyTorch file ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                         f"expected a PANNs checkpoint") from None
    state = data.get("model") if isinstance(data, dict) and isinstance(data.get("model"), dict) else data
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = sorted(map(str, data))[:5] if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{p}: expected a PANNs checkpoint ({{'model': state_dict, ...}} or a flat state dict "
                         f"of tensors), found {found}")
    return {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel copies carry "module."


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a PANNs file (memory-mapped where the format allows; the last two
    files read are cached by path, size and modification time, so ``claims``, ``metadata`` and
    ``load`` read a 300 MB file once).

    Raises:
        ValueError: not a PyTorch file, or no state dict in it (says what was found).
    """
    p = Path(path)
    st = p.stat()
    return _cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


def looks_like_panns(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether the keys are a PANNs CNN's: trunk, bn0, fc1 and one of the two heads."""
    return all(k in state for k in _CORE_KEYS) and ("fc_audioset.weight" in state or "att_block.att.weight" in state)


def head_from_name(name: str) -> str | None:
    """The head a file name states: ``"decision-max"`` for ``Cnn14_DecisionLevelMax...``,
    ``"decision-att"`` for ``...DecisionLevelAtt...``, ``"clip"`` for a name starting with
    ``Cnn14`` or ``Cnn10`` without ``DecisionLevel``; None when it says nothing (case ignored)."""
    low = name.lower()
    if "decisionlevelmax" in low:
        return "decision-max"
    if "decisionlevelatt" in low:
        return "decision-att"
    if "decisionlevel" in low:
        return None  # Avg or unknown: no released file, no network here
    return "clip" if re.match(r"cnn(14|10)", low) else None


def _blocks(state: Mapping[str, torch.Tensor]) -> list[int]:
    widths, i = [], 1
    while f"conv_block{i}.conv1.weight" in state:
        widths.append(int(state[f"conv_block{i}.conv1.weight"].shape[0]))
        i += 1
    return widths


def config_from_state(state: Mapping[str, torch.Tensor], head: str | None, name: str = "") -> PannsConfig:
    """The network a PANNs state dict holds.

    Args:
        state: the state dict (authors' keys).
        head: the head to build (from the file name or the caller); None: from the keys alone,
            which only a DecisionLevelAtt or a Cnn10 file allows.
        name: the file's name, for the message that asks for a head (callers name the file
            before the other messages).

    Raises:
        ValueError: the keys are not a PANNs CNN's, the head contradicts them, or the head is
            needed and unknown; one line naming what was expected and what was found.
    """
    if not looks_like_panns(state):
        found = ", ".join(sorted(state)[:4]) or "no keys"
        raise ValueError(f"expected a PANNs Cnn14 / Cnn10 state dict (conv_block1..., bn0, fc1 and "
                         f"fc_audioset or att_block), found {found} ...")
    widths = _blocks(state)
    if len(widths) == 6:
        kernel = state.get("spectrogram_extractor.stft.conv_real.weight")
        n_fft = int(kernel.shape[-1]) if kernel is not None else 1024
        base = FRONTEND_BY_NFFT.get(n_fft)
        if base is None:
            raise ValueError(f"expected DFT kernels of 1024 (32 kHz) or 512 (16 kHz) samples, found {n_fft}")
    elif len(widths) == 4:
        base = CNN10
    else:
        raise ValueError(f"expected 6 conv blocks (Cnn14) or 4 (Cnn10), found {len(widths)}")
    keys_head = "decision-att" if "att_block.att.weight" in state else None
    if head is None:
        head = keys_head or ("clip" if base is CNN10 else None)
    if head is None:
        raise ValueError(f"Cnn14 and Cnn14_DecisionLevelMax files hold the same keys and the file name "
                         f"{name!r} says neither; rename it (Cnn14_....pth or Cnn14_DecisionLevelMax_....pth), or export it "
                         f"with python -m models.export FILE --family panns-cnn14 (or panns-cnn14-decision-max)")
    if (head == "decision-att") != (keys_head == "decision-att"):
        want = "att_block.* keys" if head == "decision-att" else "fc_audioset.* keys"
        have = "att_block.*" if keys_head else "fc_audioset.*"
        raise ValueError(f"a {head} head expects {want}, found {have}")
    if base is CNN10 and head != "clip":
        raise ValueError(f"expected a clip head for Cnn10 (the authors have no decision-level Cnn10), "
                         f"found {head}")
    if base is CNN14_16K and head != "clip":
        raise ValueError(f"expected a clip head for Cnn14_16k (no decision-level 16 kHz model is "
                         f"published), found {head}")
    classes = state["att_block.att.weight" if head == "decision-att" else "fc_audioset.weight"].shape[0]
    melw = state.get("logmel_extractor.melW")
    return dataclasses.replace(base, arch=ARCH_NAMES[(base.arch, head)], head=head, channels=tuple(widths),
                               pools=base.pools, classes=int(classes),
                               n_mels=int(melw.shape[1]) if melw is not None else base.n_mels)
