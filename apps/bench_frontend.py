"""What the log-mel front end costs per window and per hop, done five ways.

    python -m apps.bench_frontend                         # EPIC and VGG-Sound configurations, 2 threads
    python -m apps.bench_frontend --threads 1 --iters 50 --json out/bench-frontend.json

For each Slow-Fast front end configuration (EPIC-KITCHENS: 24 kHz, 2048-point FFT of a 10 ms
window every 5 ms, 128 mels, 400 frames per 2 s window; VGG-Sound: 16 kHz, 512 frames per 5.1 s
window) it times, medians after warm-up:

* ``librosa``: ``librosa.feature.melspectrogram`` + log on the whole window, the straightforward
  way most code does it (float32 input, librosa's defaults otherwise matched to the config);
* ``torch eager``: avlive's :class:`~models.audio.frontend.FrontEnd` on the whole window;
* ``ONNX Runtime graph``: that front end exported to ONNX (what a waveform-in ``model.onnx`` runs
  before its network), on the whole window;
* ``numpy whole window``: :class:`~models.audio.streaming.StreamingFrontEnd` with nothing to
  reuse;
* ``streaming hop``: the same, each call a window one hop (``--hop``, 0.25 s) later than the
  previous: only the new frames and the edge frames are computed (what a features-in export,
  ``python -m models.export SRC --frontend outside``, costs live per hop).

Threads: torch and ONNX Runtime use ``--threads``; numpy's FFT is single-threaded.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.audio.frontend import FrontEnd, FrontEndConfig
from models.audio.streaming import StreamingFrontEnd
from models.evaluation.benchmark import configure_threads, machine_description, ort_session_options, time_callable
from models.slowfast.network import EPIC_CLIP, VGGSOUND_CLIP
from models.world import Scene, get_preset

CLIPS = {"epic": EPIC_CLIP, "vggsound": VGGSOUND_CLIP}


class _LogMel(nn.Module):
    def __init__(self, config: FrontEndConfig) -> None:
        super().__init__()
        self.frontend = FrontEnd(config)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.frontend(audio)


def _onnx_session(config: FrontEndConfig, samples: int, threads: int, folder: Path):
    import onnxruntime as ort

    path = folder / "frontend.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
        warnings.simplefilter("ignore")
        torch.onnx.export(_LogMel(config).eval(), (torch.zeros(1, samples),), str(path), dynamo=True, opset_version=18,
                          input_names=["audio"], output_names=["logmel"])
    return ort.InferenceSession(str(path), ort_session_options(threads), providers=["CPUExecutionProvider"])


def _librosa(config: FrontEndConfig):
    import librosa

    def run(x: np.ndarray) -> np.ndarray:
        s = librosa.feature.melspectrogram(y=x, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
                                           win_length=config.win_length, center=config.center, pad_mode="constant",
                                           power=config.power, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
                                           htk=config.mel_scale == "htk", norm=config.mel_norm)
        return np.log(s + config.log_offset)

    return run


def bench_config(name: str, threads: int, iters: int, hop_s: float, folder: Path) -> dict[str, float]:
    clip = CLIPS[name]
    config, n = clip.frontend, clip.clip_samples
    rate = config.sample_rate
    hop = int(round(hop_s * rate))
    hop -= hop % config.hop_length  # windows one whole number of frames apart, as WindowSpec.align makes them
    audio = Scene(get_preset("bench"), 200000).render_audio(0, n + hop * (iters + 20), rate)
    window = audio[:n]
    torch_frontend = FrontEnd(config)
    session = _onnx_session(config, n, threads, folder)
    whole = StreamingFrontEnd(config, n)
    streaming = StreamingFrontEnd(config, n)
    position = {"k": 0}

    def numpy_whole():
        whole.reset()
        whole(window)

    def streaming_hop():
        k = position["k"]
        position["k"] = k + 1
        streaming(audio[k * hop: k * hop + n])

    batch = torch.from_numpy(window)[None]
    feed = {"audio": window[None]}
    librosa_run = _librosa(config)
    rows = {
        "librosa (whole window)": lambda: librosa_run(window),
        "torch eager (whole window)": lambda: torch_frontend(batch),
        "ONNX Runtime graph (whole window)": lambda: session.run(None, feed),
        "numpy whole window": numpy_whole,
        f"streaming, per {hop / rate:g} s hop": streaming_hop,
    }
    out = {}
    with torch.inference_mode():
        for row, fn in rows.items():
            out[row] = time_callable(fn, warmup=5, iters=iters, name=row).p50_ms
    out["frames per window"] = config.num_frames(n)
    out["frames computed per hop"] = (streaming.frames_computed - config.num_frames(n)) / max(1, streaming.calls - 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.bench_frontend", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--configs", nargs="+", choices=sorted(CLIPS), default=sorted(CLIPS))
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    p.add_argument("--iters", type=int, default=30, help="timed calls per row (medians)")
    p.add_argument("--hop", type=float, default=0.25, help="seconds between the streaming front end's windows")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    configure_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            results[name] = bench_config(name, args.threads, args.iters, args.hop, Path(tmp))
    rows = [r for r in results[args.configs[0]] if not r.startswith("frames")]
    print(f"front end, medians of {args.iters} calls, {args.threads} threads (ms)\n")
    print("| | " + " | ".join(args.configs) + " |")
    print("|---|" + "---|" * len(args.configs))
    for row in rows:
        print(f"| {row} | " + " | ".join(f"{results[c][row]:.2f}" for c in args.configs) + " |")
    for row in ("frames per window", "frames computed per hop"):
        print(f"| {row} | " + " | ".join(f"{results[c][row]:g}" for c in args.configs) + " |")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine_description(), "threads": args.threads, "iters": args.iters,
                                         "hop_s": args.hop, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
