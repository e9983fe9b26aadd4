"""Build a TensorRT engine from an exported ONNX model: ``python -m engines.build_engine MODEL.onnx``.

Follows TensorRT 10's documented Python API: ``Builder`` → network from ``OnnxParser``
(every parser error printed on failure) → ``BuilderConfig`` with a workspace memory-pool limit
(``set_memory_pool_limit``), the FP16 flag if asked, one optimisation profile for the dynamic
inputs, a timing cache reused across builds, and an ``IProgressMonitor`` printing progress
(Ctrl-C cancels the build cleanly) → ``build_serialized_network``. The engine and its sidecar
(see :mod:`engines.tensorrt_runner`: ONNX SHA-256, TensorRT version, GPU, precision, profiles,
I/O tensors, labels, sample rate) are written atomically. The first build of a model takes
minutes; later builds reuse the timing cache.

Profiles: an input's min/opt/max shapes are taken from ``min_shapes``/``opt_shapes``/
``max_shapes`` (CLI ``--min/--opt/--max NAME:1x16000``) when given; otherwise from the example
shape the exporter recorded in the ONNX sidecar, with every axis named ``"batch"`` spanning
1 (min, opt) to ``max_batch`` and every other dynamic axis fixed at its example size
(:func:`resolve_profiles`, pure and tested without TensorRT).

Example::

    python -m engines.build_engine runs/x/model.onnx --fp16           # -> runs/x/model.fp16.engine (+ .json)
    python -m engines.build_engine runs/x/model.onnx --max audio:8x32000 --opt audio:1x16000 --min audio:1x8000
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from engines.tensorrt_runner import EngineInfo, engine_metadata, require_tensorrt
from models.core.atomic import atomic_write_bytes, sha256_file
from models.core.metadata import ModelMetadata, TensorSpec, sidecar_path

__all__ = ["EngineBuild", "build_engine", "default_engine_path", "resolve_profiles", "parse_shape_arg", "main"]

#: Default workspace memory-pool limit.
DEFAULT_WORKSPACE_MB = 1024

#: Default largest batch of the optimisation profile.
DEFAULT_MAX_BATCH = 8


@dataclass(frozen=True)
class EngineBuild:
    """What :func:`build_engine` wrote.

    Attributes:
        engine_path: The serialized engine.
        sidecar: Its sidecar (``<engine_path>.json``).
        info: The :class:`EngineInfo` recorded in the sidecar.
        seconds: Build time.
    """

    engine_path: Path
    sidecar: Path
    info: EngineInfo
    seconds: float


def default_engine_path(onnx_path: str | os.PathLike, fp16: bool = False) -> Path:
    """``runs/x/model.onnx`` → ``runs/x/model.fp16.engine`` (or ``.fp32.engine``)."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}.{'fp16' if fp16 else 'fp32'}.engine")


def parse_shape_arg(text: str) -> tuple[str, tuple[int, ...]]:
    """``"audio:1x16000"`` → ``("audio", (1, 16000))``.

    Raises:
        ValueError: If the text is not ``NAME:DxDx...`` with positive ints.
    """
    name, sep, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d < 1 for d in shape):
        raise ValueError(f"expected a shape like NAME:1x16000 (positive sizes joined by 'x'), found {text!r}")
    return name, shape


