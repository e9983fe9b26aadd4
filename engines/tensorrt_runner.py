"""TensorRT backend: a serialized engine plus its JSON sidecar, run on a CUDA device.

An engine is only valid for the TensorRT version and GPU it was built with, and for the ONNX
file it was built from. :func:`engines.build_engine.build_engine` therefore writes, beside
``model.fp16.engine``, a sidecar ``model.fp16.engine.json``: the ONNX file's
:class:`~models.core.metadata.ModelMetadata` (labels, sample rate, I/O tensors ...) with
``extra["tensorrt"]`` holding an :class:`EngineInfo` (ONNX SHA-256, engine SHA-256, TensorRT
version, GPU name, compute capability, precision, DLA core, INT8 calibration, optimisation
profiles, the build command). :class:`TensorRTRunner` checks all of it before deserializing
(:func:`check_engine_sidecar`, a pure function) and refuses a mismatch with an
:class:`EngineMismatchError` naming the field, the expected and the found value, and the exact
command that rebuilds the engine on this machine.

**None of the TensorRT code has run yet**: it follows NVIDIA's documented TensorRT 10 Python
API, and its tests skip where TensorRT or a GPU is missing (tests/test_engines.py).

The runner follows TensorRT 10's named-tensor API: ``engine.num_io_tensors`` /
``get_tensor_name`` / ``get_tensor_mode`` / ``get_tensor_shape``,
``context.set_input_shape``, ``context.set_tensor_address`` and
``context.execute_async_v3(stream)``. Device buffers are torch CUDA tensors (no pycuda),
allocated once at the largest profile shape, with pinned host staging buffers; a call does
async host→device copies, one ``execute_async_v3``, async device→host copies and a single
stream synchronisation. **Outputs are views of the pinned host buffers and are overwritten by
the next call** (copy them to keep them).

``tensorrt`` is imported only inside functions; where it is missing, :func:`require_tensorrt`
raises ``RuntimeError("TensorRT is not installed: pip install -e '.[tensorrt]'
--extra-index-url https://pypi.nvidia.com")``.

Example (on a machine with TensorRT and an NVIDIA GPU)::

    build_engine("runs/x/model.onnx", fp16=True)                       # engines/build_engine.py
    with TensorRTRunner("runs/x/model.fp16.engine", onnx_path="runs/x/model.onnx") as runner:
        out = runner.infer({"audio": wave})
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.base import BaseRunner, RunnerInputError, check_io_against_metadata, format_spec
from models.core.atomic import sha256_file
from models.core.metadata import MetadataMismatch, ModelMetadata, TensorSpec, sidecar_path

__all__ = [
    "TENSORRT_MISSING",
    "PRECISIONS",
    "ENGINE_EXTRA_KEY",
    "EngineInfo",
    "EngineMismatchError",
    "TensorRTRunner",
    "require_tensorrt",
    "engine_metadata",
    "check_engine_sidecar",
    "engine_tensor_spec",
    "rebuild_command",
    "compute_capability",
]

#: The message (and RuntimeError) when ``import tensorrt`` fails.
TENSORRT_MISSING = "TensorRT is not installed: pip install -e '.[tensorrt]' --extra-index-url https://pypi.nvidia.com"

#: Engine precisions avlive builds (``int8``: FP16 and INT8 kernels, entropy-calibrated).
PRECISIONS = ("fp32", "fp16", "int8")

_CAPABILITY_RE = re.compile(r"^[0-9]+\.[0-9]+$")

#: The key of :class:`EngineInfo` in an engine sidecar's ``ModelMetadata.extra``.
ENGINE_EXTRA_KEY = "tensorrt"

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def require_tensorrt() -> Any:
    """Import and return the ``tensorrt`` module.

    Raises:
        RuntimeError: :data:`TENSORRT_MISSING`, when it cannot be imported (the import error
            is chained as the cause).
    """
    try:
        import tensorrt
    except (ImportError, OSError) as exc:
        raise RuntimeError(TENSORRT_MISSING) from exc
    return tensorrt


def compute_capability(torch: Any, device_index: int) -> str:
    """``"8.7"``: the CUDA compute capability of a device, as engine sidecars record it."""
    major, minor = torch.cuda.get_device_capability(device_index)
    return f"{int(major)}.{int(minor)}"


class EngineMismatchError(MetadataMismatch):
    """An engine's sidecar does not match this machine, the engine file, the ONNX file or the caller.

    ``field`` names what differs (``"tensorrt_version"``, ``"gpu_name"``, ``"compute_capability"``, ``"onnx_sha256"``,
    ``"engine_sha256"``, ``"precision"``, ``"sample_rate"``, ``"labels"``,
    ``"inputs[0].shape"`` ...), ``expected`` is the current value and ``found`` the recorded one.
    """


@dataclass(frozen=True)
class EngineInfo:
    """What an engine was built from and for (``extra["tensorrt"]`` of its sidecar).

    Attributes:
        onnx_sha256: SHA-256 of the ONNX file it was built from.
        tensorrt_version: ``tensorrt.__version__`` at build time (engines do not move across versions).
        gpu_name: The CUDA device's name at build time (engines do not move across GPUs).
        precision: ``"fp32"``, ``"fp16"`` (FP16 kernels allowed) or ``"int8"`` (INT8 and FP16
            kernels, entropy-calibrated).
        engine_sha256: SHA-256 of the serialized engine, or None (then not checked).
        profiles: Input name → ``{"min": [...], "opt": [...], "max": [...]}`` of the
            optimisation profile (inputs with dynamic axes only).
        workspace_mb: The builder's workspace memory-pool limit in MiB, or None.
        compute_capability: The GPU's CUDA compute capability at build time, ``"8.7"`` (engines
            do not move across architectures); None in sidecars written before it was recorded.
        dla_core: The DLA core the engine runs on (Jetson; layers DLA cannot run fall back to
            the GPU), or None for the GPU alone.
        calibration: For ``int8``: ``{"set": ..., "count": N, "batch": B, "cache": file name}``
            (what the entropy calibrator saw); else None.
        build_command: The command that built it (``python -m engines.build_engine ...``), which
            a mismatch error repeats as the way to rebuild; None in older sidecars.
    """

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    precision: str
    engine_sha256: str | None = None
    profiles: dict[str, dict[str, list[int]]] = field(default_factory=dict, hash=False)
    workspace_mb: int | None = None
    compute_capability: str | None = None
    dla_core: int | None = None
    calibration: dict[str, Any] | None = field(default=None, hash=False)
    build_command: str | None = None

    def __post_init__(self) -> None:
        for name in ("onnx_sha256",) + (("engine_sha256",) if self.engine_sha256 is not None else ()):
            value = getattr(self, name)
            if not isinstance(value, str) or not _SHA256_RE.match(value):
                raise ValueError(f"invalid engine sidecar field {name}: expected 64 lowercase hex digits, found {value!r}")
        for name in ("tensorrt_version", "gpu_name"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"invalid engine sidecar field {name}: expected a non-empty str, "
                                 f"found {getattr(self, name)!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"invalid engine sidecar field precision: expected one of {', '.join(PRECISIONS)}, "
                             f"found {self.precision!r}")
        if self.workspace_mb is not None and (isinstance(self.workspace_mb, bool) or not isinstance(self.workspace_mb, int)
                                              or self.workspace_mb < 1):
            raise ValueError(f"invalid engine sidecar field workspace_mb: expected a positive int or None, "
                             f"found {self.workspace_mb!r}")
        if self.compute_capability is not None and (not isinstance(self.compute_capability, str)
                                                    or not _CAPABILITY_RE.match(self.compute_capability)):
            raise ValueError(f"invalid engine sidecar field compute_capability: expected 'MAJOR.MINOR' such as '8.7' "
                             f"or None, found {self.compute_capability!r}")
        if self.dla_core is not None and (isinstance(self.dla_core, bool) or not isinstance(self.dla_core, int)
                                          or self.dla_core < 0):
            raise ValueError(f"invalid engine sidecar field dla_core: expected a DLA core index >= 0 or None, "
                             f"found {self.dla_core!r}")
        if self.calibration is not None and not isinstance(self.calibration, Mapping):
            raise ValueError(f"invalid engine sidecar field calibration: expected an object or None, "
                             f"found {self.calibration!r}")
        if (self.precision == "int8") != (self.calibration is not None):
            raise ValueError(f"invalid engine sidecar field calibration: expected one for precision int8 and none "
                             f"otherwise, found {self.calibration!r} with precision {self.precision}")
        if self.build_command is not None and (not isinstance(self.build_command, str) or not self.build_command):
            raise ValueError(f"invalid engine sidecar field build_command: expected a non-empty str or None, "
                             f"found {self.build_command!r}")
        if self.calibration is not None:
            object.__setattr__(self, "calibration", dict(self.calibration))
        profiles: dict[str, dict[str, list[int]]] = {}
        if not isinstance(self.profiles, Mapping):
            raise ValueError(f"invalid engine sidecar field profiles: expected a dict, found {self.profiles!r}")
        for name, p in self.profiles.items():
            if not isinstance(p, Mapping) or set(p) != {"min", "opt", "max"}:
                raise ValueError(f"invalid engine sidecar field profiles[{name!r}]: expected min, opt and max, found {p!r}")
            shapes = {k: [int(d) for d in p[k]] for k in ("min", "opt", "max")}
            if not (len(shapes["min"]) == len(shapes["opt"]) == len(shapes["max"])) or not all(
                    1 <= a <= b <= c for a, b, c in zip(shapes["min"], shapes["opt"], shapes["max"])):
                raise ValueError(f"invalid engine sidecar field profiles[{name!r}]: expected 1 <= min <= opt <= max "
                                 f"per axis, found {shapes}")
            profiles[str(name)] = shapes
        object.__setattr__(self, "profiles", profiles)

    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EngineInfo":
        """Build from :meth:`to_dict`'s output.

        Raises:
            ValueError: On missing or unknown keys or invalid values.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"invalid engine sidecar field {ENGINE_EXTRA_KEY}: expected an object, found {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown engine sidecar field {unknown[0]}: expected only {', '.join(sorted(known))}")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in data]
        if missing:
            raise ValueError(f"engine sidecar lacks field {missing[0]} (missing: {', '.join(missing)})")
        return cls(**data)

    @classmethod
    def from_metadata(cls, metadata: ModelMetadata, where: str = "the sidecar") -> "EngineInfo":
        """The :class:`EngineInfo` in ``metadata.extra["tensorrt"]``.

        Raises:
            ValueError: If there is none (an ONNX sidecar, not an engine's) or it is invalid.
        """
        if ENGINE_EXTRA_KEY not in metadata.extra:
            raise ValueError(f"{where} has no extra[{ENGINE_EXTRA_KEY!r}] section: it is not a TensorRT engine "
                             "sidecar (build the engine with python -m engines.build_engine MODEL.onnx)")
        return cls.from_dict(metadata.extra[ENGINE_EXTRA_KEY])


