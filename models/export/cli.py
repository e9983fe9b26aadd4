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

Reduced precision (models/export/quantize.py):

    python -m models.export runs/baseline --int8          # model.onnx, then model.int8.onnx (+ .json)
    python -m models.export models/demo/labeler/model.onnx --int8 --calib 128
    python -m models.export runs/esc --int8 --calib-data ESC-50   # calibrate on the set's clips

Triton Inference Server (models/export/triton.py), for many avlive clients on one server:

    python -m models.export runs/baseline --triton triton-repo          # export, then triton-repo/baseline/
    python -m models.export models/demo/labeler/model.onnx --triton triton-repo --triton-backend python
    python -m models.export runs/x/model.fp16.engine --triton triton-repo   # a TensorRT plan (GPU server)

--triton writes REPO/<name>/config.pbtxt (dynamic batching, instance group, tensors from the
sidecar, the sidecar itself as a parameter) and REPO/<name>/1/model.onnx with its sidecar; an
existing .onnx or .engine is served as it is.

--frontend conv keeps the front end in the graph but computes its STFT as a strided convolution
with the windowed DFT basis instead of ONNX's STFT op, which TensorRT's ONNX parser does not have:
export with it the models you will build engines from (README, "Deployment").

--int8 writes ONNX Runtime static INT8 (QDQ, per-channel weights, front end kept in float32)
beside the fp32 file, calibrated on --calib world validation windows (or training clips of
--calib-data, audio-only labelers), and records in its sidecar the max |Δ| and top-1 agreement
against fp32 on world test windows (and top-1/mAP for labelers of the world's classes). An
existing .onnx with its sidecar is quantized as it is. --bf16 says why it writes nothing here.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.core.atomic import sha256_file
from models.core.checkpoint import find_checkpoint
from models.core.family import ExportableModel, ModelFile
from models.core.metadata import ModelMetadata
from models.export.frontend_outside import features_in, features_path
from models.export.onnx import ExportError, export_onnx, worst_abs_diff
from models.export.quantize import DEFAULT_CALIB, QuantizeError, bf16_refusal, export_int8
from models.export.triton import (DEFAULT_MAX_BATCH as TRITON_MAX_BATCH, TRITON_BACKENDS, TritonExportError,
                                  write_triton_repository)
from models.families import MODEL_FILES, load_trained, model_file_for


def export_run(source: Path, out: Path | None = None, *, frontend_outside: bool = False,
               stft_impl: str = "stft", live_settings: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """Export a run folder or avlive checkpoint; returns (onnx path, max differences by check).
    ``frontend_outside``: the features-in variant ``model.logmel.onnx`` (models.export.frontend_outside).
    ``stft_impl``: ``"conv"`` computes the graph's STFT as a convolution (TensorRT builds it).
    ``live_settings``: ``NAME=VALUE`` changes to the recipe's live settings (``--set``)."""
    checkpoint = find_checkpoint(source)
    recipe, model, metadata = load_trained(checkpoint, live_settings)
    module, example, dynamic_axes = recipe.export_module(model)
    meta = ModelMetadata.from_dict(metadata).replace(checkpoint_sha256=sha256_file(checkpoint))
    if frontend_outside:
        variant = features_in(ExportableModel(module, example, dynamic_axes, meta))
        module, example, dynamic_axes, meta = variant.module, variant.example_inputs, variant.dynamic_axes, variant.metadata
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    out = out or run_dir / ("model.logmel.onnx" if frontend_outside else "model.onnx")
    real = recipe.real_inputs() if hasattr(recipe, "real_inputs") and not frontend_outside else None
    extra = [real] if real else []
    report = export_onnx(module, meta, example, out, dynamic_axes=dynamic_axes, extra_checks=extra, stft_impl=stft_impl)
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


def export_model_file(kind: ModelFile, source: Path, out: Path | None = None, *,
                      frontend_outside: bool = False, stft_impl: str = "stft") -> tuple[Path, dict]:
    """Export a model file a family reads directly (``kind``: a released Slow-Fast ``.pyth``, a
    bare L3 checkpoint) to ``out`` (default: beside it, suffix ``.onnx``; ``.logmel.onnx`` for the
    features-in variant)."""
    model = kind.load(Path(source))
    if frontend_outside:
        model = features_in(model)
    out = out or (features_path(Path(source).with_suffix(".onnx")) if frontend_outside else Path(source).with_suffix(".onnx"))
    report = export_onnx(model.module, model.metadata, model.example_inputs, out, dynamic_axes=model.dynamic_axes,
                         stft_impl=stft_impl)
    return out, diffs_by_kind(report.checks)


def model_file_kind(name: str) -> ModelFile:
    """The model file kind called ``name`` (``--family``).

    Raises:
        ValueError: no such kind (the message lists them).
    """
    if name not in MODEL_FILES:
        raise ValueError(f"--family {name}: expected one of the model file kinds {', '.join(MODEL_FILES.names())}")
    return MODEL_FILES.get(name).factory


def export_any(source: Path, out: Path | None = None, family: str | None = None, *,
               frontend_outside: bool = False, stft_impl: str = "stft",
               live_settings: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """A model file through the family that reads it (``family``: that model file kind, by name),
    else a run folder or checkpoint through its recipe (``live_settings``: see :func:`export_run`)."""
    if family is not None:
        if not Path(source).is_file():
            raise FileNotFoundError(f"{source}: no such file (--family {family} reads a model file)")
        kind = model_file_kind(family)
    else:
        kind = model_file_for(source) if Path(source).is_file() else None
    if kind is None:
        return export_run(source, out, frontend_outside=frontend_outside, stft_impl=stft_impl,
                          live_settings=live_settings)
    if live_settings:
        raise ValueError(f"--set {live_settings[0]}: live settings change a run's recipe config; {source} is a "
                         "model file, exported as it is")
    return export_model_file(kind, source, out, frontend_outside=frontend_outside, stft_impl=stft_impl)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="model file kinds (--family):\n" + MODEL_FILES.describe())
    parser.add_argument("source", type=Path, help="a run folder, an avlive checkpoint, or a model file a family reads (a released Slow-Fast .pyth, an L3 checkpoint, a PANNs .pth)")
    parser.add_argument("--out", type=Path, default=None, help="ONNX file to write (default: RUN_DIR/model.onnx, or beside the model file)")
    parser.add_argument("--family", metavar="KIND", default=None,
                        help="read SOURCE as this model file kind (e.g. panns-cnn14, panns-cnn14-decision-max); default: the kind that claims it")
    parser.add_argument("--frontend", choices=("inside", "outside", "conv"), default="inside",
                        help="inside: waveform in, the front end in the graph (model.onnx); outside: log-mel in "
                             "(model.logmel.onnx), the live labeler computes only each hop's new frames in numpy "
                             "(waveform-in Slow-Fast models; models/export/frontend_outside.py); conv: as inside, the "
                             "STFT computed as a strided convolution with the windowed DFT basis, which TensorRT "
                             "builds (export with it the models you build engines from)")
    parser.add_argument("--set", dest="live_settings", action="append", default=[], metavar="NAME=VALUE",
                        help="change a live setting of a run's recipe for this export: fields that shape the "
                             "streaming graph and its metadata, not the trained weights (crnn-lite: hop_seconds, "
                             "lookahead_frames, live_window_seconds; e.g. --set hop_seconds=0.04 for a label every "
                             "40 ms); repeatable")
    precision = parser.add_argument_group("reduced precision")
    precision.add_argument("--int8", action="store_true",
                           help="also write the static INT8 variant MODEL.int8.onnx (+ .json) beside the fp32 file")
    precision.add_argument("--calib", type=int, default=DEFAULT_CALIB, metavar="N",
                           help="calibration inputs for --int8 (default: %(default)s)")
    precision.add_argument("--calib-data", type=Path, default=None, metavar="DIR",
                           help="calibrate --int8 on this dataset folder's training clips (any layout the trainer "
                                "reads; audio-only labelers) instead of world validation windows")
    precision.add_argument("--bf16", action="store_true",
                           help="bfloat16 variant: refused, with the measurement that decided it (quantize.py)")
    triton = parser.add_argument_group("Triton Inference Server")
    triton.add_argument("--triton", type=Path, default=None, metavar="REPO_DIR",
                        help="also write a Triton model repository entry REPO_DIR/<name>/ (config.pbtxt, 1/model.onnx "
                             "and its sidecar)")
    triton.add_argument("--triton-name", default=None, metavar="NAME",
                        help="the model's name on the server (default: the run's folder name, e.g. baseline)")
    triton.add_argument("--triton-backend", choices=TRITON_BACKENDS, default=None,
                        help="onnxruntime (Triton's ONNX Runtime backend), python (ONNX Runtime inside Triton's Python "
                             "backend, for servers without the former), tensorrt (an .engine as model.plan); default: "
                             "tensorrt for an engine, else onnxruntime")
    triton.add_argument("--triton-max-batch", type=int, default=TRITON_MAX_BATCH, metavar="N",
                        help="largest batch the server's dynamic batcher forms (default: %(default)s)")
    triton.add_argument("--triton-instances", type=int, default=1, metavar="N",
                        help="model instances on the server (default: %(default)s)")
    triton.add_argument("--triton-kind", choices=("cpu", "gpu"), default="cpu",
                        help="where the instances run (default: %(default)s; tensorrt: gpu)")
    args = parser.parse_args(argv)
    triton_flags = args.triton_name or args.triton_backend or args.triton_max_batch != TRITON_MAX_BATCH or \
        args.triton_instances != 1 or args.triton_kind != "cpu"
    if triton_flags and args.triton is None:
        print("error: the --triton-* options describe the repository --triton REPO_DIR writes; add --triton REPO_DIR",
              file=sys.stderr)
        return 2
    if args.bf16:
        print(f"error: {bf16_refusal()}", file=sys.stderr)
        return 2
    if (args.calib_data is not None or args.calib != DEFAULT_CALIB) and not args.int8:
        print("error: --calib and --calib-data choose the calibration of --int8; add --int8", file=sys.stderr)
        return 2
    try:
        served_as_is = args.source.suffix in (".engine", ".plan") or (
            args.source.suffix == ".onnx" and args.family is None and args.source.is_file())
        if args.triton is not None and served_as_is and not args.int8:
            print(format_triton(write_triton_repository(
                args.source, args.triton, name=args.triton_name, backend=args.triton_backend,
                max_batch_size=args.triton_max_batch, instances=args.triton_instances, kind=args.triton_kind)))
            return 0
        if args.int8 and args.source.suffix == ".onnx" and args.family is None:
            path = args.source  # an existing export: quantized as it is
        else:
            path, diffs = export_any(args.source, args.out, args.family, frontend_outside=args.frontend == "outside",
                                     stft_impl="conv" if args.frontend == "conv" else "stft",
                                     live_settings=tuple(args.live_settings))
            print(f"wrote {path} and {path}.json")
            for check, per_output in diffs.items():
                print(f"  ONNX Runtime vs PyTorch, {check} inputs: " + ", ".join(f"{name} max |Δ| {value:.2e}" for name, value in per_output.items()))
        if args.int8:
            report = export_int8(path, calib=args.calib, calib_data=args.calib_data,
                                 out=args.out if path == args.source and args.out else None)
            print(format_int8(report))
        if args.triton is not None:
            print(format_triton(write_triton_repository(
                report.path if args.int8 else path, args.triton, name=args.triton_name, backend=args.triton_backend,
                max_batch_size=args.triton_max_batch, instances=args.triton_instances, kind=args.triton_kind)))
    except (FileNotFoundError, ValueError, ExportError, QuantizeError, TritonExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def format_triton(done) -> str:
    """The lines ``--triton`` prints: what was written and how to serve it."""
    batching = (f"dynamic batching up to {done.max_batch_size}" if done.dynamic_batching else
                "no batch axis on every tensor: max_batch_size 0, no dynamic batching")
    repo = done.config.parent.parent
    return (f"wrote Triton model {done.name!r}: {done.config} and {done.model} (+ {done.sidecar.name}); {batching}\n"
            f"  serve it: tritonserver --model-repository {repo} (or python -m apps.triton_server --serve {repo}); "
            f"then: avlive --backend triton --triton-url HOST:8001 --models {done.name}")


def format_int8(report) -> str:
    """The lines ``--int8`` prints: what was written and what it measured."""
    r = report.record
    held = r["held_out"]
    lines = [f"wrote {report.path} and {report.sidecar.name} ({report.seconds:.0f} s)",
             f"  calibrated on {r['calibration']['count']} {r['calibration']['set']}; "
             f"{len(r['float32_nodes'])} front-end nodes kept in float32",
             f"  int8 vs fp32 on {held['count']} held-out {held['set']}: top-1 agreement "
             f"{100 * held['top1_agreement']:.1f}%, " + ", ".join(f"{n} max |Δ| {v:.3g}" for n, v in held["max_abs_diff"].items())]
    if held["top1_agreement"] < 0.99:
        lines.append(f"  warning: int8 and fp32 disagree on the top class of {100 * (1 - held['top1_agreement']):.1f}% of "
                     f"the held-out inputs; compare them on your own data before running --precision int8")
    if "world_test" in r:
        w = r["world_test"]
        lines.append(f"  world test top-1 {100 * w['fp32']['top1']:.1f}% -> {100 * w['int8']['top1']:.1f}% "
                     f"({w['top1_change_points']:+.1f} points), mAP {w['fp32']['mAP']:.3f} -> {w['int8']['mAP']:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
