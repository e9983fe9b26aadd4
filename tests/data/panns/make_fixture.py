"""Write tests/data/panns/fixture.npz and keys.json: the authors' PANNs code on a fixed waveform.

Run from the repository root with the authors' code beside (never inside) the repository:

    python tests/data/panns/make_fixture.py --reference /path/to/audioset_tagging_cnn/pytorch \
        --torchlibrosa /path/to/torchlibrosa

It builds the seeded random checkpoints of models.panns.random_weights (one key table for
Cnn14 = Cnn14_DecisionLevelMax, one for Cnn14_DecisionLevelAtt), loads them strictly into the
authors' ``Cnn14``, ``Cnn14_DecisionLevelMax`` and ``Cnn14_DecisionLevelAtt``, runs their forward in
float32 and in float64 on the waveform below and saves the outputs. Their framewise_output is
saved as its segments (every ``ratio``-th frame), after checking it is exactly those segments
repeated (models.panns.network.expand_to_frames). See README.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import tempfile
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from models.panns.network import CNN14, expand_to_frames  # noqa: E402
from models.panns.random_weights import key_table, random_state_dict  # noqa: E402

SEED = 3987831  # the Zenodo record of the released weights, as a seed
SAMPLE_RATE = 32000
SECONDS = 2.0  # the live window (models.panns.released.LIVE_WINDOW_SECONDS)
CLASSES = {"cnn14": "Cnn14", "decision_max": "Cnn14_DecisionLevelMax", "decision_att": "Cnn14_DecisionLevelAtt"}


def waveform() -> np.ndarray:
    """2 s of int16 PCM: a rising chirp, a 440 Hz tone with harmonics, 0.25 s of digital silence
    (the front end's 1e-10 floor) and a noise burst; seeded, so the same on every machine."""
    n = int(SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(SEED)
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 1500 * t ** 2)) * (t < 0.8)
    tone = sum(0.2 / k * np.sin(2 * np.pi * 440 * k * t) for k in (1, 2, 3)) * ((t >= 0.8) & (t < 1.3))
    noise = 0.2 * rng.standard_normal(n) * (t >= 1.55)
    x = chirp + tone + noise
    x[(t >= 1.3) & (t < 1.55)] = 0.0
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="the authors' pytorch/ folder (models.py)")
    parser.add_argument("--torchlibrosa", type=Path, required=True, help="a folder holding the torchlibrosa package")
    args = parser.parse_args()
    sys.path += [str(args.reference), str(args.torchlibrosa)]
    spec = importlib.util.spec_from_file_location("panns_reference", args.reference / "models.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    torch.set_num_threads(1)

    pcm = waveform()
    wave32 = torch.from_numpy(pcm.astype(np.float32) / 32768.0)[None]  # (1, N), exact in float32
    tables = {"cnn14": key_table(CNN14), "decision_att": key_table(dataclasses.replace(CNN14, head="decision-att"))}
    out: dict[str, np.ndarray] = {"pcm": pcm, "seed": np.array(SEED)}
    for name, cls in CLASSES.items():
        table = tables["decision_att" if name == "decision_att" else "cnn14"]
        with tempfile.TemporaryDirectory() as tmp:  # through a file in the authors' layout, as they load it
            torch.save({"model": random_state_dict(table, SEED), "iteration": 0}, f"{tmp}/{cls}.pth")
            checkpoint = torch.load(f"{tmp}/{cls}.pth", map_location="cpu", weights_only=True)
        model = getattr(ref, cls)(SAMPLE_RATE, 1024, 320, 64, 50, 14000, 527)
        model.load_state_dict(checkpoint["model"], strict=True)
        model.eval()
        for dtype, tag in ((torch.float32, "fp32"), (torch.float64, "fp64")):
            model.to(dtype)
            with torch.no_grad():
                result = model(wave32.to(dtype))
            out[f"{name}_clip_{tag}"] = result["clipwise_output"][0].numpy()
            if "embedding" in result:
                out[f"{name}_embedding_{tag}"] = result["embedding"][0].numpy()
            if "framewise_output" in result:
                frames = result["framewise_output"]  # (1, T, K)
                segments = frames[:, ::32][:, : frames.shape[1] // 32]  # (1, T', K)
                assert torch.equal(expand_to_frames(segments, 32, frames.shape[1]), frames), name
                out[f"{name}_segments_{tag}"] = segments[0].numpy()
        spread = np.abs(out[f"{name}_clip_fp32"].astype(np.float64) - out[f"{name}_clip_fp64"]).max()
        print(f"{cls}: clip probabilities {out[f'{name}_clip_fp64'].min():.3f}..{out[f'{name}_clip_fp64'].max():.3f}, "
              f"float32 vs float64 max |diff| {spread:.2e}")
    np.savez_compressed(HERE / "fixture.npz", **out)
    (HERE / "keys.json").write_text(json.dumps({name: [[k, list(s)] for k, s in table] for name, table in tables.items()},
                                               indent=0) + "\n")
    print(f"wrote {HERE / 'fixture.npz'} and {HERE / 'keys.json'}")


if __name__ == "__main__":
    main()
