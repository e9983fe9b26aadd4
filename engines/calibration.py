"""INT8 calibration of a TensorRT build: an entropy calibrator fed by the CPU INT8 export's inputs.

``python -m engines.build_engine MODEL.onnx --int8 [--calib N | --calib-data DIR]`` calibrates
on exactly what ``python -m models.export MODEL.onnx --int8`` calibrates on
(:func:`models.export.quantize.calibration_inputs`: world validation windows, or training clips
of a dataset folder), cut here into batches of ``--calib-batch`` rows
(:func:`calibration_batches`) that a ``tensorrt.IInt8EntropyCalibrator2``
(:func:`make_entropy_calibrator`) hands to the builder one at a time through device buffers
allocated once (torch CUDA tensors).

The calibration cache (TensorRT's scale table) is written atomically beside the engine,
``<engine>.calibration-cache``, with a JSON record of what produced it
(``<cache>.json``: ONNX SHA-256, ``--calib``, ``--calib-data``, batch, input shapes, the set's
description). A later build reuses the cache only when that record matches the request
(:func:`cached_calibration`), so a cache from another model or another calibration set is never
applied silently; a reused cache spares rendering the calibration windows at all.

TensorRT documents the implicit-quantization calibrators as deprecated since 10.1 (superseded by
explicit Q/DQ quantization); they remain in TensorRT 10's Python API, which this follows. **This
code has not run against TensorRT** (no GPU here); its pure parts are tested on the CPU.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from models.core.atomic import atomic_write_bytes, atomic_write_text
from models.core.metadata import sidecar_path

__all__ = [
    "DEFAULT_CALIB_BATCH",
    "CalibrationRequest",
    "calibration_batches",
    "calibration_cache_path",
    "cached_calibration",
    "make_entropy_calibrator",
]

#: Rows per calibration batch by default (``--calib-batch``).
DEFAULT_CALIB_BATCH = 8


@dataclass(frozen=True)
class CalibrationRequest:
    """What a calibration is asked to be; a cache is reused only for an equal request.

    Attributes:
        onnx_sha256: The ONNX file calibrated.
        calib: How many inputs (``--calib``).
        calib_data: The dataset folder (``--calib-data``) as given, or None for world windows.
        batch: Rows per calibration batch.
    """

    onnx_sha256: str
    calib: int
    calib_data: str | None
    batch: int

    def __post_init__(self) -> None:
        for name in ("calib", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                flag = "--calib" if name == "calib" else "--calib-batch"
                raise ValueError(f"{flag}: expected an int >= 1, found {value!r}")
        if self.batch > self.calib:
            raise ValueError(f"--calib-batch {self.batch} is larger than --calib {self.calib}: a calibration batch "
                             f"takes --calib-batch inputs; lower it or raise --calib")

    def to_dict(self) -> dict[str, Any]:
        return {"onnx_sha256": self.onnx_sha256, "calib": self.calib, "calib_data": self.calib_data,
                "batch": self.batch}


def calibration_batches(feeds: Mapping[str, np.ndarray], batch: int) -> tuple[list[dict[str, np.ndarray]], int]:
    """Cut calibration inputs into batches of exactly ``batch`` rows.

    TensorRT calibrates with one fixed shape (the calibration profile), so every batch has
    ``batch`` rows; the ``N % batch`` rows left over are dropped (and counted).

    Args:
        feeds: Input name → ``(N, ...)`` array, the same ``N`` for every input.
        batch: Rows per batch, >= 1.

    Returns:
        ``(batches, dropped)``: ``N // batch`` dicts of C-contiguous ``(batch, ...)`` arrays
        (float inputs as float32), and how many rows were left out.

    Raises:
        ValueError: no inputs, inputs of different ``N``, or fewer than ``batch`` rows.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"calibration batch: expected an int >= 1, found {batch!r}")
    if not feeds:
        raise ValueError("calibration inputs: expected at least one input, found none")
    counts = {name: len(value) for name, value in feeds.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"calibration inputs: expected the same number of rows for every input, found {counts}")
    n = next(iter(counts.values()))
    if n < batch:
        raise ValueError(f"calibration inputs: {n} rows, fewer than one batch of {batch}; lower --calib-batch or "
                         f"raise --calib")
    def rows(value: np.ndarray, i: int) -> np.ndarray:
        part = value[i:i + batch]
        if np.issubdtype(part.dtype, np.floating):
            part = part.astype(np.float32, copy=False)
        return np.ascontiguousarray(part)

    batches = [{name: rows(value, i) for name, value in feeds.items()} for i in range(0, n - batch + 1, batch)]
    return batches, n - len(batches) * batch