def engine_metadata(onnx_metadata: ModelMetadata, info: EngineInfo) -> ModelMetadata:
    """The engine's sidecar: the ONNX model's metadata plus ``extra["tensorrt"] = info``."""
    return onnx_metadata.replace(extra={**onnx_metadata.extra, ENGINE_EXTRA_KEY: info.to_dict()})


def engine_tensor_spec(name: str, shape: Sequence[int], dtype: str) -> TensorSpec:
    """A :class:`TensorSpec` for an engine tensor: TensorRT's ``-1`` axes become ``"dynamic"``."""
    return TensorSpec(name, tuple("dynamic" if int(d) < 0 else int(d) for d in shape), dtype)


def _in_recorded_order(found: Sequence[TensorSpec], recorded: Sequence[TensorSpec]) -> list[TensorSpec]:
    by_name = {t.name: t for t in found}
    if set(by_name) == {t.name for t in recorded}:
        return [by_name[t.name] for t in recorded]
    return list(found)


def rebuild_command(info: EngineInfo) -> str:
    """The command that rebuilds an engine: the one its sidecar recorded, else a generic one
    (sidecars written before ``build_command`` was recorded)."""
    if info.build_command:
        return info.build_command
    flags = {"fp32": "", "fp16": " --fp16", "int8": " --int8"}[info.precision]
    dla = f" --dla {info.dla_core}" if info.dla_core is not None else ""
    return f"python -m engines.build_engine MODEL.onnx{flags}{dla}"