def resolve_profiles(
    inputs: Sequence[TensorSpec],
    *,
    example_shapes: Mapping[str, Sequence[int]] | None = None,
    min_shapes: Mapping[str, Sequence[int]] | None = None,
    opt_shapes: Mapping[str, Sequence[int]] | None = None,
    max_shapes: Mapping[str, Sequence[int]] | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> dict[str, dict[str, list[int]]]:
    """The optimisation profile's min/opt/max shape for each input with dynamic axes.

    Args:
        inputs: The model's inputs (dynamic axes as str, e.g. ``("batch", "samples")``).
        example_shapes: Input name → the export's example shape (``extra["onnx_export"]``).
        min_shapes, opt_shapes, max_shapes: Explicit shapes per input name; give all three for
            an input or none.
        max_batch: The largest size of axes named ``"batch"`` when shapes are not given.

    Returns:
        Input name → ``{"min": [...], "opt": [...], "max": [...]}`` (dynamic inputs only).

    Raises:
        ValueError: Naming the input: unknown names, only some of min/opt/max, wrong rank, a
            fixed axis changed, min > opt or opt > max, or a dynamic input with neither
            explicit nor example shapes.
    """
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch: expected a positive int, found {max_batch!r}")
    given = {"min": dict(min_shapes or {}), "opt": dict(opt_shapes or {}), "max": dict(max_shapes or {})}
    names = [s.name for s in inputs]
    for kind, shapes in given.items():
        for n in shapes:
            if n not in names:
                raise ValueError(f"{kind} shape given for {n!r}, which is not an input (inputs: {names})")
    profiles: dict[str, dict[str, list[int]]] = {}
    for spec in inputs:
        have = [k for k in ("min", "opt", "max") if spec.name in given[k]]
        if have and len(have) != 3:
            missing = [k for k in ("min", "opt", "max") if k not in have]
            raise ValueError(f"input {spec.name!r}: give its min, opt and max shapes together "
                             f"(missing {', '.join(missing)})")
        if have:
            shapes = {k: [int(d) for d in given[k][spec.name]] for k in ("min", "opt", "max")}
        elif not spec.is_dynamic:
            continue
        else:
            example = (example_shapes or {}).get(spec.name)
            if example is None:
                raise ValueError(
                    f"input {spec.name!r} has dynamic axes (shape {spec.shape}) and no example shape in the sidecar; "
                    f"give --min/--opt/--max {spec.name}:{'x'.join('N' if isinstance(d, str) else str(d) for d in spec.shape)}")
            example = [int(d) for d in example]
            opt = [1 if d == "batch" else e for d, e in zip(spec.shape, example)]
            shapes = {"min": list(opt), "opt": list(opt),
                      "max": [max_batch if d == "batch" else e for d, e in zip(spec.shape, example)]}
        for kind, shape in shapes.items():
            if len(shape) != len(spec.shape):
                raise ValueError(f"input {spec.name!r}: {kind} shape {tuple(shape)} has rank {len(shape)}, the input "
                                 f"has rank {len(spec.shape)} (shape {spec.shape})")
            for axis, (want, got) in enumerate(zip(spec.shape, shape)):
                if not isinstance(want, str) and want != got:
                    raise ValueError(f"input {spec.name!r}: {kind} shape {tuple(shape)} changes fixed axis {axis} "
                                     f"(must be {want})")
        for axis, (a, b, c) in enumerate(zip(shapes["min"], shapes["opt"], shapes["max"])):
            if not 1 <= a <= b <= c:
                raise ValueError(f"input {spec.name!r}, axis {axis}: expected 1 <= min <= opt <= max, found "
                                 f"min {a}, opt {b}, max {c}")
        profiles[spec.name] = shapes
    return profiles


def _refuse_float64(onnx_path: Path) -> None:
    """Raise ValueError, in one line, if the ONNX graph holds float64 tensors: TensorRT has no FP64.

    Looks at initializers, graph inputs/outputs/value_info, Cast targets and constants (and
    subgraphs). avlive writes such graphs only for a front end with ``stft_dtype="float64"``
    (models/audio/frontend.py). Runs before TensorRT is imported; a missing file is left to the
    caller's own check.
    """
    if not onnx_path.is_file():
        return
    import onnx

    double = onnx.TensorProto.DOUBLE
    found: list[str] = []

    def walk(graph: Any) -> None:
        found.extend(t.name for t in graph.initializer if t.data_type == double)
        found.extend(v.name for v in (*graph.input, *graph.output, *graph.value_info)
                     if v.type.tensor_type.elem_type == double)
        for node in graph.node:
            for a in node.attribute:
                if (node.op_type == "Cast" and a.name == "to" and a.i == double) or (
                        a.type == onnx.AttributeProto.TENSOR and a.t.data_type == double):
                    found.append(node.name or node.op_type)
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(onnx.load(os.fspath(onnx_path), load_external_data=False).graph)
    if found:
        raise ValueError(f"{onnx_path} computes in float64 ({len(found)} float64 tensors, e.g. {found[0]!r}) and "
                         "TensorRT has no FP64: export its front end with stft_dtype='float32' (the default; "
                         "stft_dtype='float64' is for ONNX Runtime and PyTorch only) to build an engine")


@contextlib.contextmanager
def _cancel_on_ctrl_c() -> Iterator[threading.Event]:
    """An event set by Ctrl-C while the block runs (the progress monitor then cancels the build)."""
    cancelled = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancelled
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if cancelled.is_set():  # a second Ctrl-C: give up at once
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        cancelled.set()
        print("\ncancelling the TensorRT build (Ctrl-C again to abort at once) ...", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield cancelled
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress_monitor(trt: Any, cancelled: threading.Event, log: Callable[[str], None]) -> Any:
    """An ``IProgressMonitor`` printing each phase's progress; returns False (cancel) after Ctrl-C."""

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._phases: dict[str, tuple[int, int, float]] = {}  # name -> (depth, steps, last print)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            depth = self._phases[parent_phase][0] + 1 if parent_phase in self._phases else 0
            self._phases[phase_name] = (depth, num_steps, 0.0)
            if depth <= 1:
                log(f"{'  ' * depth}{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            depth, steps, last = self._phases.get(phase_name, (0, 0, 0.0))
            now = time.monotonic()
            if depth <= 1 and steps and now - last > 2.0:
                self._phases[phase_name] = (depth, steps, now)
                log(f"{'  ' * depth}{phase_name}: {step + 1}/{steps}")
            return not cancelled.is_set()

        def phase_finish(self, phase_name: str) -> None:
            self._phases.pop(phase_name, None)

    return Monitor()


def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike | None = None,
    *,
    fp16: bool = False,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    min_shapes: Mapping[str, Sequence[int]] | None = None,
    opt_shapes: Mapping[str, Sequence[int]] | None = None,
    max_shapes: Mapping[str, Sequence[int]] | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    timing_cache: str | os.PathLike | None | bool = None,
    metadata: ModelMetadata | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> EngineBuild:
    """Build a TensorRT engine from an ONNX file and write it with its sidecar, atomically.

    Args:
        onnx_path: The ONNX model (exported by :func:`models.export.onnx.export_onnx`).
        engine_path: Where the engine goes (default :func:`default_engine_path`).
        fp16: Allow FP16 kernels (``BuilderFlag.FP16``); the sidecar's precision says ``"fp16"``.
        workspace_mb: The builder's workspace memory-pool limit (``MemoryPoolType.WORKSPACE``).
        min_shapes, opt_shapes, max_shapes: Optimisation-profile shapes per input (see
            :func:`resolve_profiles` for the defaults).
        max_batch: Largest ``"batch"`` size when shapes are not given.
        timing_cache: Timing-cache file to read and update (default ``<engine>.timing-cache``);
            False for none.
        metadata: The ONNX model's metadata (default: its sidecar, which must exist).
        progress: Print build progress through an ``IProgressMonitor`` where TensorRT has one.
        log: Where progress and notes go.

    Returns:
        An :class:`EngineBuild`.

    Raises:
        RuntimeError: ``TensorRT is not installed: ...``, every ONNX parser error, or a failed
            build.
        DeviceUnavailableError: Without a CUDA device.
        FileNotFoundError: If the ONNX file or its sidecar is missing.
        ValueError: For profile shapes that do not fit the inputs, or a graph that computes in
            float64 (a front end with ``stft_dtype="float64"``; checked before TensorRT is
            imported).
        KeyboardInterrupt: If cancelled with Ctrl-C (nothing is written).
    """
    _refuse_float64(Path(onnx_path))  # TensorRT has no FP64
    trt = require_tensorrt()
    import torch

    from engines.torch_runner import require_torch_cuda

    require_torch_cuda("building a TensorRT engine")
    started = time.perf_counter()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model {onnx_path} does not exist")
    if metadata is None:
        side = sidecar_path(onnx_path)
        if not side.is_file():
            raise FileNotFoundError(f"{onnx_path} has no sidecar (expected {side}); export with "
                                    "models.export.onnx.export_onnx, which writes one")
        metadata = ModelMetadata.load(side)
    engine_path = Path(engine_path) if engine_path is not None else default_engine_path(onnx_path, fp16)
    if isinstance(workspace_mb, bool) or not isinstance(workspace_mb, int) or workspace_mb < 1:
        raise ValueError(f"workspace_mb: expected a positive int, found {workspace_mb!r}")
    example_shapes = metadata.extra.get("onnx_export", {}).get("example_shapes")
    profiles = resolve_profiles(metadata.inputs, example_shapes=example_shapes, min_shapes=min_shapes,
                                opt_shapes=opt_shapes, max_shapes=max_shapes, max_batch=max_batch)
    onnx_sha256 = sha256_file(onnx_path)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for e in errors:
            log(f"ONNX parser error: {e}")
        raise RuntimeError(f"TensorRT's ONNX parser rejected {onnx_path} with {len(errors)} error(s):\n  "
                           + "\n  ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if profiles:
        profile = builder.create_optimization_profile()
        for name, p in profiles.items():
            profile.set_shape(name, p["min"], p["opt"], p["max"])
        config.add_optimization_profile(profile)
    cache_path = None if timing_cache is False else (
        Path(f"{engine_path}.timing-cache") if timing_cache in (None, True) else Path(timing_cache))
    if cache_path is not None:
        try:
            cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        except Exception as exc:  # a damaged or foreign file: TensorRT may refuse to read it at all
            log(f"timing cache {cache_path} is unreadable ({exc}); starting a fresh one")
            cache = config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            log(f"timing cache {cache_path} does not fit this GPU/TensorRT; starting a fresh one")
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    precision = "fp16" if fp16 else "fp32"
    gpu_name = torch.cuda.get_device_name(torch.cuda.current_device())
    log(f"building a TensorRT {trt.__version__} {precision} engine for {onnx_path.name} on {gpu_name} "
        f"(the first build of a model takes minutes; Ctrl-C cancels)")
    with _cancel_on_ctrl_c() as cancelled:
        if progress and hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor"):
            config.progress_monitor = _progress_monitor(trt, cancelled, log)
        serialized = builder.build_serialized_network(network, config)
    if cancelled.is_set():
        raise KeyboardInterrupt(f"TensorRT build of {onnx_path} cancelled; nothing written")
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see TensorRT's log above)")
    data = memoryview(serialized)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(engine_path, data)
    if cache_path is not None:
        atomic_write_bytes(cache_path, memoryview(config.get_timing_cache().serialize()))
    info = EngineInfo(onnx_sha256=onnx_sha256, tensorrt_version=trt.__version__, gpu_name=gpu_name,
                      precision=precision, engine_sha256=hashlib.sha256(data).hexdigest(), profiles=profiles,
                      workspace_mb=workspace_mb)
    side = sidecar_path(engine_path)
    engine_metadata(metadata, info).save(side)
    seconds = time.perf_counter() - started
    log(f"wrote {engine_path} ({len(data) / 2**20:.1f} MiB) and {side.name} in {seconds:.1f} s")
    return EngineBuild(engine_path=engine_path, sidecar=side, info=info, seconds=seconds)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m engines.build_engine`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m engines.build_engine",
        description="Build a TensorRT engine (+ JSON sidecar) from an ONNX model exported by avlive.")
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX model (its sidecar MODEL.onnx.json must exist)")
    parser.add_argument("--fp16", action="store_true", help="allow FP16 kernels")
    parser.add_argument("--out", metavar="ENGINE", help="engine path (default: MODEL.fp16.engine / MODEL.fp32.engine)")
    parser.add_argument("--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB,
                        help=f"workspace memory-pool limit in MiB (default {DEFAULT_WORKSPACE_MB})")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                        help=f"largest batch when --min/--opt/--max are not given (default {DEFAULT_MAX_BATCH})")
    for kind in ("min", "opt", "max"):
        parser.add_argument(f"--{kind}", action="append", default=[], metavar="NAME:DxD",
                            help=f"{kind} shape of an input's optimisation profile, e.g. audio:1x16000 (repeatable)")
    parser.add_argument("--timing-cache", metavar="PATH", help="timing-cache file (default: ENGINE.timing-cache)")
    parser.add_argument("--no-timing-cache", action="store_true", help="do not read or write a timing cache")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    try:
        shapes = {kind: dict(parse_shape_arg(t) for t in getattr(args, kind)) for kind in ("min", "opt", "max")}
    except ValueError as exc:
        parser.error(str(exc))
    timing_cache: Any = False if args.no_timing_cache else args.timing_cache
    try:
        build_engine(args.model, args.out, fp16=args.fp16, workspace_mb=args.workspace_mb,
                     min_shapes=shapes["min"], opt_shapes=shapes["opt"], max_shapes=shapes["max"],
                     max_batch=args.max_batch, timing_cache=timing_cache, progress=not args.quiet,
                     log=(lambda _m: None) if args.quiet else print)
    except KeyboardInterrupt as exc:
        print(f"cancelled: {exc}" if str(exc) else "cancelled", file=sys.stderr)
        return 130
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
