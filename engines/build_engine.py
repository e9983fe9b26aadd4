"""Build a TensorRT engine from an exported ONNX model: ``python -m engines.build_engine MODEL.onnx``.

Follows TensorRT 10's documented Python API: ``Builder`` → network from ``OnnxParser``
(every parser error printed on failure) → ``BuilderConfig`` with a workspace memory-pool limit
(``set_memory_pool_limit``), the FP16 flag if asked, the INT8 flag with an entropy calibrator
and its calibration profile (``--int8``, engines/calibration.py: the CPU INT8 export's
calibration inputs), DLA as the default device with GPU fallback (``--dla N``, Jetson), one
optimisation profile for the dynamic inputs, a timing cache reused across builds, and an
``IProgressMonitor`` printing progress (Ctrl-C cancels the build cleanly) →
``build_serialized_network``. The engine and its sidecar (see :mod:`engines.tensorrt_runner`:
ONNX SHA-256, TensorRT version, GPU name and compute capability, precision, DLA core,
calibration, profiles, the build command, I/O tensors, labels, sample rate) are written
atomically. The first build of a model takes minutes; later builds reuse the timing cache.

**Never run against TensorRT here** (no GPU on the machines this was written on): the calls
follow NVIDIA's TensorRT 10 Python API reference; tests/test_engines.py builds a real engine
where TensorRT and a GPU exist and skips with the reason elsewhere.

Profiles: an input's min/opt/max shapes are taken from ``min_shapes``/``opt_shapes``/
``max_shapes`` (CLI ``--min/--opt/--max NAME:1x16000``) when given; otherwise from the example
shape the exporter recorded in the ONNX sidecar, with every axis named ``"batch"`` spanning
1 (min, opt) to ``max_batch`` and every other dynamic axis fixed at its example size
(:func:`resolve_profiles`, pure and tested without TensorRT).

Example::

    python -m engines.build_engine runs/x/model.onnx --fp16           # -> runs/x/model.fp16.engine (+ .json)
    python -m engines.build_engine runs/x/model.onnx --int8 --calib 256   # -> runs/x/model.int8.engine
    python -m engines.build_engine runs/x/model.onnx --fp16 --dla 0   # Jetson Orin -> model.fp16.dla0.engine
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

from engines.calibration import (
    DEFAULT_CALIB_BATCH,
    CalibrationRequest,
    cached_calibration,
    calibration_batches,
    calibration_cache_path,
    make_entropy_calibrator,
)
from engines.tensorrt_runner import EngineInfo, compute_capability, engine_metadata, require_tensorrt
from models.core.atomic import atomic_write_bytes, sha256_file
from models.core.metadata import ModelMetadata, TensorSpec, sidecar_path

__all__ = ["EngineBuild", "build_engine", "default_engine_path", "resolve_profiles", "parse_shape_arg", "check_dla",
           "build_command", "main"]

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


def precision_of(fp16: bool = False, int8: bool = False) -> str:
    """The sidecar's precision for the builder flags: ``int8`` > ``fp16`` > ``fp32``."""
    return "int8" if int8 else "fp16" if fp16 else "fp32"


def default_engine_path(onnx_path: str | os.PathLike, fp16: bool = False, *, int8: bool = False,
                        dla: int | None = None) -> Path:
    """``runs/x/model.onnx`` → ``runs/x/model.fp16.engine`` (``.fp32``, ``.int8``; ``.fp16.dla0`` on DLA core 0)."""
    p = Path(onnx_path)
    where = f".dla{dla}" if dla is not None else ""
    return p.with_name(f"{p.stem}.{precision_of(fp16, int8)}{where}.engine")


