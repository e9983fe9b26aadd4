"""Waveform in, scores out, per live hop: avlive against the straightforward way, same network,
same run.

    python -m apps.bench_end_to_end                      # paper-size Slow-Fast EPIC, 2 threads
    python -m apps.bench_end_to_end --threads 1 2 --iters 30 --json out/bench-e2e.json

The network is the paper-size Slow-Fast EPIC-KITCHENS-100 model (26.9 M parameters, 2 s
windows at 24 kHz, 400 x 128 log-mel) with seeded random weights: this measures speed; random
weights say nothing about accuracy (the INT8 line says how often INT8 and fp32 agree on the top
class of world windows, for what that is worth). Every row computes the scores of the 2 s window
ending at each hop of a world scene (``--hop``, 0.25 s; windows on the front end's 5 ms grid, as
``WindowSpec.align`` makes them live), rows interleaved call by call so load hits them alike, each
call after ``--idle`` seconds of rest as a live hop comes after the last (without it, the threads
one row wakes busy-wait into the next row's time: numpy's OpenBLAS after librosa's mel product,
PyTorch's OpenMP after the eager network):

* ``straightforward``: what the reference code and most users do: librosa log-mel of the whole
  window every hop, then the network in eager PyTorch, float32;
* ``avlive waveform-in, fp32``: the exported ``model.onnx`` (front end in the graph), ONNX Runtime;
* ``avlive features-in, fp32`` / ``int8``: ``python -m models.export SRC --frontend outside``
  (``model.logmel.onnx``; ``--int8``: static INT8 calibrated on world windows), with the
  streaming front end computing only each hop's new frames;

and, network only (log-mel in, no front end): avlive's exporter (``torch.onnx.export(...,
dynamo=True)``, what ``models.export`` writes) against a plain ``torch.onnx.export`` with the
TorchScript exporter, both in ONNX Runtime fp32, and the INT8 network.

Prints medians (ms) and each row's speed-up over the straightforward way; then the network's
operations per window (``torch.utils.flop_counter``, 2 per multiply-add) and the rate each
network row achieved, beside ONNX Runtime's own convolution ceiling on this CPU (``--ceiling``,
default on: four dense 3x3 convolutions of 256 channels, the best case for its kernels, fp32 and
INT8 made as the export makes them), and what the INT8 network would take at that ceiling, which
bounds the end-to-end speed-up any INT8 variant of this network can reach here.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from apps.bench_models import count_flops, export, slowfast_epic_exportable
from models.audio.streaming import StreamingFrontEnd
from models.evaluation.benchmark import configure_threads, machine_description, ort_session_options, quiet
from models.export.frontend_outside import features_in
from models.export.quantize import export_int8, static_int8
from models.slowfast.network import EPIC_CLIP
from models.slowfast.recipes import SlowFastWaveform
from models.world import Scene, get_preset


def _session(path: Path, threads: int):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), ort_session_options(threads), providers=["CPUExecutionProvider"])


def build(folder: Path, calib: int) -> tuple[SlowFastWaveform, dict[str, Path], dict]:
    """The network and its exports: waveform-in, features-in (+ int8), plain features-in."""
    model = slowfast_epic_exportable()
    variant = features_in(model)
    paths = {"wave": folder / "model.onnx", "feats": folder / "model.logmel.onnx", "plain": folder / "plain.onnx"}
    print("exporting the waveform-in and features-in models (a minute or two) ...", file=sys.stderr, flush=True)
    export(model, paths["wave"])
    export(variant, paths["feats"])
    with quiet():
        torch.onnx.export(variant.module, (variant.example_inputs["logmel"][:1],), str(paths["plain"]), dynamo=False,
                          opset_version=17, input_names=["logmel"], output_names=["probs"])
    print(f"quantizing the features-in model to INT8 ({calib} world calibration windows) ...", file=sys.stderr, flush=True)
    report = export_int8(paths["feats"], calib=calib)
    paths["int8"] = Path(report.path)
    return model.module, paths, dict(report.record)


def bench(wrapper: SlowFastWaveform, paths: dict[str, Path], threads: int, iters: int, hop_s: float,
          idle_s: float = 0.0) -> dict[str, float]:
    import librosa

    cfg = EPIC_CLIP.frontend
    n, rate = EPIC_CLIP.clip_samples, cfg.sample_rate
    hop = int(round(hop_s * rate))
    hop -= hop % cfg.hop_length
    audio = Scene(get_preset("bench"), 200000).render_audio(0, n + hop * (iters + 10), rate)
    torch.set_num_threads(threads)
    sessions = {k: _session(p, threads) for k, p in paths.items()}
    fronts = {"fp32": StreamingFrontEnd(cfg, n), "int8": StreamingFrontEnd(cfg, n)}

    def window(k: int) -> np.ndarray:
        return audio[k * hop: k * hop + n]

    def straightforward(k: int):
        s = librosa.feature.melspectrogram(y=window(k), sr=rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                           win_length=cfg.win_length, center=cfg.center, pad_mode="constant",
                                           power=cfg.power, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
                                           htk=cfg.mel_scale == "htk", norm=cfg.mel_norm)
        feats = torch.from_numpy(np.log(s + cfg.log_offset).T[None].astype(np.float32))
        with torch.inference_mode():
            return wrapper.from_features(feats).numpy()

    def waveform_in(k: int):
        return sessions["wave"].run(None, {"audio": window(k)[None]})[0]

    def features_in(which: str):
        def run(k: int):
            feats = fronts[which](window(k))
            return sessions["feats" if which == "fp32" else "int8"].run(None, {"logmel": feats[None]})[0]
        return run

    fixed = fronts["fp32"].__class__(cfg, n)(window(0))[None].copy()

    def network(which: str):
        return lambda k: sessions[which].run(None, {"logmel": fixed})[0]

    rows = {
        "straightforward (librosa + eager PyTorch, fp32)": straightforward,
        "avlive waveform-in, fp32 (front end in the graph)": waveform_in,
        "avlive features-in, fp32 (streaming front end)": features_in("fp32"),
        "avlive features-in, int8 (streaming front end)": features_in("int8"),
        "network only: avlive's export (dynamo), fp32": network("feats"),
        "network only: plain torch.onnx.export (TorchScript), fp32": network("plain"),
        "network only: avlive's export, int8": network("int8"),
    }
    for fn in rows.values():  # warm-up; the streaming front ends start from hop 0 again below
        fn(0)
    for f in fronts.values():
        f.reset()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for k in range(iters):
        for name, fn in rows.items():
            time.sleep(idle_s)
            t0 = time.perf_counter()
            fn(k)
            times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * float(np.median(v)) for name, v in times.items()}


def _blas_limit(threads: int | None):
    """numpy's BLAS held to ``threads`` threads inside the context (None: left as it is)."""
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # comes with scikit-learn

    return threadpool_limits(limits=threads, user_api="blas")


