"""Forward latency of the Slow-Fast network on one window, in PyTorch and ONNX Runtime.

Batch 1, the EPIC window (400 x 128 log-mel, 1.999 s at 24 kHz) by default, 2 intra-op threads.
Prints p50/p95/p99 per backend and the achieved GFLOP/s, ``2 x MACs / p50 latency`` with the
network's conv + linear multiply-adds (4.31 G for SlowFast R50 on 400 frames). The ONNX file
is exported to a temporary folder (dynamo exporter, opset 18) and checked against PyTorch
before it is timed. Not a test: numbers depend on the machine and its load.

Usage::

    python -m apps.bench_slowfast                      # slowfast-epic100, 400 frames
    python -m apps.bench_slowfast --network slowfast-vggsound --frames 512 --json out/bench.json
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from models.families import NETWORKS
from models.evaluation.benchmark import BenchmarkReport, configure_threads, ort_session_options
from models.slowfast.network import SlowFast, count_macs


def _export(model: SlowFast, x: torch.Tensor, path: Path) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=18, input_names=["logmel"],
                          output_names=[f"out{i}" for i in range(len(model.config.num_classes))], verbose=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.bench_slowfast", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--network", default="slowfast-epic100", help="registered network name")
    parser.add_argument("--frames", type=int, default=400, help="log-mel frames of the window (400 = EPIC clip)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (torch and ONNX Runtime)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first")
    parser.add_argument("--iters", type=int, default=30, help="timed calls (at least)")
    parser.add_argument("--min-seconds", type=float, default=5.0, help="timed calls last at least this long")
    parser.add_argument("--no-onnx", action="store_true", help="time PyTorch only")
    parser.add_argument("--json", type=Path, help="also save the report as JSON here")
    args = parser.parse_args(argv)

    threads = configure_threads(args.threads)
    model = NETWORKS.create(args.network).eval()
    if not isinstance(model, SlowFast):
        parser.error(f"--network: expected a Slow-Fast network, found {type(model).__name__}")
    x = torch.randn(1, 1, args.frames, model.config.num_frequencies, generator=torch.Generator().manual_seed(0))
    macs = count_macs(model, x)
    report = BenchmarkReport("bench_slowfast", fields={
        "network": args.network, "input": list(x.shape), "batch": 1, "threads": threads,
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 3), "conv_linear_GMACs": round(macs / 1e9, 3),
    })
    with torch.inference_mode():
        reference = model(x)
        reference = torch.cat(reference, 1) if isinstance(reference, tuple) else reference
        timing = report.time(lambda: model(x), name="torch", warmup=args.warmup, iters=args.iters,
                             min_seconds=args.min_seconds)
    report.fields["torch_GFLOP_per_s"] = round(2 * macs / (timing.p50_ms / 1e3) / 1e9, 1)

    if not args.no_onnx:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{args.network}.onnx"
            report.fields["onnx_export_s"] = round(_export(model, x, path), 1)
            session = ort.InferenceSession(str(path), ort_session_options(args.threads),
                                           providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: x.numpy()}
            got = np.concatenate(session.run(None, feed), axis=1)
            report.fields["onnx_max_abs_diff"] = float(np.abs(got - reference.numpy()).max())
            timing = report.time(lambda: session.run(None, feed), name="onnxruntime", warmup=args.warmup,
                                 iters=args.iters, min_seconds=args.min_seconds)
            report.fields["onnxruntime_GFLOP_per_s"] = round(2 * macs / (timing.p50_ms / 1e3) / 1e9, 1)
            report.fields["onnxruntime_version"] = ort.__version__

    report.print_table()
    if args.json:
        report.save(args.json)
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("Interrupted by user", file=sys.stderr)
        sys.exit(130)