def check_engine_sidecar(
    metadata: ModelMetadata,
    *,
    tensorrt_version: str | None = None,
    gpu_name: str | None = None,
    compute_capability: str | None = None,
    engine_sha256: str | None = None,
    onnx_sha256: str | None = None,
    precision: str | None = None,
    sample_rate: int | None = None,
    labels: Sequence[str] | None = None,
    engine_inputs: Sequence[TensorSpec] | None = None,
    engine_outputs: Sequence[TensorSpec] | None = None,
    where: str = "the engine sidecar",
) -> EngineInfo:
    """Check an engine's sidecar against what is here now; arguments left None are not checked.

    Pure (no TensorRT, no GPU): the runner passes ``tensorrt.__version__``, the GPU's name,
    the engine file's and (optionally) the ONNX file's SHA-256, and the I/O tensors the
    deserialized engine reports (:func:`engine_tensor_spec`).

    Args:
        metadata: The engine sidecar's metadata.
        tensorrt_version: The installed TensorRT version.
        gpu_name: The GPU the engine is about to run on.
        compute_capability: Its CUDA compute capability, ``"MAJOR.MINOR"``.
        engine_sha256: SHA-256 of the engine file being loaded.
        onnx_sha256: SHA-256 of the ONNX file the engine should come from.
        precision: The precision the caller wants (``"fp32"``/``"fp16"``/``"int8"``).
        sample_rate: The sample rate the caller will feed.
        labels: The labels the caller expects, in output order.
        engine_inputs: The engine's input tensors (dynamic axes as str).
        engine_outputs: The engine's output tensors.
        where: Names the sidecar in messages.

    Returns:
        The sidecar's :class:`EngineInfo`.

    Raises:
        EngineMismatchError: Naming the first mismatching field, ``expected`` the current value,
            ``found`` the recorded one.
        ValueError: If the sidecar has no valid ``extra["tensorrt"]`` section.
    """
    info = EngineInfo.from_metadata(metadata, where)
    rebuild = f"rebuild it here: {rebuild_command(info)}"
    checks = (
        ("tensorrt_version", tensorrt_version, info.tensorrt_version,
         f"the engine was built with TensorRT {info.tensorrt_version}; engines do not load across versions; {rebuild}"),
        ("gpu_name", gpu_name, info.gpu_name, f"the engine was built on {info.gpu_name}; engines are GPU-specific; {rebuild}"),
        ("compute_capability", compute_capability, info.compute_capability,
         f"the engine was built for compute capability {info.compute_capability}; engines do not move across GPU "
         f"architectures; {rebuild}"),
        ("engine_sha256", engine_sha256, info.engine_sha256,
         f"the engine file is not the one {where} describes (rebuilt or copied without its sidecar?); {rebuild}"),
        ("onnx_sha256", onnx_sha256, info.onnx_sha256,
         f"the engine was built from another version of the ONNX file; {rebuild}"),
        ("precision", precision, info.precision, "build one with --fp16, --int8 or neither, as needed"),
    )
    for name, current, recorded, hint in checks:
        if current is not None and recorded is not None and current != recorded:
            raise EngineMismatchError(name, current, recorded, f"{where}: {hint}")
    if sample_rate is not None and sample_rate != metadata.sample_rate:
        raise EngineMismatchError("sample_rate", sample_rate, metadata.sample_rate, where)
    if labels is not None and tuple(labels) != metadata.labels:
        raise EngineMismatchError("labels", tuple(labels), metadata.labels, where)
    for kind, found, recorded in (("inputs", engine_inputs, metadata.inputs), ("outputs", engine_outputs, metadata.outputs)):
        if found is None:
            continue
        try:
            check_io_against_metadata(recorded, _in_recorded_order(found, recorded), kind=kind,
                                      found_in="the deserialized engine", recorded_in=where)
        except MetadataMismatch as exc:
            raise EngineMismatchError(exc.field, exc.expected, exc.found, f"the deserialized engine vs {where}") from None
    return info


