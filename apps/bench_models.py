"""The model table: every family's live model per backend and batch, waveform in, scores out.

    python -m apps.bench_models                     # the table, about 5-8 minutes on 2 cores
    python -m apps.bench_models --quick             # the demo models and EfficientAT mn04, under 2 minutes
    python -m apps.bench_models --int8 --out out/bench-models      # + INT8 variants quantized on world windows

Models (seeded random weights where no trained ones ship: latency does not depend on them):
the demo labeler (slowfast-lite) and localizer (L3 lite) as shipped (ONNX only), paper-size
Slow-Fast EPIC, PANNs Cnn14, EfficientAT mn10 (``--quick``: mn04). Rows, each after warm-up,
medians and tails of ``--iters`` calls on one world window:

* ``torch`` eager, batch 1 and batch 8 (8 streams' windows in one call, per window);
* ``torch.compile``, batch 1: skipped with the reason where no C++ compiler is on PATH, or with
  ``--no-compile`` (compiling takes minutes);
* ``onnxruntime`` fp32, batch 1 and 8: the exported graph (front end inside), as avlive runs it;
* ``onnxruntime`` int8, batch 1: the shipped variant, or with ``--int8`` one quantized here;
* ``torch cuda`` (``--cuda``), batch 1 and 8, each call synchronised: skipped with the reason
  where there is no CUDA device;
* ``tensorrt``: skipped with the reason where TensorRT is not installed.

Columns: p50 / p95 / p99 ms per call (batch 8: per window), GFLOP/s achieved (floating-point
operations of one batch-1 call counted by ``torch.utils.flop_counter`` over p50; ONNX rows use the
same count), and the process's peak RSS after the model. Writes ``OUT/models.json``,
``OUT/models.md`` and ``OUT/models.png`` (p50 per model and backend).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from models.core.family import ExportableModel
from models.core.metadata import ModelMetadata, TensorSpec, precision_path, sidecar_path
from models.evaluation.benchmark import configure_threads, machine_description, ort_session_options, quiet, time_callable
from realtime.models import DEMO_DIR

BATCH = 8


@dataclass
class Row:
    """One model on one backend."""

    model: str
    backend: str
    batch: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    gflops_per_s: float | None = None
    peak_rss_mb: float | None = None
    skipped: str | None = None


@dataclass
class Subject:
    """What is timed: a torch module with its example (or None: ONNX only), and its ONNX file."""

    name: str
    module: torch.nn.Module | None
    onnx: Path
    metadata: ModelMetadata


def export(model: ExportableModel, path: Path) -> Path:
    """``model`` exported (and verified) to ``path``, quietly."""
    from models.export.onnx import export_onnx

    with quiet():
        export_onnx(model.module, model.metadata, model.example_inputs, path, dynamic_axes=model.dynamic_axes)
    return path


def slowfast_epic_exportable() -> ExportableModel:
    """Paper-size Slow-Fast EPIC with seeded random weights, waveform in (front end inside)."""
    from models.families import NETWORKS
    from models.slowfast.network import EPIC_CLIP
    from models.slowfast.recipes import SlowFastWaveform

    torch.manual_seed(0)
    module = SlowFastWaveform(NETWORKS.create("slowfast-epic100").eval(), EPIC_CLIP).eval()
    n = EPIC_CLIP.clip_samples
    meta = ModelMetadata(family="slowfast", task="labeler", labels=tuple(f"class_{k}" for k in range(397)),
                         sample_rate=24000, window_seconds=EPIC_CLIP.seconds, needs_frame=False,
                         frontend=EPIC_CLIP.frontend.to_dict(), inputs=(TensorSpec("audio", ("batch", n), "float32"),),
                         outputs=(TensorSpec("probs", ("batch", 397), "float32"),), extra={"multi_label": False})
    example = {"audio": 0.05 * torch.randn(2, n, generator=torch.Generator().manual_seed(0))}
    return ExportableModel(module, example, {"audio": {0: "batch"}}, meta)


def _slowfast_epic(tmp: Path) -> Subject:
    model = slowfast_epic_exportable()
    return Subject("slowfast-epic100 (paper, random)", model.module, export(model, tmp / "slowfast.onnx"),
                   model.metadata)


def _panns(tmp: Path) -> Subject:
    from models.panns.network import CNN14
    from models.panns.random_weights import random_checkpoint
    from models.panns.released import load_panns

    path = tmp / "Cnn14_random.pth"
    torch.save(random_checkpoint(CNN14, 0), path)
    model = load_panns(path)
    return Subject("panns-cnn14 (random)", model.module.eval(), export(model, tmp / "cnn14.onnx"), model.metadata)


def _efficientat(size: str) -> Callable[[Path], Subject]:
    def build(tmp: Path) -> Subject:
        from models.efficientat.frontend import MelConfig
        from models.efficientat.released import CANDIDATES, WINDOW_SECONDS, MNWaveform, build_network, metadata_for

        torch.manual_seed(0)
        module = MNWaveform(build_network(CANDIDATES[size])).eval()
        weights = tmp / f"{size}.pt"
        torch.save(module.net.state_dict(), weights)
        meta = metadata_for(weights, CANDIDATES[size], MelConfig())
        n = int(round(WINDOW_SECONDS * meta.sample_rate))
        example = {"audio": 0.05 * torch.randn(2, n, generator=torch.Generator().manual_seed(0))}
        model = ExportableModel(module, example, {"audio": {0: "batch"}}, meta)
        return Subject(f"efficientat-{size} (random)", module, export(model, tmp / f"{size}.onnx"), meta)
    return build


def _demo(kind: str) -> Callable[[Path], Subject]:
    def build(tmp: Path) -> Subject:
        path = DEMO_DIR / kind / "model.onnx"
        name = {"labeler": "demo labeler (slowfast-lite)", "localizer": "demo localizer (L3 lite)"}[kind]
        return Subject(name, None, path, ModelMetadata.load(sidecar_path(path)))
    return build


MODELS: dict[str, Callable[[Path], Subject]] = {
    "demo-labeler": _demo("labeler"),
    "demo-localizer": _demo("localizer"),
    "slowfast-epic100": _slowfast_epic,
    "panns-cnn14": _panns,
    "efficientat-mn10": _efficientat("mn10"),
    "efficientat-mn04": _efficientat("mn04"),
}
DEFAULT = ["demo-labeler", "demo-localizer", "slowfast-epic100", "panns-cnn14", "efficientat-mn10"]
QUICK = ["demo-labeler", "demo-localizer", "efficientat-mn04"]


def feeds(meta: ModelMetadata, batch: int) -> dict[str, np.ndarray]:
    """One world test window (and its frame) per batch row, as the model's inputs."""
    from models.export.quantize import world_inputs

    one, _ = world_inputs(meta, "test", 1)
    return {k: np.repeat(v, batch, axis=0) for k, v in one.items()}


