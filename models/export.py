"""python -m models.export RUN_DIR|CHECKPOINT: write ONNX with its metadata sidecar, verified.

A run folder (or one of its checkpoints) is rebuilt through its recipe; the recipe says what to
export (e.g. waveform in, probabilities out, front end inside the graph) with which dynamic
axes. The export checks itself (models/onnx_export.py): onnx.checker, then ONNX Runtime against
PyTorch within 1e-4 + 1e-4·|value| on random inputs of two sizes and on real inputs from the
recipe, all before the file is written.

    python -m models.export runs/baseline                 # → runs/baseline/model.onnx (+ .json)
    python -m models.export runs/baseline/checkpoints/last.pt --out /tmp/m.onnx
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .atomic import sha256_file
from .onnx_export import ExportError, export_onnx, worst_abs_diff
from .metadata import ModelMetadata


def export_run(source: Path, out: Path | None = None) -> tuple[Path, dict]:
    """Export a run folder or avlive checkpoint; returns (onnx path, max differences by check)."""
    from .train.checkpoint import find_checkpoint, load_trained

    checkpoint = find_checkpoint(source)
    recipe, model, metadata = load_trained(checkpoint)
    module, example, dynamic_axes = recipe.export_module(model)
    meta = ModelMetadata.from_dict(metadata).replace(checkpoint_sha256=sha256_file(checkpoint))
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    out = out or run_dir / "model.onnx"
    real = recipe.real_inputs() if hasattr(recipe, "real_inputs") else None
    extra = [real] if real else []
    report = export_onnx(module, meta, example, out, dynamic_axes=dynamic_axes, extra_checks=extra)
    diffs = {"random": worst_abs_diff(report.checks[: len(report.checks) - len(extra)])}
    if real:
        diffs["real"] = report.checks[-1].max_abs_diff
    return out, diffs


def export_pyth(source: Path, out: Path | None = None) -> tuple[Path, dict]:
    """Export a released Slow-Fast ``.pyth``: waveform in, eval-mode probabilities out.

    The variant and dataset come from the checkpoint's keys and head sizes; the front end is the
    reference's for that dataset (inside the graph), the labels the shipped label files'.
    """
    import torch

    from .metadata import TensorSpec
    from .slowfast import clip_spec_for
    from .slowfast_checkpoint import DATASET_CLASSES, build_model, labels_for, read_pyth
    from .slowfast_recipes import SlowFastWaveform

    ckpt = read_pyth(source)
    model = build_model(ckpt)
    classes = model.config.num_classes
    dataset = DATASET_CLASSES.get(classes)
    if dataset is None:
        raise ValueError(f"{source}: heads {classes} match no released dataset {sorted(DATASET_CLASSES)}; export it from a run folder instead")
    clip = clip_spec_for(dataset, model.config.arch)
    module = SlowFastWaveform(model, clip).eval()
    labels = labels_for(classes)
    meta = ModelMetadata(
        family="slowfast", task="labeler", labels=labels, sample_rate=clip.frontend.sample_rate, window_seconds=clip.seconds,
        needs_frame=False, frontend=clip.frontend.to_dict(), checkpoint_sha256=sha256_file(source),
        inputs=(TensorSpec("audio", ("batch", clip.clip_samples), "float32"),),
        outputs=(TensorSpec("probs", ("batch", len(labels)), "float32"),),
        extra={"multi_label": False, "dataset": dataset, "arch": model.config.arch, "heads": list(classes)},
    )
    out = out or Path(source).with_suffix(".onnx")
    example = {"audio": torch.randn(1, clip.clip_samples) * 0.05}
    report = export_onnx(module, meta, example, out, dynamic_axes={"audio": {0: "batch"}})
    return out, {"random": report.max_abs_diff}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a run folder, an avlive checkpoint, or a released Slow-Fast .pyth file")
    parser.add_argument("--out", type=Path, default=None, help="ONNX file to write (default: RUN_DIR/model.onnx, or beside the .pyth)")
    args = parser.parse_args(argv)
    try:
        if args.source.suffix == ".pyth":
            path, diffs = export_pyth(args.source, args.out)
        else:
            path, diffs = export_run(args.source, args.out)
    except (FileNotFoundError, ValueError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path}.json")
    for check, per_output in diffs.items():
        print(f"  ONNX Runtime vs PyTorch, {check} inputs: " + ", ".join(f"{name} max |Δ| {value:.2e}" for name, value in per_output.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
