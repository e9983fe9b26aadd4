"""AVSlowFast costs, latency and held-out figures.

Three parts, each printed as a table:

* **costs** (always): parameters and conv + linear multiply-adds (``count_macs``, meta device)
  of every registered AVSlowFast network and of its visual-only twin; the audio pathway's extra
  multiply-adds as a fraction of the visual cost (the paper reports about 10-20 %);
* **latency** (``--latency``): one clip per call, batch 1, at ``--threads`` intra-op threads, in
  PyTorch and ONNX Runtime (the export module: frames + waveform in, front end inside, checked
  against PyTorch before it is timed), for ``--sizes`` (``lite``; ``paper`` = 8x8 R50, PyTorch
  only unless ``--paper-onnx``);
* **held-out figures** (``--runs RUN ...``): trained world runs on clips of unseen test scenes
  (mAP, top-1, micro-F1 at 0.5; all clips and those whose end has a target).

Not a test: timings depend on the machine and its load.

Usage::

    python -m apps.bench_avslowfast
    python -m apps.bench_avslowfast --latency --threads 2
    python -m apps.bench_avslowfast --runs runs/avslowfast-lite runs/slowfast-visual-lite --test-items 400
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from models.avslowfast.data import WorldClips
from models.avslowfast.network import PYTORCHVIDEO_8X8, VARIANTS, AVSlowFast
from models.avslowfast.recipe import AVSlowFastLiteConfig, AVSlowFastLiteRecipe, figures
from models.core.metadata import ModelMetadata
from models.evaluation.benchmark import (
    BenchmarkReport,
    configure_threads,
    ort_session_options,
)
from models.evaluation.metrics import mean_average_precision
from models.export.onnx import export_onnx
from models.families import load_trained
from models.slowfast.network import count_macs
from models.world import Scene, get_preset, split_seed
from models.world.evalsets import snr_bin


def _cost(cfg) -> tuple[int, int]:
    model = AVSlowFast(cfg)
    frames = torch.zeros(1, 3, cfg.fast_frames, cfg.image_size, cfg.image_size) if cfg.uses_visual else None
    logmel = torch.zeros(1, 1, cfg.audio_frames, cfg.audio_mels) if cfg.uses_audio else None
    return sum(p.numel() for p in model.parameters()), count_macs(model, frames, logmel)


def costs() -> None:
    rows = [(name, cfg) for name, cfg in VARIANTS.items() if cfg.pathways == "av"]
    rows.append(("pytorchvideo-8x8-r50", PYTORCHVIDEO_8X8))
    print(f"{'network':24s} {'params M':>9s} {'GMACs':>9s} {'visual GMACs':>13s} {'audio extra':>12s}")
    for name, cfg in rows:
        cfg = dataclasses.replace(cfg, sync_heads=False)
        params, macs = _cost(cfg)
        _, visual = _cost(dataclasses.replace(cfg, pathways="visual"))
        print(f"{name:24s} {params / 1e6:9.3f} {macs / 1e9:9.3f} {visual / 1e9:13.3f} {(macs - visual) / visual:11.1%}")


def latency(sizes: list[str], threads: int, paper_onnx: bool, iters: int, min_seconds: float) -> None:
    import onnxruntime as ort

    report = BenchmarkReport("bench_avslowfast", fields={"threads": threads, "batch": 1})
    for size in sizes:
        if size == "lite":
            recipe = AVSlowFastLiteRecipe(AVSlowFastLiteConfig())
        else:  # paper: 8x8 R50 on 32 frames of 224 x 224 and 2.06 s of audio
            recipe = _PaperRecipe(AVSlowFastLiteConfig())
        model = recipe.build_model().eval()
        module, example, axes = recipe.export_module(model)
        one = {k: v[:1] for k, v in example.items()}
        args = tuple(one.values())
        with torch.inference_mode():
            report.time(lambda m=module, x=args: m(*x), name=f"{size} torch", warmup=2, iters=iters,
                        min_seconds=min_seconds)
        if size == "paper" and not paper_onnx:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{size}.onnx"
            meta: ModelMetadata = recipe.metadata(model)
            checked = export_onnx(module, meta, example, path, dynamic_axes=axes)
            report.fields[f"{size}_onnx_max_abs_diff"] = max(max(c.max_abs_diff.values()) for c in checked.checks)
            session = ort.InferenceSession(str(path), ort_session_options(threads), providers=["CPUExecutionProvider"])
            feed = {k: v.numpy() for k, v in one.items()}
            report.time(lambda s=session, f=feed: s.run(None, f), name=f"{size} onnxruntime", warmup=2, iters=iters,
                        min_seconds=min_seconds)
    report.print_table()


class _PaperRecipe(AVSlowFastLiteRecipe):
    """The lite recipe's export path around the paper 8x8 R50 network (latency only)."""

    def build_model(self):
        from models.avslowfast.recipe import AVSlowFastClassifier

        return AVSlowFastClassifier(dataclasses.replace(VARIANTS["avslowfast-8x8-r50"], num_classes=12))

    def example_inputs(self, batch: int = 2) -> dict[str, torch.Tensor]:
        cfg = VARIANTS["avslowfast-8x8-r50"]
        g = torch.Generator().manual_seed(0)
        samples = (cfg.audio_frames - 1) * 256 + 512
        return {"frames": torch.rand(batch, 3, cfg.fast_frames, 224, 224, generator=g) * 2 - 1,
                "audio": torch.randn(batch, samples, generator=g) * 0.05}