def count_flops(module: torch.nn.Module, feed: dict[str, np.ndarray]) -> int | None:
    """Floating-point operations of one call, counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        module(*[torch.from_numpy(v) for v in feed.values()])
    return int(counter.get_total_flops()) or None


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(name: str, backend: str, batch: int, fn, iters: int, flops: int | None) -> Row:
    t = time_callable(fn, warmup=2, iters=iters, name=f"{name} {backend} b{batch}")
    per = 1.0 / batch
    return Row(name, backend, batch, t.p50_ms * per, t.p95_ms * per, t.p99_ms * per,
               None if flops is None else flops / (t.p50_ms * per * 1e-3) / 1e9, _peak_rss_mb())


def compile_refusal(enabled: bool) -> str | None:
    """Why torch.compile rows are skipped, or None."""
    if not enabled:
        return "--no-compile"
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        return "no C++ compiler on PATH (torch.compile's inductor needs one)"
    return None


def tensorrt_refusal() -> str | None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (pip install -e '.[tensorrt]' on a CUDA machine)"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return "TensorRT rows need an engine: python -m engines.build_engine MODEL.onnx (not timed here)"


def _cuda_rows(subject: Subject, t1: dict, t8: dict, iters: int, few: int, flops: int | None) -> list[Row]:
    """``torch`` on the GPU, batch 1 and 8 (each call synchronised), or one skipped row saying why."""
    if not torch.cuda.is_available():
        return [Row(subject.name, "torch cuda", 1, skipped=f"no CUDA device (torch {torch.__version__}, CUDA build: "
                                                           f"{torch.version.cuda})")]
    module = subject.module.to("cuda")
    g1 = {k: v.to("cuda") for k, v in t1.items()}
    g8 = {k: v.to("cuda") for k, v in t8.items()}
    rows = []
    try:
        with torch.inference_mode():
            for batch, feed, n in ((1, g1, iters), (BATCH, g8, few)):
                t = time_callable(lambda feed=feed: module(*feed.values()), warmup=2, iters=n,
                                  name=f"{subject.name} torch cuda b{batch}", sync=torch.cuda.synchronize)
                per = 1.0 / batch
                rows.append(Row(subject.name, "torch cuda", batch, t.p50_ms * per, t.p95_ms * per, t.p99_ms * per,
                                None if flops is None else flops / (t.p50_ms * per * 1e-3) / 1e9,
                                torch.cuda.max_memory_allocated() / 2**20))
    finally:
        subject.module.to("cpu")
    return rows


def bench_subject(subject: Subject, args, tmp: Path) -> list[Row]:
    import onnxruntime as ort

    rows: list[Row] = []
    one, many = feeds(subject.metadata, 1), feeds(subject.metadata, BATCH)
    flops = count_flops(subject.module, one) if subject.module is not None else None
    iters, few = args.iters, max(3, args.iters // 4)
    if subject.module is not None:
        module = subject.module
        t1 = {k: torch.from_numpy(v) for k, v in one.items()}
        t8 = {k: torch.from_numpy(v) for k, v in many.items()}
        with torch.inference_mode():
            rows.append(_timed(subject.name, "torch", 1, lambda: module(*t1.values()), iters, flops))
            rows.append(_timed(subject.name, "torch", BATCH, lambda: module(*t8.values()), few, flops))
        why = compile_refusal(args.compile)
        if why is None:
            try:
                compiled = torch.compile(module)
                with torch.inference_mode():
                    compiled(*t1.values())  # compiles
                    rows.append(_timed(subject.name, "torch.compile", 1, lambda: compiled(*t1.values()), iters, flops))
            except Exception as e:  # noqa: BLE001 - inductor fails in many ways; the row says how
                rows.append(Row(subject.name, "torch.compile", 1, skipped=f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"))
        else:
            rows.append(Row(subject.name, "torch.compile", 1, skipped=why))
        rows.extend(_cuda_rows(subject, t1, t8, iters, few, flops) if args.cuda else [])
    else:
        rows.append(Row(subject.name, "torch", 1, skipped="shipped as ONNX only"))
    session = ort.InferenceSession(str(subject.onnx), ort_session_options(args.threads), providers=["CPUExecutionProvider"])
    rows.append(_timed(subject.name, "onnxruntime fp32", 1, lambda: session.run(None, one), iters, flops))
    rows.append(_timed(subject.name, "onnxruntime fp32", BATCH, lambda: session.run(None, many), few, flops))
    int8 = precision_path(subject.onnx, "int8")
    if not int8.is_file() and args.int8:
        from models.export.quantize import export_int8

        with quiet():
            int8 = Path(export_int8(subject.onnx, calib=16, held_out=16).path)
    if int8.is_file():
        quantized = ort.InferenceSession(str(int8), ort_session_options(args.threads), providers=["CPUExecutionProvider"])
        rows.append(_timed(subject.name, "onnxruntime int8", 1, lambda: quantized.run(None, one), iters, flops))
    else:
        rows.append(Row(subject.name, "onnxruntime int8", 1, skipped="no int8 variant (--int8 quantizes one here)"))
    rows.append(Row(subject.name, "tensorrt", 1, skipped=tensorrt_refusal()))
    return rows


def _f(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def table(rows: list[Row]) -> str:
    lines = ["| model | backend | batch | p50 ms | p95 ms | p99 ms | GFLOP/s | peak RSS MB | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.backend} | {r.batch} | {_f(r.p50_ms)} | {_f(r.p95_ms)} | {_f(r.p99_ms)} | "
                     f"{_f(r.gflops_per_s, 1)} | {_f(r.peak_rss_mb, 0)} | {'skipped: ' + r.skipped if r.skipped else ''} |")
    return "\n".join(lines)


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in rows if r.p50_ms is not None]
    models = list(dict.fromkeys(r.model for r in timed))
    backends = list(dict.fromkeys(f"{r.backend} b{r.batch}" for r in timed))
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(1, len(backends))
    for j, b in enumerate(backends):
        values = [next((r.p50_ms for r in timed if r.model == m and f"{r.backend} b{r.batch}" == b), np.nan)
                  for m in models]
        ax.bar(np.arange(len(models)) + j * width, values, width, label=b)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(models)) + 0.4 - width / 2)
    ax.set_xticklabels(models, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("ms per window (p50, log scale)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("avlive models per backend (batch 8: per window)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.bench_models", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=None, help="models (default: all but mn04)")
    p.add_argument("--quick", action="store_true", help="the demo models and EfficientAT mn04, fewer calls")
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    p.add_argument("--iters", type=int, default=20, help="timed calls per batch-1 row (batch 8: a quarter)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="time torch.compile rows")
    p.add_argument("--int8", action="store_true", help="quantize models without a shipped INT8 variant")
    p.add_argument("--cuda", action="store_true",
                   help="also torch on the GPU, batch 1 and 8 (peak RSS column: CUDA memory allocated, MB); a row "
                        "says why where there is no CUDA device")
    p.add_argument("--out", type=Path, default=Path("out/bench-models"), help="where the JSON, Markdown and plot go")
    args = p.parse_args(argv)
    names = args.models or (QUICK if args.quick else DEFAULT)
    if args.quick:
        args.iters = min(args.iters, 8)
        args.compile = False
    configure_threads(args.threads)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="avlive-bench-models-") as tmp:
        for name in names:
            print(f"timing {name} ...", file=sys.stderr, flush=True)
            rows.extend(bench_subject(MODELS[name](Path(tmp)), args, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    text = table(rows)
    header = f"{machine.get('cpu_model', 'CPU')}, {args.threads} threads, {args.iters} calls per row (medians and tails)"
    print(f"\n{header}\n\n{text}")
    (args.out / "models.md").write_text(f"{header}\n\n{text}\n")
    (args.out / "models.json").write_text(json.dumps({"machine": machine, "threads": args.threads, "iters": args.iters,
                                                      "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    plot(rows, args.out / "models.png")
    print(f"\nwrote {args.out / 'models.md'}, models.json and models.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
