"""Latency of an EfficientAT MobileNet labeler per live hop: one call on the live window (2 s at
32 kHz, front end inside), in PyTorch and ONNX Runtime (batch 1). With the default 1 s hop, one
call is the cost of each hop.

    python -m apps.bench_efficientat                        # mn04, mn05, mn10 on 2 threads
    python -m apps.bench_efficientat --sizes mn04 mn40 dymn10 --iters 50 --out runs/bench/efficientat.json

Weights are random (latency does not depend on them); the network and graph are those a released
``mnXX_as*.pt`` or ``dymnXX_as*.pt`` file gives (``models/efficientat/released.py``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from models.efficientat.released import CANDIDATES, HOP_SECONDS, WINDOW_SECONDS, MNWaveform, build_network, metadata_for
from models.efficientat.frontend import MelConfig
from models.evaluation.benchmark import (BenchmarkReport, add_timing_options, configure_threads, ort_session_options,
                                         time_callable, time_each)
from models.export.onnx import export_onnx
from models.world import BENCH, Scene


def bench_size(size: str, report: BenchmarkReport, audio: np.ndarray, threads: int, warmup: int, iters: int,
               workdir: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    config = CANDIDATES[size]
    module = MNWaveform(build_network(config)).eval()
    report.fields[f"{size} parameters"] = sum(p.numel() for p in module.parameters())
    wave = torch.from_numpy(audio)[None]  # (1, samples)
    with torch.inference_mode():
        report.add(time_callable(lambda: module(wave), name=f"{size} torch", warmup=warmup, iters=iters))
    path = workdir / f"{size}.pt"
    torch.save(module.net.state_dict(), path)  # for the metadata's checksum; the graph is the module's
    onnx = workdir / f"{size}.onnx"
    example = {"audio": torch.randn(2, audio.size, generator=torch.Generator().manual_seed(0)) * 0.05}
    export_onnx(module, metadata_for(path, config, MelConfig()), example, onnx, dynamic_axes={"audio": {0: "batch"}})
    session = ort.InferenceSession(str(onnx), ort_session_options(threads), providers=["CPUExecutionProvider"])
    feed = {"audio": audio[None]}
    report.add(time_callable(lambda: session.run(None, feed), name=f"{size} onnxruntime", warmup=warmup,
                             iters=iters))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", choices=tuple(CANDIDATES), default=["mn04", "mn05", "mn10"],
                        help="networks to time (mnXX, dymnXX)")
    parser.add_argument("--window", type=float, default=WINDOW_SECONDS, help="window seconds (default: the live 2 s)")
    add_timing_options(parser)
    args = parser.parse_args(argv)
    if args.threads < 1 or args.warmup < 0 or args.iters < 1 or not args.window > 0.1:
        parser.error("expected --threads >= 1, --warmup >= 0, --iters >= 1 and --window > 0.1")
    threads = configure_threads(args.threads)
    sample_rate = MelConfig().sample_rate
    samples = round(args.window * sample_rate)
    audio = Scene(BENCH, 200_000).render_audio(0, samples, sample_rate).astype(np.float32)
    report = BenchmarkReport("efficientat-latency", fields={"batch": 1, "window_s": args.window,
                                                            "hop_s": HOP_SECONDS, **threads})
    time_each(report, args.sizes,
              lambda size, tmp: bench_size(size, report, audio, args.threads, args.warmup, args.iters, tmp), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