#: The ceiling's layers: (channels, kernel, height, width), four of them in a row.
CEILING_CONV = (256, 3, 50, 32)


def conv_ceiling(folder: Path, threads: int, iters: int) -> dict[str, float]:
    """ONNX Runtime's convolution rate on this CPU, fp32 and INT8 (GFLOP/s at the median, 2 per
    multiply-add): four 3x3 convolutions of 256 channels on a 50 x 32 map, dense and
    cache-friendly, the best case for its kernels; INT8 made by :func:`static_int8`, as every
    avlive variant."""
    import onnxruntime as ort

    ch, k, h, w = CEILING_CONV
    net = torch.nn.Sequential(*[torch.nn.Conv2d(ch, ch, k, padding=k // 2) for _ in range(4)]).eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, ch, h, w)).astype(np.float32)
    fp32, int8 = folder / "ceiling.onnx", folder / "ceiling.int8.onnx"
    if not int8.is_file():
        with quiet():
            torch.onnx.export(net, (torch.from_numpy(x),), str(fp32), dynamo=False, opset_version=17,
                              input_names=["x"])
        static_int8(fp32, int8, [{"x": rng.standard_normal(x.shape).astype(np.float32)} for _ in range(4)])
    flops = 2 * 4 * ch * ch * k * k * h * w
    rates = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        session = ort.InferenceSession(str(path), ort_session_options(threads), providers=["CPUExecutionProvider"])
        for _ in range(3):
            session.run(None, {"x": x})
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            session.run(None, {"x": x})
            times.append(time.perf_counter() - t0)
        rates[name] = flops / float(np.median(times)) / 1e9
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.bench_end_to_end", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[2], help="intra-op thread counts")
    p.add_argument("--iters", type=int, default=20, help="hops timed per row (medians)")
    p.add_argument("--hop", type=float, default=0.25, help="seconds between windows")
    p.add_argument("--idle", type=float, default=0.15,
                   help="seconds idle before each timed call, as between live hops: the threads the previous "
                        "row woke (numpy's OpenBLAS, PyTorch's OpenMP) busy-wait for ~0.1 s after their work "
                        "and would otherwise take the cores from the next row")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="hold numpy's BLAS (OpenBLAS, used by librosa's mel product) to this many threads for "
                        "the whole run (threadpoolctl); default: numpy's own, as the straightforward way runs")
    p.add_argument("--calib", type=int, default=64, help="INT8 calibration windows")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure ONNX Runtime's convolution ceiling here, fp32 and INT8 (about 20 s)")
    args = p.parse_args(argv)
    if not args.idle >= 0:
        p.error(f"--idle: expected seconds >= 0, found {args.idle}")
    if args.blas_threads is not None and args.blas_threads < 1:
        p.error(f"--blas-threads: expected a positive count, found {args.blas_threads}")
    results, ceilings = {}, {}
    with tempfile.TemporaryDirectory(prefix="avlive-bench-e2e-") as tmp:
        wrapper, paths, int8 = build(Path(tmp), args.calib)
        cfg = EPIC_CLIP.frontend
        flops = count_flops(wrapper.from_features, {"logmel": np.zeros((1, EPIC_CLIP.num_frames, cfg.n_mels), np.float32)})
        for threads in args.threads:
            configure_threads(threads)
            with _blas_limit(args.blas_threads):
                results[threads] = bench(wrapper, paths, threads, args.iters, args.hop, args.idle)
            if args.ceiling:
                ceilings[threads] = conv_ceiling(Path(tmp), threads, args.iters)
    base_row = "straightforward (librosa + eager PyTorch, fp32)"
    print(f"\nSlow-Fast EPIC paper size (random weights), one {args.hop:g} s hop of a 2 s window, medians of "
          f"{args.iters}, each call after {args.idle:g} s idle (ms; x = speed-up over the straightforward way)\n")
    print("| | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in args.threads) + " |")
    print("|---|" + "---|" * len(args.threads))
    for row in results[args.threads[0]]:
        cells = [f"{results[t][row]:.1f} (x{results[t][base_row] / results[t][row]:.2f})" for t in args.threads]
        print(f"| {row} | " + " | ".join(cells) + " |")
    print(f"\nThe network: {flops / 1e9:.2f} GFLOP per window (torch.utils.flop_counter, 2 per multiply-add).")
    for threads in args.threads:
        r = results[threads]
        fp32_rate = flops / (r["network only: avlive's export (dynamo), fp32"] * 1e-3) / 1e9
        int8_rate = flops / (r["network only: avlive's export, int8"] * 1e-3) / 1e9
        line = f"  {threads} thread(s): the network ran at {fp32_rate:.0f} GFLOP/s in fp32 and {int8_rate:.0f} in int8"
        c = ceilings.get(threads)
        if c:
            floor_ms = flops / (c["int8"] * 1e9) * 1e3
            best = r[base_row] / floor_ms
            line += (f"; ONNX Runtime's convolution ceiling here: {c['fp32']:.0f} fp32, {c['int8']:.0f} int8. At that "
                     f"ceiling the int8 network alone would take {floor_ms:.1f} ms: x{best:.1f} of the straightforward "
                     f"way with a free front end, the most any INT8 variant of this network reaches here")
        print(line)
    held = int8.get("held_out")
    if held:
        print(f"\nINT8 vs fp32 top-1 agreement on {held.get('count')} held-out {held.get('set')}: "
              f"{100 * held.get('top1_agreement', float('nan')):.1f}% (random weights: not an accuracy figure)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine_description(), "iters": args.iters, "hop_s": args.hop,
                                         "idle_s": args.idle, "blas_threads": args.blas_threads,
                                         "ms": {str(t): r for t, r in results.items()}, "int8": int8,
                                         "network_flops": flops,
                                         "conv_ceiling_gflops": {str(t): c for t, c in ceilings.items()}},
                                        indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