def calibration_cache_path(engine_path: str | os.PathLike) -> Path:
    """``model.int8.engine`` → ``model.int8.engine.calibration-cache``."""
    return Path(f"{os.fspath(engine_path)}.calibration-cache")


def cached_calibration(cache_path: Path, request: CalibrationRequest) -> dict[str, Any] | None:
    """The record of a calibration cache made for exactly ``request``, or None.

    None when the cache or its record is missing or unreadable, or the record was made for
    another ONNX file, count, data folder or batch.
    """
    record_path = sidecar_path(cache_path)
    if not cache_path.is_file() or not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("request") != request.to_dict():
        return None
    if not isinstance(record.get("shapes"), dict) or not isinstance(record.get("set"), str):
        return None
    return record


def _write_cache(cache_path: Path, data: bytes, request: CalibrationRequest, shapes: Mapping[str, Sequence[int]],
                 described: str, count: int) -> None:
    """The cache, then its record (a record never describes a cache it does not sit beside)."""
    atomic_write_bytes(cache_path, data)
    record = {"request": request.to_dict(), "shapes": {k: [int(d) for d in v] for k, v in shapes.items()},
              "set": described, "count": int(count)}
    atomic_write_text(sidecar_path(cache_path), json.dumps(record, indent=1) + "\n")


def make_entropy_calibrator(
    trt: Any,
    batches: Sequence[Mapping[str, np.ndarray]],
    *,
    cache_path: Path,
    request: CalibrationRequest,
    shapes: Mapping[str, Sequence[int]],
    described: str,
    log: Callable[[str], None] = print,
) -> Any:
    """A ``trt.IInt8EntropyCalibrator2`` handing ``batches`` to the builder.

    Device buffers (torch CUDA tensors) are allocated once per input at the batch shape; each
    ``get_batch`` copies the next batch into them and returns their addresses in the order of
    the names TensorRT asks for, and None after the last batch. ``read_calibration_cache``
    returns the cache only when :func:`cached_calibration` accepts it for ``request``;
    ``write_calibration_cache`` writes it and its record atomically.

    Args:
        trt: The ``tensorrt`` module.
        batches: From :func:`calibration_batches` (empty when a current cache will be read).
        cache_path: The calibration cache file.
        request: What this calibration is (recorded beside the cache).
        shapes: Input name → the calibration shape (``(batch, ...)``).
        described: What the inputs are, for the record.
        log: Progress lines.
    """
    import torch

    count = sum(len(next(iter(b.values()))) for b in batches) if batches else 0

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._next = 0
            self._device: dict[str, Any] = {}
            if batches:
                device = torch.device("cuda", torch.cuda.current_device())
                for name, value in batches[0].items():
                    self._device[name] = torch.empty(value.shape, dtype=torch.from_numpy(value[:0]).dtype,
                                                     device=device)

        def get_batch_size(self) -> int:
            # explicit-batch networks: the batch axis is part of the calibration profile's shapes
            return 1

        def get_batch(self, names: Sequence[str]) -> list[int] | None:
            if self._next >= len(batches):
                return None
            current = batches[self._next]
            self._next += 1
            if self._next == 1 or self._next == len(batches) or self._next % 10 == 0:
                log(f"  calibration batch {self._next}/{len(batches)}")
            pointers = []
            for name in names:
                if name not in current:
                    raise KeyError(f"TensorRT asked for calibration input {name!r}; the calibration batches hold "
                                   f"{sorted(current)}")
                buffer = self._device[name]
                buffer.copy_(torch.from_numpy(current[name]))
                pointers.append(int(buffer.data_ptr()))
            torch.cuda.synchronize()
            return pointers

        def read_calibration_cache(self) -> bytes | None:
            if cached_calibration(cache_path, request) is None:
                return None
            log(f"reusing the calibration cache {cache_path.name} (made for this ONNX file and calibration set)")
            return cache_path.read_bytes()

        def write_calibration_cache(self, cache: Any) -> None:
            _write_cache(cache_path, bytes(memoryview(cache)), request, shapes, described, count)
            log(f"wrote the calibration cache {cache_path}")

    return EntropyCalibrator()
