"""The prepared GPU check: every family with ``--device cuda`` in PyTorch, and the front end on the GPU.

    python -m apps.gpu_check                       # on a machine with a CUDA GPU: about 1-3 minutes
    python -m apps.gpu_check --json out/gpu.json   # the table's figures as JSON too
    python -m apps.gpu_check --device cpu --families baseline   # a rehearsal on the CPU (plumbing only)

Written for a session that gets a GPU (none of the machines it was written on had one, so its
CUDA rows have not run yet). It prints one table:

* **family rows**: each family's network (random weights, the smallest variant a recipe or the
  network registry builds: ``baseline``, ``crnn-lite``, ``l3-lite``, ``slowfast-lite``,
  ``soundnet-lite``, ``avslowfast-lite``, ``panns-test``, ``efficientat-mn01``) run on the CPU
  and on the GPU in float32 at batch 1: max |GPU - CPU| of the first output, and the median
  latency of each (``--repeats`` calls after warm-up, ``torch.cuda.synchronize`` around GPU
  calls). TF32 is switched off so the difference measures the device, not reduced precision.
* **front-end rows**: avlive's front end (the demo Slow-Fast, L3 and EPIC-SOUNDS settings) on
  the GPU in both formulations (``stft``: ``torch.stft``; ``conv``: the strided convolution that
  TensorRT builds) against the float64 CPU features of the same 1 s of noise: max |Δ| (log units)
  and GPU latency.
* a **TensorRT** line: whether ``tensorrt`` imports (the device image has no TensorRT, so the
  engine path stays unrun there; tests/test_engines.py runs it where TensorRT exists).

Each row is independent: one that fails shows its error in the table and the others still run.
The whole check stops adding rows after ``--budget-s`` seconds (default 420, under the 8 minutes
a lent GPU session allows).

Exit status: 0 when every row ran, 1 when a row failed, 2 for bad options, and **77 with one
line on stderr when there is no CUDA device** (``torch.cuda.is_available()`` is False; 77 is the
"skipped" status of automake's test harness), so a caller can tell "not run" from "passed".
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

#: Exit status when there is no CUDA device (nothing was run).
NO_CUDA = 77

#: Family -> how its smallest network is built: ("recipe", recipe name) or ("network", network name).
FAMILY_MODELS: dict[str, tuple[str, str]] = {
    "baseline": ("recipe", "baseline"),
    "crnn": ("recipe", "crnn-lite"),
    "l3": ("recipe", "l3-lite"),
    "slowfast": ("recipe", "slowfast-lite"),
    "soundnet": ("recipe", "soundnet-lite"),
    "avslowfast": ("recipe", "avslowfast-lite"),
    "panns": ("network", "panns-test"),
    "efficientat": ("network", "efficientat-mn01"),
}

#: Inputs of the networks that come without a recipe: name -> batch-1 example.
_NETWORK_INPUTS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "panns-test": lambda torch: {"wave": torch.randn(1, 32000)},  # 1 s at PANNs' 32 kHz
    "efficientat-mn01": lambda torch: {"spec": torch.randn(1, 1, 128, 100)},  # 128 mel bands, 1 s at 10 ms hops
}

#: Front-end settings checked (the FrontEndConfig arguments).
FRONT_ENDS: dict[str, dict[str, Any]] = {
    "slowfast-demo": dict(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, power=1.0, n_mels=64,
                          mel_scale="htk", mel_norm=None),
    "l3": dict(sample_rate=48000, n_fft=2048, win_length=2048, hop_length=242, center=False, window_frames=True,
               power=1.0, n_mels=256, mel_scale="htk", mel_norm=None),
    "epic-sounds": dict(sample_rate=24000, n_fft=2048, win_length=1200, hop_length=240, power=2.0, n_mels=128),
}


@dataclass(frozen=True)
class Row:
    """One line of the table.

    Attributes:
        what: ``"family"``, ``"front end"`` or ``"tensorrt"``.
        name: The family or front-end setting (and formulation).
        detail: What ran (network, input shape).
        max_abs_diff: max |device - reference|, or None.
        cpu_ms: Median CPU latency, or None.
        device_ms: Median latency on the device, or None.
        error: Why the row failed, or "".
    """

    what: str
    name: str
    detail: str
    max_abs_diff: float | None = None
    cpu_ms: float | None = None
    device_ms: float | None = None
    error: str = ""


def _median_ms(call: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    call()
    sync()  # warm-up (kernels chosen, memory allocated)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _first_tensor(out: Any) -> Any:
    if isinstance(out, dict):
        return next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def build_family(family: str) -> tuple[Any, dict[str, Any], str]:
    """``(module, batch-1 inputs, description)`` of a family's smallest network, random weights."""
    import torch

    kind, name = FAMILY_MODELS[family]
    torch.manual_seed(0)
    if kind == "recipe":
        from models.families import RECIPES

        cls = RECIPES.get(name).factory
        recipe = cls(cls.config_class())
        module, example, _ = recipe.export_module(recipe.build_model())
        inputs = {k: v[:1].contiguous() for k, v in example.items()}
    else:
        from models.families import NETWORKS

        module = NETWORKS.get(name).factory()
        inputs = _NETWORK_INPUTS[name](torch)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in inputs.items())
    return module.eval(), inputs, f"{name}: {shapes}"


