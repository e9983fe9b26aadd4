"""Latency of PANNs models per live hop: one call on the live window, PyTorch and ONNX Runtime.

    python -m apps.bench_panns                                 # Cnn14 and DecisionLevelMax, 2 threads
    python -m apps.bench_panns --models Cnn14 --iters 50 --out runs/bench/panns.json

Each model runs once per hop on its window (models.panns.released.LIVE_WINDOW_SECONDS, 2 s at
32 kHz), so this is the inference cost of a 1 s hop (or any hop). The checkpoints are seeded
random files in the authors' layout (models.panns.random_weights), written to a temporary
folder under the released files' names and opened the way avlive opens them (load, then the
ONNX export avlive caches); latency does not depend on the weights.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from models.evaluation.benchmark import (BenchmarkReport, add_timing_options, check_timing_options, configure_threads,
                                         ort_session_options, time_callable, time_each)
from models.export.onnx import export_onnx
from models.panns.network import CNN14
from models.panns.random_weights import random_checkpoint
from models.panns.released import LIVE_WINDOW_SECONDS, load_panns
from models.world import BENCH, Scene

MODELS = {"Cnn14": CNN14, "Cnn14_DecisionLevelMax": dataclasses.replace(CNN14, head="decision-max"),
          "Cnn14_DecisionLevelAtt": dataclasses.replace(CNN14, head="decision-att")}


def bench_model(name: str, report: BenchmarkReport, audio: np.ndarray, threads: int, warmup: int, iters: int,
                workdir: Path) -> None:
    import onnxruntime as ort

    path = workdir / f"{name}_random.pth"
    torch.save(random_checkpoint(MODELS[name], 0), path)
    model = load_panns(path)
    wave = torch.from_numpy(audio)[None]
    with torch.inference_mode():
        report.add(time_callable(lambda: model.module(wave), name=f"{name} torch", warmup=warmup, iters=iters))
    onnx = workdir / f"{name}.onnx"
    export_onnx(model.module, model.metadata, model.example_inputs, onnx, dynamic_axes=model.dynamic_axes)
    session = ort.InferenceSession(str(onnx), ort_session_options(threads), providers=["CPUExecutionProvider"])
    feed = {"audio": audio[None]}
    report.add(time_callable(lambda: session.run(None, feed), name=f"{name} onnxruntime", warmup=warmup, iters=iters))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=["Cnn14", "Cnn14_DecisionLevelMax"],
                        help="models to time")
    add_timing_options(parser)
    args = parser.parse_args(argv)
    check_timing_options(parser, args)
    threads = configure_threads(args.threads)
    samples = int(round(LIVE_WINDOW_SECONDS * CNN14.sample_rate))
    audio = Scene(BENCH, 200_000).render_audio(0, samples, CNN14.sample_rate).astype(np.float32)
    report = BenchmarkReport("panns-latency", fields={"batch": 1, "window_s": LIVE_WINDOW_SECONDS, **threads})
    time_each(report, args.models,
              lambda name, tmp: bench_model(name, report, audio, args.threads, args.warmup, args.iters, tmp), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
