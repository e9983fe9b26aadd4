"""ONNX Runtime backend: an ``.onnx`` file on the CPU or CUDA execution provider.

The session uses :func:`models.evaluation.benchmark.ort_session_options` (``threads`` intra-op threads,
sequential execution, all graph optimisations). When the model has a sidecar
(``model.onnx.json``, :func:`models.core.metadata.sidecar_path`), the session's input and output
names, dtypes and shapes are cross-checked against it on :meth:`~engines.base.BaseRunner.open`,
and the sidecar's axis names (``"batch"``, ``"samples"``) are what
:meth:`~engines.base.BaseRunner.input_metadata` reports.

Example::

    with OnnxRuntimeRunner("runs/x/model.onnx", threads=2) as runner:
        out = runner.infer({"audio": np.zeros((1, 16000), np.float32)})
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.base import BaseRunner, DeviceUnavailableError, check_io_against_metadata
from models.evaluation.benchmark import ort_session_options
from models.core.metadata import ModelMetadata, TensorSpec, sidecar_path

__all__ = ["OnnxRuntimeRunner", "ORT_DTYPES", "session_tensor_specs"]

#: ONNX Runtime's type strings → numpy dtype names.
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def session_tensor_specs(nodes: Sequence[Any], kind: str) -> tuple[TensorSpec, ...]:
    """:class:`TensorSpec`\\ s from ``session.get_inputs()`` / ``get_outputs()``.

    Dynamic axes keep ONNX Runtime's name; unnamed ones become ``"<kind>:<tensor>:<axis>"``.

    Raises:
        ValueError: For an element type avlive has no name for.
    """
    specs = []
    for node in nodes:
        if node.type not in ORT_DTYPES:
            raise ValueError(f"{kind} {node.name!r} has ONNX type {node.type}, which avlive runners do not support "
                             f"(supported: {', '.join(ORT_DTYPES)})")
        shape = tuple(d if isinstance(d, int) and d > 0 else (d if isinstance(d, str) and d else f"{kind}:{node.name}:{i}")
                      for i, d in enumerate(node.shape))
        specs.append(TensorSpec(node.name, shape, ORT_DTYPES[node.type]))
    return tuple(specs)


class OnnxRuntimeRunner(BaseRunner):
    """Runs an ONNX file with ONNX Runtime.

    Args:
        path: The ``.onnx`` file.
        device: ``"cpu"`` (CPUExecutionProvider) or ``"cuda"`` (CUDAExecutionProvider, which
            needs the ``onnxruntime-gpu`` package and a CUDA device).
        threads: Intra-op threads (the session's ``intra_op_num_threads``).
        metadata: The model's metadata; by default read from the sidecar beside ``path`` when
            one exists.
        require_sidecar: Refuse a model without a sidecar (and without ``metadata``).
        check_finite: Check outputs for NaN and infinity.

    Attributes:
        metadata: The :class:`ModelMetadata` in use, or None when the model has none.
        path: The ONNX file.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device: str = "cpu",
        threads: int = 2,
        metadata: ModelMetadata | None = None,
        require_sidecar: bool = False,
        check_finite: bool = True,
    ) -> None:
        self.path = Path(path)
        super().__init__(device=device, name=self.path.name, check_finite=check_finite)
        self.threads = threads
        self.metadata = metadata
        self.require_sidecar = require_sidecar
        self._metadata_source = "the metadata passed in" if metadata is not None else None
        self._session: Any = None
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[str, ...] = ()

    def _open(self) -> None:
        import onnxruntime as ort

        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {self.path} does not exist")
        provider = _PROVIDERS[self.device]
        available = list(ort.get_available_providers())
        if provider not in available:
            raise DeviceUnavailableError(
                f"device={self.device!r} needs ONNX Runtime's {provider}, which this onnxruntime "
                f"{ort.__version__} does not have (available providers: {', '.join(available)}); "
                + ("install onnxruntime-gpu (same version) in place of onnxruntime, with CUDA and cuDNN, "
                   "or use device='cpu'" if self.device == "cuda" else "reinstall onnxruntime"))
        if self.metadata is None:
            side = sidecar_path(self.path)
            if side.is_file():
                self.metadata = ModelMetadata.load(side)
                self._metadata_source = f"its sidecar {side.name}"
            elif self.require_sidecar:
                raise FileNotFoundError(f"{self.path} has no sidecar (expected {side}); export with "
                                        "models.export.onnx.export_onnx, which writes one")
        providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
        session = ort.InferenceSession(os.fspath(self.path), sess_options=ort_session_options(self.threads),
                                       providers=providers)
        if provider not in session.get_providers():  # ORT falls back to CPU with only a warning
            raise DeviceUnavailableError(
                f"device={self.device!r}: ONNX Runtime could not start {provider} for {self.path.name} "
                f"(the session runs on {', '.join(session.get_providers())}); check the CUDA and cuDNN "
                "libraries onnxruntime-gpu needs")
        inputs = session_tensor_specs(session.get_inputs(), "input")
        outputs = session_tensor_specs(session.get_outputs(), "output")
        if self.metadata is not None:
            where = f"the ONNX graph of {self.path.name}"
            check_io_against_metadata(self.metadata.inputs, inputs, kind="inputs", found_in=where,
                                      recorded_in=self._metadata_source or "the metadata")
            check_io_against_metadata(self.metadata.outputs, outputs, kind="outputs", found_in=where,
                                      recorded_in=self._metadata_source or "the metadata")
            inputs = self.metadata.inputs  # same sizes, nicer axis names
        self._session = session
        self._inputs = inputs
        self._outputs = tuple(o.name for o in outputs)

    def _close(self) -> None:
        self._session = None

    def _input_metadata(self) -> Mapping[str, TensorSpec]:
        return {s.name: s for s in self._inputs}

    def _output_names(self) -> Sequence[str]:
        return self._outputs

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(list(self._outputs), dict(feed))
        return dict(zip(self._outputs, values))