def family_row(family: str, device: str, repeats: int) -> Row:
    """The family's network on the CPU and on ``device``: max |Δ| of the first output, latencies."""
    import torch

    try:
        module, inputs, detail = build_family(family)
    except Exception as e:  # noqa: BLE001 - a row that cannot even be built says why
        return Row("family", family, FAMILY_MODELS[family][1], error=f"{type(e).__name__}: {str(e).splitlines()[0]}")
    try:
        with torch.no_grad():
            args = list(inputs.values())
            reference = _first_tensor(module(*args)).double()
            cpu_ms = _median_ms(lambda: module(*args), repeats, lambda: None)
            moved = module.to(device)
            device_args = [a.to(device) for a in args]
            sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
            got = _first_tensor(moved(*device_args)).double().cpu()
            device_ms = _median_ms(lambda: moved(*device_args), repeats, sync)
        return Row("family", family, detail, float((got - reference).abs().max()), cpu_ms, device_ms)
    except Exception as e:  # noqa: BLE001
        return Row("family", family, detail, error=f"{type(e).__name__}: {str(e).splitlines()[0]}")


def front_end_rows(setting: str, device: str, repeats: int) -> list[Row]:
    """avlive's front end on ``device`` in both formulations vs the float64 CPU features."""
    import torch

    from models.audio.frontend import FrontEnd, FrontEndConfig

    cfg = FrontEndConfig(**FRONT_ENDS[setting])
    wave = torch.randn(1, cfg.sample_rate, generator=torch.Generator().manual_seed(0))
    rows = []
    try:
        fe = FrontEnd(cfg)
        with torch.no_grad():
            reference = fe(wave.double())
            fe = fe.to(device)
            moved = wave.to(device)
            sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
            for impl in ("stft", "conv"):
                fe.stft_impl = impl
                got = fe(moved).double().cpu()
                ms = _median_ms(lambda: fe(moved), repeats, sync)
                rows.append(Row("front end", f"{setting} {impl}", f"1 s at {cfg.sample_rate} Hz, n_fft {cfg.n_fft}",
                                float((got - reference).abs().max()), None, ms))
    except Exception as e:  # noqa: BLE001
        rows.append(Row("front end", setting, "", error=f"{type(e).__name__}: {str(e).splitlines()[0]}"))
    return rows


def tensorrt_row() -> Row:
    try:
        import tensorrt
    except (ImportError, OSError) as e:
        return Row("tensorrt", "tensorrt", f"not installed here ({type(e).__name__}): the engine path stays unrun")
    return Row("tensorrt", "tensorrt", f"TensorRT {tensorrt.__version__} imports: run pytest tests/test_engines.py -k "
                                       "tensorrt for the engine tests")


def format_table(rows: list[Row], device: str) -> str:
    """The rows as a fixed-width table."""
    def num(x: float | None, fmt: str) -> str:
        return format(x, fmt) if x is not None else "-".rjust(int(fmt.split(".")[0]))

    lines = [f"{'what':10s} {'name':22s} {'max|Δ|':>9s} {'cpu ms':>8s} {device + ' ms':>8s}  detail"]
    for r in rows:
        lines.append(f"{r.what:10s} {r.name:22s} {num(r.max_abs_diff, '9.2e')} {num(r.cpu_ms, '8.2f')} "
                     f"{num(r.device_ms, '8.2f')}  {('ERROR ' + r.error) if r.error else r.detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda (default); cpu rehearses the script's plumbing on the CPU (its numbers mean nothing)")
    parser.add_argument("--families", default=",".join(FAMILY_MODELS), metavar="A,B",
                        help="families to run (default: all: %(default)s)")
    parser.add_argument("--repeats", type=int, default=20, metavar="N", help="timed calls per row (default %(default)s)")
    parser.add_argument("--budget-s", type=float, default=420.0, metavar="S",
                        help="stop adding rows after S seconds (default %(default)s)")
    parser.add_argument("--no-front-end", action="store_true", help="skip the front-end rows")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the rows as JSON")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILY_MODELS]
    if unknown or args.repeats < 1:
        what = f"--families: unknown {', '.join(unknown)} (expected among {', '.join(FAMILY_MODELS)})" if unknown else \
            f"--repeats: expected an int >= 1, found {args.repeats}"
        print(f"gpu_check: {what}", file=sys.stderr)
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda}, "
              f"torch.cuda.is_available() is False): nothing run (exit {NO_CUDA})", file=sys.stderr)
        return NO_CUDA
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        print(f"gpu_check: {torch.cuda.get_device_name(0)}, compute capability "
              f"{'.'.join(map(str, torch.cuda.get_device_capability(0)))}, torch {torch.__version__}", flush=True)
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows: list[Row] = []
    jobs: list[Callable[[], list[Row]]] = [lambda f=f: [family_row(f, args.device, args.repeats)] for f in families]
    if not args.no_front_end:
        jobs += [lambda s=s: front_end_rows(s, args.device, args.repeats) for s in FRONT_ENDS]
    jobs.append(lambda: [tensorrt_row()])
    for job in jobs:
        if time.perf_counter() - started > args.budget_s:
            rows.append(Row("budget", "-", "", error=f"stopped after {args.budget_s:g} s; rows left out"))
            break
        for row in job():
            rows.append(row)
            print(format_table([row], args.device).splitlines()[1], flush=True)
    print()
    print(format_table(rows, args.device))
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

