"""Runners that execute exported models behind one interface (:class:`engines.base.BaseRunner`).

=============== ============================================ =====================================
backend         runs                                         devices
=============== ============================================ =====================================
``onnxruntime`` an ``.onnx`` file (sidecar cross-checked)     cpu, cuda (onnxruntime-gpu)
``torch``       an ``nn.Module`` + its ``ModelMetadata``      cpu, cuda
``tensorrt``    an ``.engine`` file + its sidecar             cuda (TensorRT 10, imported lazily)
``triton``      a model on a Triton Inference Server (gRPC)  the server's (tritonclient, lazily)
=============== ============================================ =====================================

Example::

    from engines import open_runner

    with open_runner("onnxruntime", "runs/x/model.onnx", threads=2) as runner:
        out = runner.infer({"audio": wave})
"""
from __future__ import annotations

import os
from typing import Any

from engines.base import (
    BaseRunner,
    DeviceUnavailableError,
    NonFiniteOutputError,
    RunnerInputError,
)
from engines.onnxruntime_runner import OnnxRuntimeRunner
from engines.tensorrt_runner import TensorRTRunner
from engines.torch_runner import TorchRunner
from engines.triton_runner import TritonRunner
from models.core.metadata import ModelMetadata
from models.core.registry import Registry

__all__ = [
    "RUNNERS",
    "open_runner",
    "BaseRunner",
    "OnnxRuntimeRunner",
    "TorchRunner",
    "TensorRTRunner",
    "TritonRunner",
    "RunnerInputError",
    "NonFiniteOutputError",
    "DeviceUnavailableError",
]

#: Backend name → runner class.
RUNNERS: Registry = Registry("runner")
RUNNERS.register("onnxruntime", "ONNX Runtime on an .onnx file (CPU or CUDA execution provider)")(OnnxRuntimeRunner)
RUNNERS.register("torch", "PyTorch on an nn.Module with its ModelMetadata (CPU or CUDA)")(TorchRunner)
RUNNERS.register("tensorrt", "TensorRT 10 engine + sidecar on a CUDA device (optional extra)")(TensorRTRunner)
RUNNERS.register("triton", "a model on a Triton Inference Server, over gRPC (optional extra)")(TritonRunner)


def open_runner(
    backend: str,
    path_or_module: str | os.PathLike | Any,
    *,
    device: str = "cpu",
    threads: int = 2,
    metadata: ModelMetadata | None = None,
    **kwargs: Any,
) -> BaseRunner:
    """Make and open a runner.

    Args:
        backend: ``"onnxruntime"``, ``"torch"``, ``"tensorrt"`` or ``"triton"`` (see :data:`RUNNERS`).
        path_or_module: The ``.onnx`` file, the ``nn.Module``, the ``.engine`` file, or the
            model's name on the Triton server (``url="HOST:PORT"`` among ``kwargs``).
        device: ``"cpu"`` or ``"cuda"`` (TensorRT: ``"cuda"`` only).
        threads: CPU threads (ONNX Runtime intra-op threads; ``torch.set_num_threads`` for
            torch; unused by TensorRT).
        metadata: The model's metadata (required for ``torch``; otherwise read from the sidecar).
        **kwargs: Passed on to the runner class.

    Returns:
        The open runner; close it (``with open_runner(...) as r:``) when done.

    Raises:
        KeyError: For an unknown backend (the message lists the known ones).
        ValueError: For a ``torch`` runner without metadata.
    """
    cls = RUNNERS.get(backend).factory
    if cls is TorchRunner:
        if metadata is None:
            raise ValueError("open_runner('torch', ...): pass metadata=ModelMetadata(...) naming the module's "
                             "inputs and outputs")
        runner: BaseRunner = TorchRunner(path_or_module, metadata, device=device, threads=threads, **kwargs)
    elif cls is OnnxRuntimeRunner:
        runner = OnnxRuntimeRunner(path_or_module, device=device, threads=threads, metadata=metadata, **kwargs)
    else:
        runner = cls(path_or_module, device=device, metadata=metadata, **kwargs)
    return runner.open()
