"""A Triton Inference Server model repository from an exported model, for fleets of ``avlive`` clients.

``python -m models.export RUN_OR_MODEL.onnx --triton REPO_DIR`` writes::

    REPO_DIR/<name>/config.pbtxt        platform (or backend), max_batch_size, dynamic_batching,
                                        instance_group, inputs and outputs, the sidecar as a parameter
    REPO_DIR/<name>/1/model.onnx        the exported model (model.plan for a TensorRT engine)
    REPO_DIR/<name>/1/model.onnx.json   its sidecar (labels, sample rate, window, tensors)

Inputs and outputs (names, data types, dims) come from the sidecar (:class:`ModelMetadata`).
When every input and output has a dynamic first axis (``"batch"``), that axis is Triton's batch
axis: it is left out of ``dims``, ``max_batch_size`` is set, and ``dynamic_batching`` lets the
server gather the single-window requests of many clients into one batch (other dynamic axes are
``-1``). A model without a batch axis on every tensor gets ``max_batch_size: 0`` and full dims,
and no dynamic batching (Triton batches nothing it cannot split).

The sidecar travels twice: as the file beside the model, and inside ``config.pbtxt`` as the
parameter ``avlive_metadata`` (its JSON), so a client on another machine reads labels, sample
rate and window from the server (``ModelConfig.parameters``, engines/triton_runner.py) with no
file of its own.

Three ways to serve (``--triton-backend``):

``onnxruntime`` (default)  ``platform: "onnxruntime_onnx"``: Triton's ONNX Runtime backend runs
                           ``model.onnx`` (CPU instances by default, ``--triton-kind gpu`` for GPU).
``tensorrt``               ``platform: "tensorrt_plan"``: an engine of engines/build_engine.py as
                           ``model.plan``, GPU instances; ``max_batch_size`` at most the engine's
                           profile maximum. Engines are bound to the server's GPU and TensorRT.
``python``                 ``backend: "python"``: ``model.py`` (below) runs ``model.onnx`` with the
                           ``onnxruntime`` package inside Triton's Python backend, for server
                           builds that have no ONNX Runtime backend (the ``nvidia-pytriton``
                           wheel's server ships the Python backend only).

Every file is written atomically (models/core/atomic.py), the model before its sidecar and
``config.pbtxt`` last, so a server never loads a half-written model.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from models.core.atomic import atomic_path, atomic_write_text
from models.core.metadata import ModelMetadata, TensorSpec, load_export, sidecar_path

__all__ = [
    "TRITON_BACKENDS",
    "TRITON_DTYPES",
    "METADATA_PARAMETER",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_QUEUE_DELAY_US",
    "TritonExport",
    "TritonExportError",
    "default_model_name",
    "triton_config_text",
    "write_triton_repository",
    "PYTHON_BACKEND_MODEL",
]

#: ``--triton-backend`` choices.
TRITON_BACKENDS = ("onnxruntime", "tensorrt", "python")

#: numpy dtype name (as sidecars spell it) → Triton ``DataType``.
TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "bfloat16": "TYPE_BF16",
                 "int8": "TYPE_INT8", "uint8": "TYPE_UINT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
                 "int64": "TYPE_INT64", "bool": "TYPE_BOOL"}

#: The ``config.pbtxt`` parameter holding the sidecar's JSON.
METADATA_PARAMETER = "avlive_metadata"

#: Largest batch the server forms by default (``--triton-max-batch``).
DEFAULT_MAX_BATCH = 8

#: How long the server holds a request to batch it with others, by default: 2 ms, small against
#: a 0.25 s hop and long enough for a handful of clients' windows to meet.
DEFAULT_QUEUE_DELAY_US = 2000

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class TritonExportError(ValueError):
    """A model or option the repository cannot be written for; the message is one line."""


@dataclass(frozen=True)
class TritonExport:
    """What :func:`write_triton_repository` wrote.

    Attributes:
        name: The model's name on the server.
        config: ``REPO/<name>/config.pbtxt``.
        model: ``REPO/<name>/1/model.onnx`` (or ``model.plan``).
        sidecar: The model's sidecar beside it.
        max_batch_size: 0 when the model has no batch axis on every tensor.
        dynamic_batching: Whether the server batches requests together.
    """

    name: str
    config: Path
    model: Path
    sidecar: Path
    max_batch_size: int
    dynamic_batching: bool


def default_model_name(model_path: str | os.PathLike) -> str:
    """The model's name on the server: its folder's name for ``model.onnx`` / ``model.*.engine``
    (``runs/baseline/model.onnx`` → ``baseline``, ``models/demo/labeler/model.onnx`` →
    ``labeler``), else the file name without its suffixes (``esc.int8.onnx`` → ``esc-int8``)."""
    p = Path(model_path)
    if p.is_dir():
        return p.resolve().name
    stem = p.name.split(".")[0]
    if stem == "model":
        rest = p.name.split(".")[1:-1]  # model.int8.onnx -> ["int8"]
        return "-".join([p.resolve().parent.name, *rest])
    return "-".join(p.name.split(".")[:-1])


def _batch_axis(meta: ModelMetadata) -> bool:
    """Whether every input and output has a dynamic first axis (Triton's batch axis)."""
    tensors = (*meta.inputs, *meta.outputs)
    return bool(tensors) and all(t.shape and isinstance(t.shape[0], str) for t in tensors)


def _dims(spec: TensorSpec, batched: bool) -> str:
    shape = spec.shape[1:] if batched else spec.shape
    return "[ " + ", ".join("-1" if isinstance(d, str) else str(int(d)) for d in shape) + " ]"


def _pbtxt_string(text: str) -> str:
    """A protobuf text-format string literal: backslash, quote and line breaks escaped; other
    characters (UTF-8 included) as they are."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def triton_config_text(
    meta: ModelMetadata,
    *,
    name: str,
    backend: str = "onnxruntime",
    max_batch_size: int = DEFAULT_MAX_BATCH,
    instances: int = 1,
    kind: str = "cpu",
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
) -> tuple[str, int]:
    """The ``config.pbtxt`` of a model (protobuf text format of Triton's ``ModelConfig``).

    Args:
        meta: The model's sidecar (inputs and outputs with dynamic axes as str).
        name: The model's name (its folder in the repository).
        backend: One of :data:`TRITON_BACKENDS`.
        max_batch_size: Largest batch the server forms (when the model has a batch axis).
        instances: Model instances (``instance_group.count``).
        kind: ``"cpu"`` or ``"gpu"`` (``instance_group.kind``; ``tensorrt`` is always GPU).
        queue_delay_us: ``dynamic_batching.max_queue_delay_microseconds``.

    Returns:
        ``(text, max_batch_size)``, the latter 0 when the model has no batch axis.

    Raises:
        TritonExportError: a bad name or option, or a tensor type Triton has no name for.
    """
    if not _NAME_RE.match(name):
        raise TritonExportError(f"--triton-name: expected letters, digits, '_', '.' or '-' (a folder name), "
                                f"found {name!r}")
    if backend not in TRITON_BACKENDS:
        raise TritonExportError(f"--triton-backend: expected one of {', '.join(TRITON_BACKENDS)}, found {backend!r}")
    for flag, value in (("--triton-max-batch", max_batch_size), ("--triton-instances", instances)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TritonExportError(f"{flag}: expected an int >= 1, found {value!r}")
    if isinstance(queue_delay_us, bool) or not isinstance(queue_delay_us, int) or queue_delay_us < 0:
        raise TritonExportError(f"queue delay: expected microseconds >= 0, found {queue_delay_us!r}")
    if kind not in ("cpu", "gpu"):
        raise TritonExportError(f"--triton-kind: expected cpu or gpu, found {kind!r}")
    if backend == "tensorrt":
        kind = "gpu"
    batched = _batch_axis(meta)
    batch = max_batch_size if batched else 0
    lines = [f"name: {_pbtxt_string(name)}"]
    if backend == "python":
        lines.append('backend: "python"')
    else:
        lines.append(f'platform: "{"tensorrt_plan" if backend == "tensorrt" else "onnxruntime_onnx"}"')
    lines.append(f"max_batch_size: {batch}")
    for section, tensors in (("input", meta.inputs), ("output", meta.outputs)):
        entries = []
        for spec in tensors:
            if spec.dtype not in TRITON_DTYPES:
                raise TritonExportError(f"{section} {spec.name!r}: dtype {spec.dtype} has no Triton data type "
                                        f"(expected one of {', '.join(TRITON_DTYPES)})")
            entries.append(f"  {{\n    name: {_pbtxt_string(spec.name)}\n    data_type: {TRITON_DTYPES[spec.dtype]}\n"
                           f"    dims: {_dims(spec, batched)}\n  }}")
        lines.append(f"{section} [\n" + ",\n".join(entries) + "\n]")
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: KIND_{kind.upper()}\n  }}\n]")
    if batched:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}")
    metadata_json = json.dumps(meta.to_dict(), ensure_ascii=False, separators=(",", ":"))
    lines.append(f"parameters {{\n  key: {_pbtxt_string(METADATA_PARAMETER)}\n  value {{\n"
                 f"    string_value: {_pbtxt_string(metadata_json)}\n  }}\n}}")
    return "\n".join(lines) + "\n", batch


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as part:
        shutil.copyfile(src, part)


def _engine_max_batch(meta: ModelMetadata) -> int | None:
    """The largest batch a TensorRT engine's profile allows (None when it records none)."""
    profiles = (meta.extra.get("tensorrt") or {}).get("profiles") or {}
    sizes = [int(p["max"][0]) for p in profiles.values() if p.get("max")]
    return min(sizes) if sizes else None


def write_triton_repository(
    model_path: str | os.PathLike,
    repo_dir: str | os.PathLike,
    *,
    name: str | None = None,
    backend: str | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH,
    instances: int = 1,
    kind: str = "cpu",
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
) -> TritonExport:
    """Write ``repo_dir/<name>/`` for an exported model (see the module docstring).

    Args:
        model_path: ``model.onnx`` (or a TensorRT ``.engine``/``.plan``) with its sidecar.
        repo_dir: The model repository (created if missing; other models in it are kept).
        name: The model's name on the server (default :func:`default_model_name`).
        backend: One of :data:`TRITON_BACKENDS` (default: ``tensorrt`` for an engine, else
            ``onnxruntime``).
        max_batch_size, instances, kind, queue_delay_us: See :func:`triton_config_text`.

    Raises:
        FileNotFoundError: the model or its sidecar is missing.
        TritonExportError: an option that does not fit the model (one line).
    """
    src, meta = load_export(model_path, "no such model file (export one first: python -m models.export RUN)")
    is_engine = src.suffix in (".engine", ".plan")
    backend = backend or ("tensorrt" if is_engine else "onnxruntime")
    if is_engine != (backend == "tensorrt"):
        raise TritonExportError(f"--triton-backend {backend}: {src.name} is "
                                + ("a TensorRT engine, served with --triton-backend tensorrt" if is_engine else
                                   "an ONNX model; --triton-backend tensorrt serves an engine (python -m "
                                   "engines.build_engine MODEL.onnx --fp16, then --triton on the .engine)"))
    if backend == "tensorrt":
        most = _engine_max_batch(meta)
        if most is not None and max_batch_size > most:
            max_batch_size = most  # the server may not form batches the engine's profile refuses
    name = name or default_model_name(src)
    text, batch = triton_config_text(meta, name=name, backend=backend, max_batch_size=max_batch_size,
                                     instances=instances, kind=kind, queue_delay_us=queue_delay_us)
    folder = Path(repo_dir) / name
    version = folder / "1"
    version.mkdir(parents=True, exist_ok=True)
    model = version / ("model.plan" if backend == "tensorrt" else "model.onnx")
    _copy_atomic(src, model)
    _copy_atomic(sidecar_path(src), sidecar_path(model))
    if backend == "python":
        atomic_write_text(version / "model.py", PYTHON_BACKEND_MODEL)
    config = folder / "config.pbtxt"
    atomic_write_text(config, text)
    return TritonExport(name, config, model, sidecar_path(model), batch, batch > 0)


#: ``1/model.py`` of ``--triton-backend python``: Triton's Python backend running ``model.onnx``
#: with ONNX Runtime. The requests of one ``execute`` call (the dynamic batcher's batch) are
#: stacked along the batch axis, run in one ONNX Runtime call when their other axes agree, and
#: split back into one response per request.
PYTHON_BACKEND_MODEL = '''\
"""Triton Python-backend model written by avlive (models/export/triton.py): runs model.onnx
beside it with ONNX Runtime, one call per batch the dynamic batcher forms."""
import json
import os

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        here = os.path.join(args["model_repository"], args["model_version"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("AVLIVE_TRITON_THREADS", "1"))
        self.session = onnxruntime.InferenceSession(os.path.join(here, "model.onnx"), options,
                                                    providers=["CPUExecutionProvider"])
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]

    def execute(self, requests):
        feeds = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs} for r in requests]
        groups = {}  # requests whose non-batch shapes agree run together
        for i, feed in enumerate(feeds):
            groups.setdefault(tuple(feed[n].shape[1:] for n in self.inputs), []).append(i)
        responses = [None] * len(requests)
        for members in groups.values():
            stacked = {n: np.concatenate([feeds[i][n] for i in members]) for n in self.inputs}
            results = self.session.run(self.outputs, stacked)
            start = 0
            for i in members:
                rows = feeds[i][self.inputs[0]].shape[0]
                tensors = [pb_utils.Tensor(n, np.ascontiguousarray(r[start:start + rows]))
                           for n, r in zip(self.outputs, results)]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += rows
        return responses
'''