def check_dla(dla: int | None, *, fp16: bool, int8: bool, num_dla_cores: int | None = None) -> None:
    """Refuse a ``--dla`` request that cannot build, in one line.

    Args:
        dla: The DLA core asked for, or None (no DLA: nothing to check).
        fp16, int8: The precision flags (DLA runs FP16 and INT8 layers only).
        num_dla_cores: The device's DLA cores (``builder.num_DLA_cores``), or None before it is known.

    Raises:
        ValueError: a core index that is not an int >= 0, neither --fp16 nor --int8, or a core
            the device does not have (names how many it has).
    """
    if dla is None:
        return
    if isinstance(dla, bool) or not isinstance(dla, int) or dla < 0:
        raise ValueError(f"--dla: expected a DLA core index >= 0, found {dla!r}")
    if not (fp16 or int8):
        raise ValueError(f"--dla {dla}: DLA runs FP16 and INT8 layers only; add --fp16 (or --int8)")
    if num_dla_cores is not None and dla >= num_dla_cores:
        have = (f"has {num_dla_cores} DLA core{'s' if num_dla_cores != 1 else ''} (expected --dla 0"
                f"{f' to {num_dla_cores - 1}' if num_dla_cores > 1 else ''})" if num_dla_cores else
                "has no DLA cores (Jetson AGX Orin and Orin NX have them; desktop GPUs do not): leave --dla out")
        raise ValueError(f"--dla {dla}: this device {have}")


def build_command(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    *,
    fp16: bool,
    int8: bool,
    dla: int | None,
    workspace_mb: int,
    profiles: Mapping[str, Mapping[str, Sequence[int]]],
    calib: int | None = None,
    calib_data: str | os.PathLike | None = None,
    calib_batch: int | None = None,
) -> str:
    """The ``python -m engines.build_engine ...`` command that builds this engine again (recorded in
    the sidecar; a mismatch error repeats it). Profiles are spelled out as ``--min/--opt/--max``."""
    import shlex

    parts = ["python", "-m", "engines.build_engine", os.fspath(onnx_path), "--out", os.fspath(engine_path)]
    if int8:
        parts.append("--int8")
        if calib_data is not None:
            parts += ["--calib-data", os.fspath(calib_data)]
        if calib is not None:
            parts += ["--calib", str(calib)]
        if calib_batch is not None and calib_batch != DEFAULT_CALIB_BATCH:
            parts += ["--calib-batch", str(calib_batch)]
    if fp16 and not int8:
        parts.append("--fp16")
    if dla is not None:
        parts += ["--dla", str(dla)]
    if workspace_mb != DEFAULT_WORKSPACE_MB:
        parts += ["--workspace-mb", str(workspace_mb)]
    for name, p in profiles.items():
        for kind in ("min", "opt", "max"):
            parts += [f"--{kind}", f"{name}:{'x'.join(str(int(d)) for d in p[kind])}"]
    return " ".join(shlex.quote(x) for x in parts)


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


def _graphs(graph: Any) -> Iterator[Any]:
    """An ONNX graph and every subgraph inside it (If/Loop/Scan bodies), depth first."""
    import onnx

    yield graph
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(a.g)
            for g in a.graphs:
                yield from _graphs(g)


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
    for graph in _graphs(onnx.load(os.fspath(onnx_path), load_external_data=False).graph):
        found.extend(t.name for t in graph.initializer if t.data_type == double)
        found.extend(v.name for v in (*graph.input, *graph.output, *graph.value_info)
                     if v.type.tensor_type.elem_type == double)
        for node in graph.node:
            for a in node.attribute:
                if (node.op_type == "Cast" and a.name == "to" and a.i == double) or (
                        a.type == onnx.AttributeProto.TENSOR and a.t.data_type == double):
                    found.append(node.name or node.op_type)
    if found:
        raise ValueError(f"{onnx_path} computes in float64 ({len(found)} float64 tensors, e.g. {found[0]!r}) and "
                         "TensorRT has no FP64: export its front end with stft_dtype='float32' (the default; "
                         "stft_dtype='float64' is for ONNX Runtime and PyTorch only) to build an engine")


#: ONNX ops TensorRT's ONNX parser does not have (onnx-tensorrt's operator matrix: unsupported).
UNBUILDABLE_OPS = ("STFT", "DFT")


