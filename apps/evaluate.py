"""Score a trained labeler on the world's held-out single-event windows, or on your own data,
with any backend.

    python -m apps.evaluate runs/baseline                       # PyTorch, bench test windows
    python -m apps.evaluate runs/baseline --backend onnxruntime # the exported model.onnx
    python -m apps.evaluate runs/baseline --compare             # both, and their max |Δ|
    python -m apps.evaluate runs/baseline --device cuda         # PyTorch on the GPU
    python -m apps.evaluate runs/baseline --backend tensorrt    # runs/baseline/model.*.engine (GPU)
    python -m apps.evaluate baseline --backend triton --triton-url HOST:8001   # a model on a Triton server
    python -m apps.evaluate runs/esc --data ESC-50 --fold 1     # clips of a dataset folder

With ``--data`` (any clip layout the trainer reads: ESC-50, folder per class, VGG-Sound,
AudioSet, DESED) the split's clips are scored with the model's own labels: a clip's score is the
mean of the window scores over it, and every class of the data must be one the model names (else
one line says which are not). A run trained with ``--data`` is scored on its own set and test
fold when ``--data`` is left out. A model whose labels are not the world's is never scored on
world windows.

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


def find_engine(model: Path) -> Path:
    """The TensorRT engine of a run folder (``model*.engine``, the first by name), or ``model``
    itself when it is an engine file.

    Raises:
        FileNotFoundError: none there (names the command that builds one).
    """
    if model.suffix in (".engine", ".plan"):
        return model
    folder = model if model.is_dir() else model.parent
    found = sorted(folder.glob("model*.engine")) + sorted(folder.glob("model*.plan"))
    if not found:
        onnx = folder / "model.onnx"
        raise FileNotFoundError(f"{folder} holds no TensorRT engine (model*.engine); build one on this GPU: python -m "
                                f"engines.build_engine {onnx} --fp16 (export {onnx} with --frontend conv first)")
    return found[0]


def open_backend(run_dir: Path, backend: str, device: str, threads: int, triton_url: str | None = None):
    """A runner over the run's model: the recipe's export module (torch), model.onnx, its
    TensorRT engine, or the model of that name on a Triton server."""
    if backend == "torch":
        from models.families import load_trained

        recipe, model, metadata = load_trained(run_dir)
        module, _, _ = recipe.export_module(model)
        return open_runner("torch", module, device=device, threads=threads, metadata=ModelMetadata.from_dict(metadata)), ModelMetadata.from_dict(metadata)
    if backend == "tensorrt":
        if device != "cuda":
            raise ValueError("--backend tensorrt runs on the GPU: add --device cuda")
        runner = open_runner("tensorrt", find_engine(run_dir), device="cuda")
        return runner, runner.metadata
    if backend == "triton":
        from engines.triton_runner import DEFAULT_TRITON_URL
        from realtime.models import triton_model_name

        runner = open_runner("triton", triton_model_name(run_dir), url=triton_url or DEFAULT_TRITON_URL)
        return runner, runner.metadata
    onnx_path = run_dir / "model.onnx" if run_dir.is_dir() else run_dir
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path} does not exist: export it first with `python -m models.export {run_dir}`")
    runner = open_runner(backend, onnx_path, device=device, threads=threads)
    return runner, runner.metadata


def world_labels_or_refuse(meta) -> None:
    """Refuse (ValueError, one line) to score a model on world windows when its labels are not
    the world's classes in the world's order."""
    from models.world import CLASS_NAMES

    if tuple(meta.labels) != tuple(CLASS_NAMES):
        shown = ", ".join(list(meta.labels)[:5]) + (" ..." if len(meta.labels) > 5 else "")
        raise ValueError(f"the model names {len(meta.labels)} classes ({shown}), not the world's {len(CLASS_NAMES)}; "
                         f"score it on its own data with --data DIR")


def score_on_data(runner, meta, root: Path, fold: int, split: str, clip_seconds: float) -> dict:
    """Figures of the model on a split of a dataset folder, with the model's own labels."""
    import torch

    from models.datasets.clip_windows import clip_probabilities
    from models.datasets.labelled_sets import read_labelled_set
    from models.datasets.user_clips import clip_figures
    from models.evaluation.metrics import per_class_accuracy

    data = read_labelled_set(root, recipe="apps.evaluate", fold=fold)
    print(f"--data {data.describe()}", file=sys.stderr)
    index = {name: k for k, name in enumerate(meta.labels)}
    unknown = [c for c in data.classes if c not in index]
    if unknown:
        raise ValueError(f"--data {root}: {len(unknown)} of its {len(data.classes)} classes are not among the model's "
                         f"{len(meta.labels)} labels: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    clips = getattr(data, split)
    if not len(clips):
        raise ValueError(f"--data {root}: the {split} split is empty ({data.split}); choose --fold K or --split val")
    decoded = clips.decode(meta.sample_rate, max(clip_seconds, meta.window_seconds))
    window = int(round(meta.window_seconds * meta.sample_rate))

    def probabilities(wave: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(score(runner, wave.numpy()))

    probs = clip_probabilities(probabilities, torch.from_numpy(decoded.audio), torch.from_numpy(decoded.lengths), window,
                               max(1, window // 2)).numpy()
    if data.multi_label:
        targets = np.zeros_like(probs)
        for n, spec in enumerate(decoded.clips):
            targets[n, [index[x] for x in spec.labels]] = 1.0
    else:
        targets = np.array([index[spec.labels[0]] for spec in decoded.clips])
    figures = clip_figures(probs, targets, data.multi_label)
    if not data.multi_label:
        accuracy = per_class_accuracy(targets, probs.argmax(1), len(meta.labels))
        figures["per_class_accuracy"] = {meta.labels[k]: float(accuracy[k]) for k in sorted(set(targets.tolist()))}
    figures["skipped"] = len(decoded.skipped)
    return figures


def format_data_figures(figures: dict) -> str:
    head = ", ".join(f"{k} {100 * v:.1f}%" if k in ("top1", "mean_class_accuracy") else f"{k} {v:.3f}"
                     for k, v in figures.items() if k in ("top1", "mAP", "mean_class_accuracy"))
    lines = [f"{head} ({int(figures['n'])} clips, {figures['skipped']} skipped)"]
    for name, acc in figures.get("per_class_accuracy", {}).items():
        lines.append(f"  {name}: {100 * acc:.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="run folder (or an exported .onnx with its sidecar)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "tensorrt", "triton"],
                        help="(default: %(default)s; tensorrt needs --device cuda; triton: the model on the server at "
                             "--triton-url)")
    parser.add_argument("--compare", action="store_true", help="score with torch and onnxruntime and print their max |Δ|")
    parser.add_argument("--split", default="test", choices=["val", "test"], help="(default: %(default)s)")
    parser.add_argument("--windows", type=int, default=2000, help="at least this many windows (default: %(default)s)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cpu, or cuda (torch on the GPU; onnxruntime with onnxruntime-gpu; tensorrt)")
    parser.add_argument("--triton-url", default=None, metavar="HOST:PORT",
                        help="--backend triton: the server's gRPC endpoint (default 127.0.0.1:8001)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--data", type=Path, default=None,
                        help="score on this dataset folder's clips instead of world windows (default: the run's own "
                             "--data, for runs trained on one)")
    parser.add_argument("--fold", type=int, default=None,
                        help="with --data: fold K is the test split (default: the run's fold, else the set's own test split)")
    parser.add_argument("--clip-seconds", type=float, default=10.0, help="with --data: audio decoded per clip (default: %(default)s)")
    args = parser.parse_args(argv)

    backends = ["torch", "onnxruntime"] if args.compare else [args.backend]
    results, scores = {}, {}
    try:
        for backend in backends:
            try:
                runner, meta = open_backend(args.model, backend, args.device, args.threads, args.triton_url)
            except RuntimeError as e:  # no CUDA device, TensorRT or tritonclient missing, no server: one line
                raise ValueError(f"--backend {backend} --device {args.device}: {str(e).splitlines()[0]}") from None
            data = args.data or (Path(meta.extra["data"]) if "data_layout" in meta.extra else None)
            if data is not None:
                fold = args.fold if args.fold is not None else int(meta.extra.get("fold", 0)) if args.data is None else 0
                with runner:
                    results[backend] = score_on_data(runner, meta, data, fold, args.split, args.clip_seconds)
                print(f"[{backend}] {format_data_figures(results[backend])}")
                continue
            world_labels_or_refuse(meta)
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
    if args.compare and scores:
        diff = float(np.abs(scores["torch"] - scores["onnxruntime"]).max())
        results["max_abs_diff_torch_vs_onnxruntime"] = diff
        print(f"torch vs onnxruntime: max |Δ| of the scores {diff:.2e} over {len(scores['torch'])} windows")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