class TensorRTRunner(BaseRunner):
    """Runs a serialized TensorRT engine (TensorRT 10 named-tensor API) on a CUDA device.

    Args:
        engine_path: The ``.engine`` file; its sidecar ``<engine_path>.json`` must exist unless
            ``metadata`` is given.
        device: ``"cuda"`` (the current CUDA device); TensorRT has no CPU path.
        metadata: The engine's sidecar metadata (default: read from the sidecar).
        onnx_path: If given, the engine must have been built from this ONNX file (SHA-256).
        precision: If given, the engine must have this precision (``"fp32"``/``"fp16"``/``"int8"``).
        sample_rate: If given, the model must expect this sample rate.
        labels: If given, the model's labels must be these, in this order.
        check_finite: Check outputs for NaN and infinity.
    """

    backend = "tensorrt"

    def __init__(
        self,
        engine_path: str | os.PathLike,
        *,
        device: str = "cuda",
        metadata: ModelMetadata | None = None,
        onnx_path: str | os.PathLike | None = None,
        precision: str | None = None,
        sample_rate: int | None = None,
        labels: Sequence[str] | None = None,
        check_finite: bool = True,
    ) -> None:
        if device != "cuda":
            raise ValueError(f"TensorRTRunner: TensorRT runs on CUDA devices only, found device={device!r} "
                             "(use the 'onnxruntime' or 'torch' backend on the CPU)")
        self.engine_path = Path(engine_path)
        super().__init__(device=device, name=self.engine_path.name, check_finite=check_finite)
        self.metadata = metadata
        self.onnx_path = Path(onnx_path) if onnx_path is not None else None
        self.precision = precision
        self.sample_rate = sample_rate
        self.labels = tuple(labels) if labels is not None else None
        self.info: EngineInfo | None = None
        self._reset()

    def _reset(self) -> None:
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[str] = []
        self._profiles: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # name -> (min, max)
        self._device_buffers: dict[str, Any] = {}
        self._host_buffers: dict[str, Any] = {}  # pinned torch tensors, kept alive
        self._host_arrays: dict[str, np.ndarray] = {}  # numpy views of the pinned buffers

    def _open(self) -> None:
        trt = require_tensorrt()
        import torch

        from engines.torch_runner import require_torch_cuda

        require_torch_cuda("the TensorRT runner")
        if not self.engine_path.is_file():
            raise FileNotFoundError(f"TensorRT engine {self.engine_path} does not exist "
                                    "(build it: python -m engines.build_engine MODEL.onnx)")
        side = sidecar_path(self.engine_path)
        if self.metadata is None:
            if not side.is_file():
                raise FileNotFoundError(f"{self.engine_path} has no sidecar (expected {side}); engines are only run "
                                        "with their sidecar: rebuild with python -m engines.build_engine MODEL.onnx")
            self.metadata = ModelMetadata.load(side)
        data = self.engine_path.read_bytes()
        device_index = torch.cuda.current_device()
        self.info = check_engine_sidecar(
            self.metadata, tensorrt_version=trt.__version__, gpu_name=torch.cuda.get_device_name(device_index),
            compute_capability=compute_capability(torch, device_index),
            engine_sha256=hashlib.sha256(data).hexdigest(),
            onnx_sha256=sha256_file(self.onnx_path) if self.onnx_path is not None else None,
            precision=self.precision, sample_rate=self.sample_rate, labels=self.labels, where=f"sidecar {side.name}")
        try:
            self._load(trt, torch, data, side)
        except BaseException:
            self._reset()
            raise

    def _load(self, trt: Any, torch: Any, data: bytes, side: Path) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {self.engine_path} (see TensorRT's log above)")
        engine = self._engine
        inputs, outputs = [], []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            try:
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
            except TypeError as exc:
                raise RuntimeError(f"engine tensor {name!r} has TensorRT type {engine.get_tensor_dtype(name)}, "
                                   "which has no numpy equivalent") from exc
            spec = engine_tensor_spec(name, tuple(engine.get_tensor_shape(name)), dtype)
            (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(spec)
        assert self.metadata is not None
        check_engine_sidecar(self.metadata, engine_inputs=inputs, engine_outputs=outputs, where=f"sidecar {side.name}")
        self._context = engine.create_execution_context()
        if self._context is None:
            raise RuntimeError(f"TensorRT could not create an execution context for {self.engine_path} "
                               "(out of GPU memory?)")
        context = self._context
        max_shapes: dict[str, tuple[int, ...]] = {}
        for spec in inputs:
            if spec.is_dynamic:
                lo, _opt, hi = (tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(spec.name, 0))
                self._profiles[spec.name] = (lo, hi)
                max_shapes[spec.name] = hi
            else:
                max_shapes[spec.name] = tuple(int(d) for d in spec.shape)
            if not context.set_input_shape(spec.name, max_shapes[spec.name]):
                raise RuntimeError(f"TensorRT refused input {spec.name!r} shape {max_shapes[spec.name]}")
        for spec in outputs:
            shape = tuple(int(d) for d in context.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise RuntimeError(f"output {spec.name!r} has a data-dependent shape {shape}; the avlive TensorRT "
                                   "runner supports outputs whose shape follows from the input shapes only")
            max_shapes[spec.name] = shape
        device = torch.device("cuda", torch.cuda.current_device())
        self._stream = torch.cuda.Stream(device)
        for spec in inputs + outputs:
            numel = max(1, math.prod(max_shapes[spec.name]))
            torch_dtype = torch.from_numpy(np.empty(0, dtype=spec.dtype)).dtype
            self._device_buffers[spec.name] = torch.empty(numel, dtype=torch_dtype, device=device)
            host = torch.empty(numel, dtype=torch_dtype, pin_memory=True)
            self._host_buffers[spec.name] = host
            self._host_arrays[spec.name] = host.numpy()
            if not context.set_tensor_address(spec.name, self._device_buffers[spec.name].data_ptr()):
                raise RuntimeError(f"TensorRT refused the device address for tensor {spec.name!r}")
        torch.cuda.synchronize(device)
        by_name = {s.name: s for s in self.metadata.inputs}
        self._inputs = [by_name.get(s.name, s) for s in _in_recorded_order(inputs, self.metadata.inputs)]
        self._outputs = [s.name for s in _in_recorded_order(outputs, self.metadata.outputs)]

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()
        self._reset()

    def _input_metadata(self) -> Mapping[str, TensorSpec]:
        return {s.name: s for s in self._inputs}

    def _output_names(self) -> Sequence[str]:
        return self._outputs

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        context = self._context
        with torch.cuda.stream(self._stream):
            for spec in self._inputs:
                array = feed[spec.name]
                if spec.name in self._profiles:
                    lo, hi = self._profiles[spec.name]
                    if not all(a <= d <= b for a, d, b in zip(lo, array.shape, hi)):
                        raise RunnerInputError(
                            f"input {spec.name!r}: expected shape {format_spec(spec)} within the engine's optimisation "
                            f"profile, min {lo} max {hi}, received {array.shape} {array.dtype.name} "
                            "(rebuild with wider --min/--max shapes)")
                if not context.set_input_shape(spec.name, tuple(array.shape)):
                    raise RunnerInputError(f"input {spec.name!r}: TensorRT refused shape {array.shape}")
                n = array.size
                np.copyto(self._host_arrays[spec.name][:n], array.reshape(-1))
                self._device_buffers[spec.name][:n].copy_(self._host_buffers[spec.name][:n], non_blocking=True)
            shapes = {name: tuple(int(d) for d in context.get_tensor_shape(name)) for name in self._outputs}
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError(f"TensorRT execute_async_v3 failed for {self.engine_path.name} "
                                   "(see TensorRT's log above)")
            for name in self._outputs:
                n = math.prod(shapes[name])
                self._host_buffers[name][:n].copy_(self._device_buffers[name][:n], non_blocking=True)
        self._stream.synchronize()  # the one sync per call
        return {name: self._host_arrays[name][:math.prod(shapes[name])].reshape(shapes[name]) for name in self._outputs}