def _refuse_stft(onnx_path: Path) -> None:
    """Raise ValueError, in one line, if the graph computes an STFT or DFT with ONNX's own ops,
    which TensorRT's ONNX parser lacks: export it with ``--frontend conv`` (the STFT as a strided
    convolution, models/audio/frontend.py). Runs before TensorRT is imported, so the answer comes
    in a second, not after a failed build; ``allow_stft=True`` skips it for a TensorRT that has them.
    """
    if not onnx_path.is_file():
        return
    import onnx

    found = [node.op_type for graph in _graphs(onnx.load(os.fspath(onnx_path), load_external_data=False).graph)
             for node in graph.node if node.op_type in UNBUILDABLE_OPS]
    if found:
        raise ValueError(f"{onnx_path} computes its front end with ONNX's {found[0]} op, which TensorRT's ONNX parser "
                         f"does not have: export it again with the STFT as a convolution (python -m models.export RUN "
                         f"--frontend conv), or pass --allow-stft for a TensorRT that has it")


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
    int8: bool = False,
    calib: int | None = None,
    calib_data: str | os.PathLike | None = None,
    calib_batch: int = DEFAULT_CALIB_BATCH,
    calib_cache: str | os.PathLike | None = None,
    dla: int | None = None,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    min_shapes: Mapping[str, Sequence[int]] | None = None,
    opt_shapes: Mapping[str, Sequence[int]] | None = None,
    max_shapes: Mapping[str, Sequence[int]] | None = None,
    max_batch: int | None = None,
    timing_cache: str | os.PathLike | None | bool = None,
    metadata: ModelMetadata | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    allow_stft: bool = False,
) -> EngineBuild:
    """Build a TensorRT engine from an ONNX file and write it with its sidecar, atomically.

    Args:
        onnx_path: The ONNX model (exported by :func:`models.export.onnx.export_onnx`).
        engine_path: Where the engine goes (default :func:`default_engine_path`).
        fp16: Allow FP16 kernels (``BuilderFlag.FP16``); the sidecar's precision says ``"fp16"``.
        int8: Allow INT8 kernels too (``BuilderFlag.INT8`` with FP16), scales from an entropy
            calibrator (engines/calibration.py); the sidecar's precision says ``"int8"``.
        calib: Calibration inputs for ``int8`` (default ``models.export.quantize.DEFAULT_CALIB``):
            world validation windows, or training clips of ``calib_data``, the same readers the
            CPU INT8 export calibrates with.
        calib_data: A dataset folder to calibrate on instead of world windows (audio-only labelers).
        calib_batch: Rows per calibration batch (the calibration profile's batch size).
        calib_cache: The calibration cache (default ``<engine>.calibration-cache``); reused when
            its record says it was made for this ONNX file and calibration request.
        dla: Run on this DLA core (Jetson), layers DLA cannot run falling back to the GPU
            (``BuilderFlag.GPU_FALLBACK``); needs ``fp16`` or ``int8``. Without explicit shapes
            and ``max_batch``, the profile is then fixed at batch 1.
        workspace_mb: The builder's workspace memory-pool limit (``MemoryPoolType.WORKSPACE``).
        min_shapes, opt_shapes, max_shapes: Optimisation-profile shapes per input (see
            :func:`resolve_profiles` for the defaults).
        max_batch: Largest ``"batch"`` size when shapes are not given (default
            :data:`DEFAULT_MAX_BATCH`; 1 with ``dla``).
        timing_cache: Timing-cache file to read and update (default ``<engine>.timing-cache``);
            False for none.
        metadata: The ONNX model's metadata (default: its sidecar, which must exist).
        progress: Print build progress through an ``IProgressMonitor`` where TensorRT has one.
        log: Where progress and notes go.
        allow_stft: Try graphs with ONNX ``STFT``/``DFT`` ops anyway (by default they are refused
            before TensorRT is imported: its ONNX parser has neither; export with ``--frontend conv``).

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
    check_dla(dla, fp16=fp16, int8=int8)  # before anything is imported or read
    if calib is not None and not int8 or calib_data is not None and not int8:
        raise ValueError("--calib and --calib-data choose the calibration of --int8; add --int8")
    _refuse_float64(Path(onnx_path))  # TensorRT has no FP64
    if not allow_stft:
        _refuse_stft(Path(onnx_path))  # nor an STFT op
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
    engine_path = Path(engine_path) if engine_path is not None else default_engine_path(onnx_path, fp16, int8=int8,
                                                                                          dla=dla)
    if isinstance(workspace_mb, bool) or not isinstance(workspace_mb, int) or workspace_mb < 1:
        raise ValueError(f"workspace_mb: expected a positive int, found {workspace_mb!r}")
    if max_batch is None:
        max_batch = 1 if dla is not None else DEFAULT_MAX_BATCH
    example_shapes = metadata.extra.get("onnx_export", {}).get("example_shapes")
    profiles = resolve_profiles(metadata.inputs, example_shapes=example_shapes, min_shapes=min_shapes,
                                opt_shapes=opt_shapes, max_shapes=max_shapes, max_batch=max_batch)
    onnx_sha256 = sha256_file(onnx_path)
    if int8:
        from models.export.quantize import DEFAULT_CALIB

        calib = DEFAULT_CALIB if calib is None else calib
        request = CalibrationRequest(onnx_sha256, calib, os.fspath(calib_data) if calib_data is not None else None,
                                     calib_batch)
        cache_file = Path(calib_cache) if calib_cache is not None else calibration_cache_path(engine_path)

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
    if fp16 or int8:
        config.set_flag(trt.BuilderFlag.FP16)
    if dla is not None:
        check_dla(dla, fp16=fp16, int8=int8, num_dla_cores=int(builder.num_DLA_cores))
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU
    if profiles:
        profile = builder.create_optimization_profile()
        for name, p in profiles.items():
            profile.set_shape(name, p["min"], p["opt"], p["max"])
        config.add_optimization_profile(profile)
    calibration = None
    if int8:
        calibration = _calibrate(trt, builder, config, metadata, request, cache_file, calib_data, log)
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

    precision = precision_of(fp16, int8)
    device_index = torch.cuda.current_device()
    gpu_name = torch.cuda.get_device_name(device_index)
    capability = compute_capability(torch, device_index)
    where = f"DLA core {dla} of {gpu_name} (GPU fallback)" if dla is not None else gpu_name
    log(f"building a TensorRT {trt.__version__} {precision} engine for {onnx_path.name} on {where}, compute "
        f"capability {capability} (the first build of a model takes minutes; Ctrl-C cancels)")
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
    command = build_command(onnx_path, engine_path, fp16=fp16, int8=int8, dla=dla, workspace_mb=workspace_mb,
                            profiles=profiles, calib=calib if int8 else None, calib_data=calib_data,
                            calib_batch=calib_batch)
    info = EngineInfo(onnx_sha256=onnx_sha256, tensorrt_version=trt.__version__, gpu_name=gpu_name,
                      precision=precision, engine_sha256=hashlib.sha256(data).hexdigest(), profiles=profiles,
                      workspace_mb=workspace_mb, compute_capability=capability, dla_core=dla,
                      calibration=calibration, build_command=command)
    side = sidecar_path(engine_path)
    engine_metadata(metadata, info).save(side)
    seconds = time.perf_counter() - started
    log(f"wrote {engine_path} ({len(data) / 2**20:.1f} MiB) and {side.name} in {seconds:.1f} s")
    return EngineBuild(engine_path=engine_path, sidecar=side, info=info, seconds=seconds)


def _calibrate(trt: Any, builder: Any, config: Any, metadata: ModelMetadata, request: CalibrationRequest,
               cache_file: Path, calib_data: str | os.PathLike | None, log: Callable[[str], None]) -> dict[str, Any]:
    """Set ``BuilderFlag.INT8``, the entropy calibrator and its calibration profile; return the
    sidecar's ``calibration`` record. The calibration inputs are read (world windows rendered)
    only when no cache made for this request exists."""
    record = cached_calibration(cache_file, request)
    if record is not None:
        batches: list = []
        shapes = {k: [int(d) for d in v] for k, v in record["shapes"].items()}
        described, count = record["set"], int(record["count"])
        log(f"INT8: the calibration cache {cache_file.name} fits this model and request; not recalibrating")
    else:
        from models.export.quantize import calibration_inputs

        feeds, described = calibration_inputs(metadata, request.calib, calib_data)
        batches, dropped = calibration_batches(feeds, request.batch)
        shapes = {name: list(value.shape) for name, value in batches[0].items()}
        count = len(batches) * request.batch
        log(f"INT8: calibrating on {count} {described} in {len(batches)} batches of {request.batch}"
            + (f" ({dropped} left over, not used)" if dropped else ""))
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = make_entropy_calibrator(trt, batches, cache_path=cache_file, request=request,
                                                     shapes=shapes, described=described, log=log)
    dynamic = [spec.name for spec in metadata.inputs if spec.is_dynamic]
    if dynamic:  # explicit-batch networks calibrate at one shape: the calibration profile's
        profile = builder.create_optimization_profile()
        for name in dynamic:
            profile.set_shape(name, shapes[name], shapes[name], shapes[name])
        config.set_calibration_profile(profile)
    return {"set": described, "count": count, "batch": request.batch, "cache": cache_file.name,
            "calibrator": "IInt8EntropyCalibrator2"}


def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m engines.build_engine`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m engines.build_engine",
        description="Build a TensorRT engine (+ JSON sidecar) from an ONNX model exported by avlive.")
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX model (its sidecar MODEL.onnx.json must exist)")
    parser.add_argument("--fp16", action="store_true", help="allow FP16 kernels")
    parser.add_argument("--int8", action="store_true",
                        help="allow INT8 (and FP16) kernels, scales from an entropy calibrator fed by the CPU INT8 "
                             "export's calibration inputs")
    parser.add_argument("--calib", type=int, default=None, metavar="N",
                        help="--int8: calibration inputs (default 64 world validation windows)")
    parser.add_argument("--calib-data", metavar="DIR", default=None,
                        help="--int8: calibrate on this dataset folder's training clips (audio-only labelers)")
    parser.add_argument("--calib-batch", type=int, default=DEFAULT_CALIB_BATCH, metavar="B",
                        help=f"--int8: rows per calibration batch (default {DEFAULT_CALIB_BATCH})")
    parser.add_argument("--calib-cache", metavar="FILE", default=None,
                        help="--int8: calibration cache (default ENGINE.calibration-cache; reused when made for this "
                             "model and request)")
    parser.add_argument("--dla", type=int, default=None, metavar="N",
                        help="run on DLA core N (Jetson Orin), with GPU fallback; needs --fp16 or --int8")
    parser.add_argument("--out", metavar="ENGINE",
                        help="engine path (default: MODEL.fp16.engine / .fp32 / .int8, .fp16.dla0 with --dla 0)")
    parser.add_argument("--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB,
                        help=f"workspace memory-pool limit in MiB (default {DEFAULT_WORKSPACE_MB})")
    parser.add_argument("--max-batch", type=int, default=None,
                        help=f"largest batch when --min/--opt/--max are not given (default {DEFAULT_MAX_BATCH}; "
                             "1 with --dla)")
    for kind in ("min", "opt", "max"):
        parser.add_argument(f"--{kind}", action="append", default=[], metavar="NAME:DxD",
                            help=f"{kind} shape of an input's optimisation profile, e.g. audio:1x16000 (repeatable)")
    parser.add_argument("--timing-cache", metavar="PATH", help="timing-cache file (default: ENGINE.timing-cache)")
    parser.add_argument("--no-timing-cache", action="store_true", help="do not read or write a timing cache")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--allow-stft", action="store_true",
                        help="try a graph with ONNX STFT/DFT ops anyway (refused by default: TensorRT's ONNX parser has "
                             "neither; export with python -m models.export RUN --frontend conv)")
    args = parser.parse_args(argv)
    try:
        shapes = {kind: dict(parse_shape_arg(t) for t in getattr(args, kind)) for kind in ("min", "opt", "max")}
        check_dla(args.dla, fp16=args.fp16, int8=args.int8)
    except ValueError as exc:
        parser.error(str(exc))
    if (args.calib is not None or args.calib_data is not None or args.calib_cache is not None) and not args.int8:
        parser.error("--calib, --calib-data and --calib-cache choose the calibration of --int8; add --int8")
    max_batch = args.max_batch if args.max_batch is not None else 1 if args.dla is not None else DEFAULT_MAX_BATCH
    timing_cache: Any = False if args.no_timing_cache else args.timing_cache
    try:
        build_engine(args.model, args.out, fp16=args.fp16, int8=args.int8, calib=args.calib,
                     calib_data=args.calib_data, calib_batch=args.calib_batch, calib_cache=args.calib_cache,
                     dla=args.dla, workspace_mb=args.workspace_mb,
                     min_shapes=shapes["min"], opt_shapes=shapes["opt"], max_shapes=shapes["max"],
                     max_batch=max_batch, timing_cache=timing_cache, progress=not args.quiet, allow_stft=args.allow_stft,
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
