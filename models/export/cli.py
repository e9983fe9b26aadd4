"""python -m models.export RUN_DIR|CHECKPOINT|MODEL_FILE: write ONNX with its metadata sidecar, verified.

A run folder (or one of its checkpoints) is rebuilt through its recipe; the recipe says what to
export (e.g. waveform in, probabilities out, front end inside the graph) with which dynamic
axes. The export checks itself (models/export/onnx.py): onnx.checker, then ONNX Runtime against
PyTorch within 1e-4 + 1e-4·|value| on random inputs of two sizes and on real inputs from the
recipe, all before the file is written.

    python -m models.export runs/baseline                 # → runs/baseline/model.onnx (+ .json)
    python -m models.export runs/baseline/checkpoints/last.pt --out /tmp/m.onnx
    python -m models.export Cnn14_mAP=0.431.pth           # a PANNs file, read as its name says
    python -m models.export panns.pth --family panns-cnn14-decision-max   # the name says nothing

--family KIND reads a file as that model file kind whatever its name or suffix (the kinds are
listed below); without it, the kind that claims the file reads it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.core.atomic import sha256_file
from models.core.checkpoint import find_checkpoint
from models.core.family import ModelFile
from models.core.metadata import ModelMetadata
from models.export.onnx import ExportError, export_onnx, worst_abs_diff
from models.families import MODEL_FILES, load_trained, model_file_for


def export_run(source: Path, out: Path | None = None) -> tuple[Path, dict]:
    """Export a run folder or avlive checkpoint; returns (onnx path, max differences by check)."""
    checkpoint = find_checkpoint(source)
    recipe, model, metadata = load_trained(checkpoint)
    module, example, dynamic_axes = recipe.export_module(model)
    meta = ModelMetadata.from_dict(metadata).replace(checkpoint_sha256=sha256_file(checkpoint))
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    out = out or run_dir / "model.onnx"
    real = recipe.real_inputs() if hasattr(recipe, "real_inputs") else None
    extra = [real] if real else []
    report = export_onnx(module, meta, example, out, dynamic_axes=dynamic_axes, extra_checks=extra)
    return out, diffs_by_kind(report.checks)


def diffs_by_kind(checks) -> dict[str, dict[str, float]]:
    """The worst difference per output for each kind of verification input, named for the
    printout: random inputs (the example and other sizes), a low-passed world scene (models with
    a front end), the recipe's real inputs."""
    names = {"example": "random", "random": "random", "lowpassed_scene": "low-passed scene", "extra": "real"}
    grouped: dict[str, list] = {}
    for check in checks:
        grouped.setdefault(names.get(check.kind, check.kind), []).append(check)
    return {name: worst_abs_diff(group) for name, group in grouped.items()}


def export_model_file(kind: ModelFile, source: Path, out: Path | None = None) -> tuple[Path, dict]:
    """Export a model file a family reads directly (``kind``: a released Slow-Fast ``.pyth``, a
    bare L3 checkpoint) to ``out`` (default: beside it, suffix ``.onnx``)."""
    model = kind.load(Path(source))
    out = out or Path(source).with_suffix(".onnx")
    report = export_onnx(model.module, model.metadata, model.example_inputs, out, dynamic_axes=model.dynamic_axes)
    return out, diffs_by_kind(report.checks)


def model_file_kind(name: str) -> ModelFile:
    """The model file kind called ``name`` (``--family``).

    Raises:
        ValueError: no such kind (the message lists them).
    """
    if name not in MODEL_FILES:
        raise ValueError(f"--family {name}: expected one of the model file kinds {', '.join(MODEL_FILES.names())}")
    return MODEL_FILES.get(name).factory


def export_any(source: Path, out: Path | None = None, family: str | None = None) -> tuple[Path, dict]:
    """A model file through the family that reads it (``family``: that model file kind, by name),
    else a run folder or checkpoint through its recipe."""
    if family is not None:
        if not Path(source).is_file():
            raise FileNotFoundError(f"{source}: no such file (--family {family} reads a model file)")
        return export_model_file(model_file_kind(family), source, out)
    kind = model_file_for(source) if Path(source).is_file() else None
    return export_run(source, out) if kind is None else export_model_file(kind, source, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="model file kinds (--family):\n" + MODEL_FILES.describe())
    parser.add_argument("source", type=Path, help="a run folder, an avlive checkpoint, or a model file a family reads (a released Slow-Fast .pyth, an L3 checkpoint, a PANNs .pth)")
    parser.add_argument("--out", type=Path, default=None, help="ONNX file to write (default: RUN_DIR/model.onnx, or beside the model file)")
    parser.add_argument("--family", metavar="KIND", default=None,
                        help="read SOURCE as this model file kind (e.g. panns-cnn14, panns-cnn14-decision-max); default: the kind that claims it")
    args = parser.parse_args(argv)
    try:
        path, diffs = export_any(args.source, args.out, args.family)
    except (FileNotFoundError, ValueError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path}.json")
    for check, per_output in diffs.items():
        print(f"  ONNX Runtime vs PyTorch, {check} inputs: " + ", ".join(f"{name} max |Δ| {value:.2e}" for name, value in per_output.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
