"""PyTorch backend: an ``nn.Module`` with named inputs and outputs from its metadata.

The module is called with its inputs positionally, in ``metadata.inputs`` order, under
``torch.inference_mode()`` in eval mode. It may return one tensor (one output), a tuple or list
(outputs in ``metadata.outputs`` order) or a dict keyed by output name — the same conventions as
:func:`models.export.onnx.export_onnx`, so the torch and ONNX runners of one model answer the
same feed with the same names.

Example::

    with TorchRunner(model, metadata, device="cpu") as runner:
        out = runner.infer({"audio": wave})      # {'logits': ..., 'embedding': ...}
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from engines.base import BaseRunner, DeviceUnavailableError
from models.core.metadata import ModelMetadata, TensorSpec
from models.export.onnx import outputs_by_name

__all__ = ["TorchRunner", "require_torch_cuda"]


def require_torch_cuda(what: str = "device='cuda'") -> None:
    """Raise :class:`DeviceUnavailableError` unless torch can use a CUDA device."""
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"{what} needs a CUDA device, but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); install a CUDA build of "
            "torch (README: 'Other machines') on a machine with an NVIDIA GPU, or use device='cpu'")


class TorchRunner(BaseRunner):
    """Runs an ``nn.Module``.

    Args:
        module: The model. :meth:`open` moves it to ``device`` and sets eval mode (in place:
            it is the caller's module).
        metadata: Its :class:`ModelMetadata` (input and output names, dtypes and shapes).
        device: ``"cpu"`` or ``"cuda"`` (CUDA device 0 / the current one).
        threads: If given, ``torch.set_num_threads(threads)`` on open (process-wide).
        check_finite: Check outputs for NaN and infinity.
    """

    backend = "torch"

    def __init__(
        self,
        module: nn.Module,
        metadata: ModelMetadata,
        *,
        device: str = "cpu",
        threads: int | None = None,
        check_finite: bool = True,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"TorchRunner wraps a torch.nn.Module, found {type(module).__name__} "
                            "(to run an exported file use the 'onnxruntime' or 'tensorrt' backend)")
        if not isinstance(metadata, ModelMetadata):
            raise TypeError(f"TorchRunner needs the module's ModelMetadata, found {type(metadata).__name__}")
        super().__init__(device=device, name=type(module).__name__, check_finite=check_finite)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads: expected a positive int or None, found {threads!r}")
        self.module = module
        self.metadata = metadata
        self.threads = threads
        self._torch_device: torch.device | None = None

    def _open(self) -> None:
        if self.device == "cuda":
            require_torch_cuda()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self._torch_device = torch.device(self.device)
        self.module.to(self._torch_device).eval()

    def _close(self) -> None:
        self._torch_device = None

    def _input_metadata(self) -> Mapping[str, TensorSpec]:
        return {s.name: s for s in self.metadata.inputs}

    def _output_names(self) -> Sequence[str]:
        return [s.name for s in self.metadata.outputs]

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        device = self._torch_device
        args = []
        for spec in self.metadata.inputs:
            array = feed[spec.name]
            if not array.flags.writeable or any(s < 0 for s in array.strides):
                array = np.ascontiguousarray(array).copy()  # torch.from_numpy wants writeable, positive strides
            args.append(torch.from_numpy(array).to(device, non_blocking=True))
        with torch.inference_mode():
            result = self.module(*args)
        named = outputs_by_name(result, self._output_names(), where=f"{self.name}.forward")
        return {name: value.detach().to("cpu").numpy() for name, value in named.items()}