def clip_groups(clips: WorldClips, config) -> dict[str, np.ndarray]:
    """Boolean ``(N,)`` masks of the held-out clips by what their end holds: ``single`` (one event
    sounding at the end), ``onset`` (an event began within the last 0.25 s), ``overlap`` (two or
    more sounding), and ``snr a-b`` (single-event clips by that event's SNR bin)."""
    scenes: dict[int, Scene] = {}
    n = len(clips.spans)
    groups = {"single": np.zeros(n, bool), "onset": np.zeros(n, bool), "overlap": np.zeros(n, bool)}
    for i, span in enumerate(clips.spans):
        scene = scenes.setdefault(span.seed, Scene(config, span.seed, event_cache=8))
        t = span.end - 1e-3
        active = [e for e in scene.events_between(t - 0.01, span.end) if e.active_at(t)]
        groups["onset"][i] = any(span.end - 0.25 <= e.onset for e in active)
        groups["overlap"][i] = len(active) >= 2
        if len(active) == 1:
            groups["single"][i] = True
            groups.setdefault(f"snr {snr_bin(active[0].snr_db)}", np.zeros(n, bool))[i] = True
    return groups


def subset_figures(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(mAP, top-1) of the clips in ``mask``: each class's AP ranks the subset's positives among
    every clip negative for it (so a subset of positives still has negatives); top-1 over the subset."""
    aps = []
    for c in range(targets.shape[1]):
        keep = (mask & (targets[:, c] > 0)) | (targets[:, c] == 0)
        if (targets[keep, c] > 0).any():
            aps.append(mean_average_precision(probs[keep, c:c + 1], targets[keep, c:c + 1])[0])
    top1 = float(np.mean(targets[mask, probs[mask].argmax(axis=1)] > 0)) if mask.any() else float("nan")
    return (float(np.mean(aps)) if aps else float("nan")), top1


def held_out(runs: list[Path], items: int, scenes: int) -> None:
    print(f"held-out world clips: {items} clips from {scenes} unseen test scenes (seed 777)")
    rows = []
    groups: dict[str, np.ndarray] = {}
    for run in runs:
        recipe, model, _ = load_trained(run)
        c = recipe.config
        clips = WorldClips(get_preset(c.world), tuple(split_seed("test", i) for i in range(scenes)), items, c.clip(),
                           c.tail_seconds, seed=777, desc="rendering the test clips")
        if not groups:
            groups = clip_groups(clips, get_preset(c.world))
        loader = torch.utils.data.DataLoader(clips, batch_size=32)
        probs, targets = recipe.predict(model, loader)
        whole = figures(probs, targets)
        row = {"run": Path(run).name, "all": (whole["mAP"], whole["top1"])}
        row.update({name: subset_figures(probs, targets, mask) for name, mask in groups.items()})
        rows.append(row)
    names = ["all", "single", "onset", "overlap", *sorted((k for k in groups if k.startswith("snr")), key=lambda k: float(k[4:].split("-")[0]))]
    counts = {name: int(groups[name].sum()) if name in groups else items for name in names}
    print(f"{'run (mAP / top-1)':28s} " + " ".join(f"{f'{n} ({counts[n]})':>15s}" for n in names))
    for row in rows:
        print(f"{row['run']:28s} " + " ".join(f"{row[n][0]:7.3f}/{row[n][1]:.3f}" for n in names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.bench_avslowfast", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--latency", action="store_true", help="time one clip per call (PyTorch, ONNX Runtime)")
    parser.add_argument("--sizes", nargs="+", default=["lite"], choices=["lite", "paper"], help="latency sizes")
    parser.add_argument("--paper-onnx", action="store_true", help="also export and time the paper size in ONNX Runtime")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (torch and ONNX Runtime)")
    parser.add_argument("--iters", type=int, default=20, help="timed calls (at least)")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="timed calls last at least this long")
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="trained runs to score on unseen scenes")
    parser.add_argument("--test-items", type=int, default=400, help="held-out clips")
    parser.add_argument("--test-scenes", type=int, default=8, help="unseen test scenes they come from")
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    costs()
    if args.latency:
        latency(args.sizes, args.threads, args.paper_onnx, args.iters, args.min_seconds)
    if args.runs:
        np.seterr(all="ignore")
        held_out(args.runs, args.test_items, args.test_scenes)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("Interrupted by user", file=sys.stderr)
        sys.exit(130)
