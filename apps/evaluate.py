"""Score a trained labeler on the world's held-out single-event windows, with any backend.

    python -m apps.evaluate runs/baseline                       # PyTorch, bench test windows
    python -m apps.evaluate runs/baseline --backend onnxruntime # the exported model.onnx
    python -m apps.evaluate runs/baseline --compare             # both, and their max |Δ|

Every model is scored on the same windows: the bench set of 2 s windows (longer when the model's
window is longer); a model with a shorter window hears the last ``window_seconds`` of each,
which holds the labelled tail (models/world/evalsets.py), so a short live labeler and a 2 s
classifier are compared on the same events. Prints top-1/top-5, mAP, top-1 per SNR bin and the
two-way accuracy of each close pair; --json writes the figures.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engines import open_runner
from models.core.metadata import ModelMetadata
from models.world import get_preset
from models.world.cache import cached_window_audio
from models.world.evalsets import single_event_windows
from models.world.scoring import format_figures, single_event_figures

EVAL_WINDOW_SECONDS = 2.0  # the bench evaluation windows every labeler is scored on


def score(runner, audio: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, samples) audio → (N, C) scores through a runner with one input and one output."""
    name = next(iter(runner.input_metadata()))
    out = runner.output_names[0]
    return np.concatenate([runner.infer({name: np.ascontiguousarray(audio[i : i + batch], dtype=np.float32)})[out].copy() for i in range(0, len(audio), batch)])


def open_backend(run_dir: Path, backend: str, device: str, threads: int):
    """A runner over the run's model: the recipe's export module (torch) or model.onnx."""
    if backend == "torch":
        from models.families import load_trained

        recipe, model, metadata = load_trained(run_dir)
        module, _, _ = recipe.export_module(model)
        return open_runner("torch", module, device=device, threads=threads, metadata=ModelMetadata.from_dict(metadata)), ModelMetadata.from_dict(metadata)
    onnx_path = run_dir / "model.onnx" if run_dir.is_dir() else run_dir
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path} does not exist: export it first with `python -m models.export {run_dir}`")
    runner = open_runner(backend, onnx_path, device=device, threads=threads)
    return runner, runner.metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="run folder (or an exported .onnx with its sidecar)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "tensorrt"], help="(default: %(default)s)")
    parser.add_argument("--compare", action="store_true", help="score with torch and onnxruntime and print their max |Δ|")
    parser.add_argument("--split", default="test", choices=["val", "test"], help="(default: %(default)s)")
    parser.add_argument("--windows", type=int, default=2000, help="at least this many windows (default: %(default)s)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    backends = ["torch", "onnxruntime"] if args.compare else [args.backend]
    results, scores = {}, {}
    try:
        for backend in backends:
            runner, meta = open_backend(args.model, backend, args.device, args.threads)
            world = get_preset(meta.extra.get("world", "bench"))
            seconds = max(EVAL_WINDOW_SECONDS, meta.window_seconds)
            windows = single_event_windows(args.split, seconds, args.windows, config=world)
            audio = cached_window_audio(windows, meta.sample_rate, world, desc=f"rendering {args.split} windows")
            heard = int(round(meta.window_seconds * meta.sample_rate))
            with runner:
                scores[backend] = score(runner, audio[:, audio.shape[1] - heard :])
            results[backend] = single_event_figures(scores[backend], windows)
            print(f"[{backend}] {format_figures(results[backend])}")
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.compare:
        diff = float(np.abs(scores["torch"] - scores["onnxruntime"]).max())
        results["max_abs_diff_torch_vs_onnxruntime"] = diff
        print(f"torch vs onnxruntime: max |Δ| of the scores {diff:.2e} over {len(scores['torch'])} windows")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
