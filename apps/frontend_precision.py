"""How far avlive's front end lands from librosa's float64 features, per precision and runtime.

    python -m apps.frontend_precision                                   # noise and the low-passed world scene
    python -m apps.frontend_precision --wav Front_Center.wav --wav acoustic_scene.wav --json runs/precision.json

For each front end (``--frontends``) and signal, prints max |features - librosa float64| over
every frame and bin, for the front end computing in float32 (``stft_dtype="float32"``, the
default) and in float64, each in PyTorch and in its ONNX export run by ONNX Runtime (CPU); and
the ratio of ONNX Runtime's float32 error to PyTorch's (models/export/onnx.py bounds its
export check with the largest). All start from the same float32 waveform, which librosa
reads in float64:

* ``noise``: white noise, std 0.1 (what the export check used to feed alone);
* ``scene-lp5k``: the world scene models/export/onnx.py checks exports on, low-passed at
  5 kHz (:func:`models.export.onnx.lowpassed_scene_audio`);
* every ``--wav`` file: a real recording (first channel), resampled with soxr.

``>5k dB`` is the signal's energy above 5 kHz relative to its total. librosa is the reference
(``pip install -e .[dev]``); nothing of it is used by the front end itself.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from models.audio.frontend import FrontEnd, FrontEndConfig
from models.export.onnx import SCENE_CUTOFF_HZ, lowpassed_scene_audio


def front_ends() -> dict[str, FrontEndConfig]:
    """avlive's front ends by name."""
    from models.l3.network import l3_frontend_config
    from models.slowfast.network import EPIC_FRONTEND, VGGSOUND_FRONTEND
    from models.slowfast.lite import LITE_FRONTEND
    from models.world.difficulty import BENCH_LOGMEL

    return {"slowfast-epic": EPIC_FRONTEND, "slowfast-vggsound": VGGSOUND_FRONTEND, "slowfast-lite": LITE_FRONTEND,
            "baseline": BENCH_LOGMEL, "l3": l3_frontend_config()}


def librosa_features(cfg: FrontEndConfig, wave: np.ndarray) -> np.ndarray:
    """The reference: librosa's STFT and mel filterbank, natural log, all in float64; (T, F)."""
    import librosa

    x = np.asarray(wave, dtype=np.float64)
    if cfg.window_frames:  # L3's framing: librosa on the signal padded by the window's offset
        x = np.pad(x, cfg.padding)
    s = np.abs(librosa.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                            window="hann", center=cfg.center, pad_mode="constant")) ** cfg.power
    if cfg.n_mels:
        s = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
                                htk=cfg.mel_scale == "htk", norm=cfg.mel_norm, dtype=np.float64) @ s
    return (np.log(s + cfg.log_offset) if cfg.log else s).T


def energy_above_db(wave: np.ndarray, sample_rate: int, hz: float = SCENE_CUTOFF_HZ) -> float:
    """10 log10(energy above ``hz`` / total energy) of ``wave``."""
    power = np.abs(np.fft.rfft(np.asarray(wave, dtype=np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1.0 / sample_rate)
    return float(10.0 * np.log10(max(power[freqs > hz].sum(), 1e-300) / max(power.sum(), 1e-300)))


def signals(sample_rate: int, seconds: float, wavs: list[Path]) -> dict[str, np.ndarray]:
    """Name -> float32 waveform at ``sample_rate``."""
    n = int(round(seconds * sample_rate))
    out = {"noise": (0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32),
           "scene-lp5k": lowpassed_scene_audio(sample_rate, n)[0]}
    for path in wavs:
        import soundfile as sf
        import soxr

        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
        out[path.stem] = soxr.resample(data[:, 0], rate, sample_rate).astype(np.float32)
    return out


def export(fe: FrontEnd, path: Path) -> None:
    """The front end alone to ONNX (dynamo, opset 18), batch and length dynamic; quietly."""
    sr = fe.config.sample_rate
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("samples", min=fe.config.n_fft, max=600 * sr)}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(fe, (torch.zeros(1, sr),), str(path), dynamo=True, opset_version=18, input_names=["wave"],
                          output_names=["features"], dynamic_shapes={"wave": dims}, external_data=False)


def measure(names: list[str], seconds: float, wavs: list[Path], threads: int) -> list[dict]:
    """One row per (front end, signal): max |diff| vs librosa for float32/float64 x torch/ONNX."""
    import onnxruntime as ort

    from models.evaluation.benchmark import ort_session_options

    configs = front_ends()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            base = configs[name]
            runners = {}
            for dtype in ("float32", "float64"):
                fe = FrontEnd(dataclasses.replace(base, stft_dtype=dtype)).eval()
                path = Path(tmp) / f"{name}-{dtype}.onnx"
                export(fe, path)
                session = ort.InferenceSession(str(path), sess_options=ort_session_options(threads),
                                               providers=["CPUExecutionProvider"])
                runners[dtype] = (fe, session)
            for signal_name, wave in signals(base.sample_rate, seconds, wavs).items():
                ref = librosa_features(base, wave)
                row = {"frontend": name, "signal": signal_name,
                       "energy_above_5khz_db": energy_above_db(wave, base.sample_rate)}
                for dtype, (fe, session) in runners.items():
                    with torch.inference_mode():
                        got = fe(torch.from_numpy(wave)[None])[0].numpy()
                    (onnx_got,) = session.run(None, {"wave": wave[None]})
                    row[f"torch_{dtype}"] = float(np.abs(got.astype(np.float64) - ref).max())
                    row[f"onnx_{dtype}"] = float(np.abs(onnx_got[0].astype(np.float64) - ref).max())
                row["onnx_over_torch_float32"] = row["onnx_float32"] / row["torch_float32"]
                rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| front end | signal | >5k dB | torch f32 | ONNX f32 | ONNX/torch f32 | torch f64 | ONNX f64 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['frontend']} | {r['signal']} | {r['energy_above_5khz_db']:.0f} | {r['torch_float32']:.2e} | "
                     f"{r['onnx_float32']:.2e} | {r['onnx_over_torch_float32']:.2f} | {r['torch_float64']:.2e} | "
                     f"{r['onnx_float64']:.2e} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m apps.frontend_precision", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frontends", nargs="+", default=list(front_ends()), choices=list(front_ends()),
                   metavar="NAME", help=f"front ends to measure (default: all of {', '.join(front_ends())})")
    p.add_argument("--seconds", type=float, default=4.0, metavar="S", help="length of noise and scene (default 4)")
    p.add_argument("--wav", type=Path, action="append", default=[], metavar="FILE",
                   help="a real recording to add (any format soundfile reads; repeatable)")
    p.add_argument("--threads", type=int, default=2, metavar="N", help="ONNX Runtime threads (default 2)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the rows here")
    args = p.parse_args(argv)
    for path in args.wav:
        if not path.is_file():
            p.error(f"--wav {path}: no such file")
    if not args.seconds > 0:
        p.error(f"--seconds: expected a positive number, found {args.seconds}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import librosa  # noqa: F401  (the reference)
    except ImportError:
        print("error: librosa is the reference and is not installed: pip install -e .[dev]", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    rows = measure(args.frontends, args.seconds, args.wav, args.threads)
    print("max |features - librosa float64| over all frames and bins (log units)")
    print(table(rows))
    worst = max(rows, key=lambda r: r["onnx_over_torch_float32"])
    print(f"largest ONNX Runtime / PyTorch float32 error ratio: {worst['onnx_over_torch_float32']:.2f} "
          f"({worst['frontend']}, {worst['signal']})")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
