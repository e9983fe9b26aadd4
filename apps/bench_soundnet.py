"""Latency of a SoundNet labeler (network up to a layer, time average, a linear head) on one
window, in PyTorch and ONNX Runtime (batch 1).

    python -m apps.bench_soundnet                          # the three sizes, a 5 s window, 2 threads
    python -m apps.bench_soundnet --sizes lite --window 2 --iters 50 --out runs/bench/soundnet.json

For each size: parameters up to the layer, then the latency of the labeler that apps.transfer
writes (``--layer``: the last feature layer by default, conv7 or conv4; a 50-class head as for
ESC-50) on a window of world audio, in PyTorch and in ONNX Runtime on the graph the exporter
writes. Weights are random: latency does not depend on them (nor does the export's check
against PyTorch mean much with them: an untrained network's scores are nearly uniform).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from models.evaluation.benchmark import (BenchmarkReport, add_timing_options, configure_threads, ort_session_options,
                                         time_callable, time_each)
from models.export.onnx import export_onnx
from models.soundnet.network import CONFIGS, SAMPLE_RATE, SoundNet, parameter_count
from models.soundnet.transfer import (
    LinearSVM,
    Windows,
    load_linear_labeler,
    save_linear_labeler,
)
from models.world import BENCH, Scene

CLASSES = 50


def bench_size(size: str, layer: str | None, report: BenchmarkReport, audio: np.ndarray, windows: Windows,
               threads: int, warmup: int, iters: int, workdir: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    net = SoundNet(CONFIGS[size]).eval()
    layer = layer or net.config.layer_names()[-1]
    with torch.no_grad():
        dim = net.layer(torch.zeros(1, windows.samples), layer).shape[1]
    rng = np.random.default_rng(0)
    svm = LinearSVM(np.zeros(dim), np.ones(dim), rng.normal(size=(CLASSES, dim)) * 0.01, np.zeros(CLASSES), 1.0, 0.0)
    path = save_linear_labeler(workdir / f"{size}.pt", net, layer, svm, [f"class {i}" for i in range(CLASSES)], windows)
    model = load_linear_labeler(path)
    report.fields[f"{size} parameters to {layer}"] = parameter_count(model.module.net.blocks)
    wave = torch.from_numpy(audio)[None]
    with torch.inference_mode():
        report.add(time_callable(lambda: model.module(wave), name=f"{size} torch {layer}+linear",
                                 warmup=warmup, iters=iters))
    onnx = workdir / f"{size}.onnx"
    export_onnx(model.module, model.metadata, model.example_inputs, onnx, dynamic_axes=model.dynamic_axes)
    session = ort.InferenceSession(str(onnx), ort_session_options(threads), providers=["CPUExecutionProvider"])
    feed = {"audio": audio[None]}
    report.add(time_callable(lambda: session.run(None, feed), name=f"{size} onnxruntime {layer}+linear",
                             warmup=warmup, iters=iters))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", choices=tuple(CONFIGS), default=list(CONFIGS), help="sizes to time")
    parser.add_argument("--layer", default=None, help="feature layer (default: each size's last)")
    parser.add_argument("--window", type=float, default=5.0, help="window seconds (default 5)")
    add_timing_options(parser)
    args = parser.parse_args(argv)
    if args.threads < 1 or args.warmup < 0 or args.iters < 1 or not args.window > 0:
        parser.error("expected --threads >= 1, --warmup >= 0, --iters >= 1 and --window > 0")
    threads = configure_threads(args.threads)
    windows = Windows(args.window, args.window)
    audio = Scene(BENCH, 200_000).render_audio(0, windows.samples, SAMPLE_RATE).astype(np.float32)
    report = BenchmarkReport("soundnet-latency", fields={"batch": 1, "window_s": args.window, **threads})
    time_each(report, args.sizes, lambda size, tmp: bench_size(size, args.layer, report, audio, windows, args.threads,
                                                                 args.warmup, args.iters, tmp), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
