"""Latency of L³-Net's vision, audio and heatmap paths in PyTorch and ONNX Runtime (batch 1).

    python -m apps.bench_l3                          # paper and lite, 2 threads
    python -m apps.bench_l3 --sizes lite --iters 100 --out runs/bench/l3.json

For each size: parameters and multiply-adds (computed from the layer shapes), then the latency
of ``embed_vision`` (one 224×224 frame), ``embed_audio`` (1 s at 48 kHz, front end included)
and ``forward_all`` (both subnets, AVC logits and the per-cell map), in PyTorch and in ONNX
Runtime on graphs exported by :func:`models.l3.export_onnx`, plus the whole live call
(:class:`models.l3.L3Localizer`: preprocessing, ``forward_all``, upsampling) in PyTorch.
Weights are random: latency does not depend on them. Inputs are a bench-world frame and the
second of audio centred on it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from models.evaluation.benchmark import BenchmarkReport, configure_threads, ort_session_options, time_callable
from models.l3.network import SAMPLE_RATE, L3Localizer, audio_window_for_frame, count_macs, count_parameters, export_onnx, \
    preprocess_frames
from models.families import NETWORKS
from models.world import BENCH, Scene

SIZES = ("paper", "lite", "tiny")


def bench_size(size: str, report: BenchmarkReport, frame: np.ndarray, audio: np.ndarray, threads: int,
               warmup: int, iters: int, workdir: Path) -> None:
    """Add the timings of one size to ``report`` and its counts to ``report.fields``."""
    import onnxruntime as ort

    torch.manual_seed(0)
    model = NETWORKS.create(f"l3-{size}").eval()
    macs = count_macs(model.config)
    report.fields[f"{size} parameters"] = count_parameters(model)
    report.fields[f"{size} GMACs vision / audio / pair / heatmap"] = \
        " / ".join(f"{m / 1e9:.3f}" for m in (macs.vision, macs.audio, macs.pair, macs.heatmap))
    frames = preprocess_frames(frame, model.config.image_size)  # (1, 3, S, S)
    wave = torch.from_numpy(audio)[None]  # (1, 48000)
    inputs = {"vision": (frames,), "audio": (wave,), "heatmap": (frames, wave)}
    paths = {"vision": model.embed_vision, "audio": model.embed_audio, "heatmap": model.forward_all}
    with torch.inference_mode():
        for part, fn in paths.items():
            args = inputs[part]
            report.add(time_callable(lambda: fn(*args), name=f"{size} torch {part}", warmup=warmup, iters=iters))
        localizer = L3Localizer(model)
        report.add(time_callable(lambda: localizer(audio, frame), name=f"{size} torch localizer call",
                                 warmup=warmup, iters=iters))
    for part in paths:
        path = workdir / f"l3-{size}-{part}.onnx"
        export_onnx(model, path, part=part)
        session = ort.InferenceSession(str(path), ort_session_options(threads), providers=["CPUExecutionProvider"])
        feed = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs[part])}
        report.add(time_callable(lambda: session.run(None, feed), name=f"{size} onnxruntime {part}",
                                 warmup=warmup, iters=iters))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=["paper", "lite"], help="sizes to time")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (torch and ONNX Runtime)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before each timing")
    parser.add_argument("--iters", type=int, default=30, help="timed calls per timing")
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.warmup < 0 or args.iters < 1:
        parser.error("expected --threads >= 1, --warmup >= 0 and --iters >= 1")

    threads = configure_threads(args.threads)
    scene = Scene(BENCH, 200_000)  # the first test scene
    k = 3 * BENCH.fps
    frame = scene.render_frame(k)[0]  # (224, 224, 3) uint8
    start, stop = audio_window_for_frame(scene.frame_time(k))
    audio = scene.render_audio(start, stop - start, SAMPLE_RATE)  # (48000,) float32
    report = BenchmarkReport("l3-latency", fields={"batch": 1, **threads})
    with tempfile.TemporaryDirectory(prefix="bench_l3_") as tmp:
        for size in args.sizes:
            print(f"timing l3-{size} ...", file=sys.stderr, flush=True)
            bench_size(size, report, frame, audio, args.threads, args.warmup, args.iters, Path(tmp))
    report.print_table()
    if args.out:
        report.save(args.out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("Interrupted by user")
    except (ValueError, OSError) as exc:
        sys.exit(f"{type(exc).__name__}: {exc}")
