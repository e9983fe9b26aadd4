"""Latency of fp32 vs int8 ONNX models in ONNX Runtime (CPU), batch 1, same process, interleaved.

Each MODEL.onnx is timed against its ``MODEL.int8.onnx`` (``python -m models.export ... --int8``)
on one world test window (its sidecar says the inputs); ``--slowfast`` adds the paper-size
Slow-Fast EPIC network (random weights, 400 x 128 log-mel), exported and quantized in a
temporary folder on random log-mel (speed only: random weights say nothing about accuracy).
For every thread count, fp32 and int8 sessions alternate call by call, so load on a shared
machine hits both alike; the medians and their ratio are printed. With ``--slowfast`` the same
network also runs in PyTorch, fp32 against oneDNN bf16 autocast (the measurement behind
``--bf16``'s refusal, models/export/quantize.py). Not a test: numbers depend on the machine and
its load.

    python -m apps.bench_precision models/demo/labeler/model.onnx --threads 1 2
    python -m apps.bench_precision --slowfast --threads 1 2 --iters 20
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from models.core.metadata import ModelMetadata, precision_path, sidecar_path
from models.evaluation.benchmark import ort_session_options


def _session(path: Path, threads: int):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), ort_session_options(threads), providers=["CPUExecutionProvider"])


def _medians(fp32: Path, int8: Path, feed: dict, threads: int, warmup: int, iters: int) -> tuple[float, float]:
    """Median ms per call of each file, calls alternating."""
    a, b = _session(fp32, threads), _session(int8, threads)
    for _ in range(warmup):
        a.run(None, feed), b.run(None, feed)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(iters):
        for session, out in ((a, times[0]), (b, times[1])):
            start = time.perf_counter()
            session.run(None, feed)
            out.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[0])), 1e3 * float(np.median(times[1]))


def _torch_bf16(model, x, threads: int, warmup: int, iters: int) -> tuple[float, float]:
    """Median ms per call of ``model`` in PyTorch fp32 and under bf16 autocast, calls alternating."""
    import torch

    torch.set_num_threads(threads)

    def bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)

    times: tuple[list[float], list[float]] = ([], [])
    with torch.inference_mode():
        for i in range(warmup + iters):
            for call, out in ((lambda: model(x), times[0]), (bf16, times[1])):
                start = time.perf_counter()
                call()
                if i >= warmup:
                    out.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[0])), 1e3 * float(np.median(times[1]))


def _slowfast_pair(folder: Path) -> tuple[Path, Path, dict, object]:
    """Paper-size Slow-Fast EPIC (random weights) as fp32 and int8 ONNX, a feed, and the module."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from models.families import NETWORKS

    torch.manual_seed(0)
    model = NETWORKS.create("slowfast-epic100").eval()
    rng = np.random.default_rng(0)
    shape = (1, 1, 400, model.config.num_frequencies)
    fp32, pre, int8 = folder / "slowfast.onnx", folder / "slowfast.pre.onnx", folder / "slowfast.int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(shape),), str(fp32), dynamo=True, opset_version=18, input_names=["logmel"],
                          verbose=False, external_data=False)
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    rows = iter([{"logmel": rng.standard_normal(shape).astype(np.float32)} for _ in range(8)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(rows, None)

    quantize_static(str(pre), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return fp32, int8, {"logmel": rng.standard_normal(shape).astype(np.float32)}, model


def _world_feed(path: Path) -> dict:
    from models.export.quantize import world_inputs

    feeds, _ = world_inputs(ModelMetadata.load(sidecar_path(path)), "test", 1)
    return feeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.bench_precision", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path, help="fp32 .onnx files, each with MODEL.int8.onnx beside it")
    parser.add_argument("--slowfast", action="store_true", help="also the paper-size Slow-Fast EPIC network")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls of each first")
    parser.add_argument("--iters", type=int, default=30, help="timed calls of each")
    args = parser.parse_args(argv)
    if not args.models and not args.slowfast:
        parser.error("give MODEL.onnx files, --slowfast, or both")
    for path in args.models:
        if not precision_path(path, "int8").is_file():
            print(f"error: {precision_path(path, 'int8')} is missing; write it with: python -m models.export {path} "
                  f"--int8", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="avlive-bench-precision-") as tmp:
        pairs = [(str(p), p, precision_path(p, "int8"), _world_feed(p)) for p in args.models]
        module = None
        if args.slowfast:
            fp32, int8, feed, module = _slowfast_pair(Path(tmp))
            pairs.append(("slowfast-epic100 (random weights)", fp32, int8, feed))
        print(f"{'model':<40} {'threads':>7} {'fp32 ms':>9} {'int8 ms':>9} {'fp32/int8':>9}")
        for name, fp32, int8, feed in pairs:
            for threads in args.threads:
                a, b = _medians(fp32, int8, feed, threads, args.warmup, args.iters)
                print(f"{name:<40} {threads:>7} {a:>9.2f} {b:>9.2f} {a / b:>9.2f}", flush=True)
        if module is not None:
            import torch

            x = torch.from_numpy(pairs[-1][3]["logmel"])
            print(f"{'PyTorch, same network':<40} {'threads':>7} {'fp32 ms':>9} {'bf16 ms':>9} {'fp32/bf16':>9}")
            for threads in args.threads:
                a, b = _torch_bf16(module, x, threads, args.warmup, args.iters)
                print(f"{'slowfast-epic100 bf16 autocast':<40} {threads:>7} {a:>9.2f} {b:>9.2f} {a / b:>9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("Interrupted by user", file=sys.stderr)
        sys.exit(130)
