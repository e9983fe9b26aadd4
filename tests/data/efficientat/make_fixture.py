"""Make the EfficientAT parity fixture with the authors' code (not run by the tests).

    python tests/data/efficientat/make_fixture.py --eat-repo PATH/TO/EfficientAT --site-packages VENV/lib/python3.11/site-packages

Needs torch, the authors' repository (commit a425fdc), and in ``--site-packages`` the wheels of
torchaudio (their front end calls ``compliance.kaldi.get_mel_banks``; masking is off here) and
torchvision (their blocks are ``ops.misc.ConvNormActivation``), with pillow for torchvision's
``utils``. The torchaudio and torchvision wheels on PyPI are CUDA builds whose package ``__init__``
loads a CUDA-linked extension, which fails on a CPU-only torch; the modules used are pure Python, so
they are imported from their files alone (:func:`load_python_modules`) under their own names.

Writes tables.json (seed, key/shape/dtype per size — MN mn04, mn10 and DyMN dymn04, dymn10 — read
from the authors' models) and expected.npz
(the 2 s input clip as int16, and per size the authors' logits and probabilities in float32 and
float64) beside this script.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for efficientat_fixture
from efficientat_fixture import random_state, waveform_batch  # noqa: E402

SEED = 20231
SIZES = {"mn04": 0.4, "mn10": 1.0, "dymn04": 0.4, "dymn10": 1.0}
SAMPLE_RATE = 32000


def load_python_modules(root: Path, names: list[str]) -> None:
    """Import ``names`` (dotted, under the package folder ``root``) from their files alone, their
    parent packages created bare, so that the package's ``__init__`` (which loads a CUDA-linked
    extension) never runs."""
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent not in sys.modules:
                module = types.ModuleType(parent)
                module.__path__ = []
                sys.modules[parent] = module
                if i > 1:
                    setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], module)
        path = root.joinpath(*parts[1:]).with_suffix(".py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        setattr(sys.modules[".".join(parts[:-1])], parts[-1], module)


def clip() -> np.ndarray:
    """2 s at 32 kHz: a 440 Hz tone with harmonics, a 200 Hz → 12 kHz chirp, noise bursts, int16."""
    rng = np.random.default_rng(SEED)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    tone = sum(0.2 / k * np.sin(2 * np.pi * 440 * k * t) for k in (1, 2, 3))
    chirp = 0.15 * np.sin(2 * np.pi * (200 * t + (12000 - 200) / 4 * t ** 2))
    bursts = rng.normal(0, 0.1, t.size) * ((t % 0.5) < 0.12)
    x = (tone * (t < 1.2) + chirp + bursts) * 0.8
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eat-repo", type=Path, required=True)
    parser.add_argument("--site-packages", type=Path, required=True, help="where torchaudio and torchvision lie")
    args = parser.parse_args()
    load_python_modules(args.site_packages / "torchaudio", ["torchaudio.compliance.kaldi"])
    load_python_modules(args.site_packages / "torchvision", ["torchvision.utils", "torchvision.ops.misc"])
    sys.path.insert(0, str(args.eat_repo.resolve()))
    os.chdir(args.eat_repo)  # their helpers/utils.py reads metadata/class_labels_indices.csv on import
    from models.dymn.model import get_model as get_dymn
    from models.mn.model import get_model as get_mn
    from models.preprocess import AugmentMelSTFT

    def get_model(name: str, width: float):
        if name.startswith("dymn"):  # T_max: the temperature a released (pre-trained) DyMN gets
            return get_dymn(num_classes=527, width_mult=width, T_max=1.0)
        return get_mn(num_classes=527, width_mult=width, head_type="mlp", se_dims="c")

    audio = clip()
    wave32 = torch.from_numpy(waveform_batch(audio))
    tables, expected = {}, {"clip_int16": audio}
    for name, width in SIZES.items():
        with contextlib.redirect_stdout(io.StringIO()):  # get_model prints the network
            net = get_model(name, width)
        table = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in net.state_dict().items()]
        tables[name] = table
        state = random_state(table, SEED)
        for dtype in (torch.float32, torch.float64):
            torch.set_default_dtype(dtype)  # their mel banks, window and pre-emphasis use the default dtype
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    net = get_model(name, width)
                    mel = AugmentMelSTFT(n_mels=128, sr=SAMPLE_RATE, win_length=800, hopsize=320, n_fft=1024,
                                         freqm=0, timem=0)
                net.load_state_dict(state, strict=True)
                net.to(dtype).eval()
                mel.eval()
                with torch.no_grad():
                    spec = mel(wave32.to(dtype))  # (B, 128, T)
                    logits, _ = net(spec.unsqueeze(1))  # (B, 527)
            finally:
                torch.set_default_dtype(torch.float32)
            tag = str(dtype).removeprefix("torch.")
            expected[f"{name}_logits_{tag}"] = logits.numpy()
            expected[f"{name}_probs_{tag}"] = torch.sigmoid(logits).numpy()
            print(name, tag, "logits mean %.3f std %.3f  probs min %.3g max %.3g" % (
                logits.mean(), logits.std(), torch.sigmoid(logits).min(), torch.sigmoid(logits).max()))
        spread = np.abs(expected[f"{name}_probs_float32"] - expected[f"{name}_probs_float64"]).max()
        print(name, "authors' float32 vs float64 probs max |d|", f"{spread:.3g}")
    (HERE / "tables.json").write_text(json.dumps({"seed": SEED, "sizes": tables}))
    np.savez_compressed(HERE / "expected.npz", **expected)


if __name__ == "__main__":
    main()
