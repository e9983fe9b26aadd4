"""The one small interface every inference backend sits behind.

A runner turns a feed of named numpy arrays into a dict of named numpy arrays, whatever runs
underneath (ONNX Runtime, PyTorch, TensorRT). The idea follows Polygraphy's ``BaseRunner``: a
context manager that is opened once (sessions, engines and device buffers are made in
:meth:`BaseRunner.open`), reports its inputs as :class:`~models.core.metadata.TensorSpec`\\ s, checks
every feed against them before running (so a wrong shape is reported as *received vs
expected*, not as a backend's stack trace), checks outputs for NaN and infinity, and times the
backend call alone.

Example::

    from engines import open_runner

    with open_runner("onnxruntime", "runs/x/model.onnx", threads=2) as runner:
        print(runner.input_metadata())           # {'audio': TensorSpec('audio', ('batch', 'samples'), 'float32')}
        out = runner.infer({"audio": wave})      # {'logits': (B, C) float32, ...}
        print(runner.last_inference_ms)

**Output buffers may be reused**: a runner may return views of buffers it owns and overwrite
them on the next :meth:`BaseRunner.infer` call (the TensorRT runner does, to avoid an allocation
per call). Copy an output (``out["logits"].copy()``) if you keep it past the next call.

Subclasses implement ``_open``, ``_close``, ``_input_metadata``, ``_output_names`` and
``_infer``; everything else (state, checks, timing) lives here.
"""
from __future__ import annotations

import abc
import time
from typing import Any, Mapping, Sequence

import numpy as np

from models.core.metadata import MetadataMismatch, TensorSpec

__all__ = [
    "BaseRunner",
    "RunnerInputError",
    "NonFiniteOutputError",
    "DeviceUnavailableError",
    "DEVICES",
    "check_feed",
    "check_finite_outputs",
    "check_io_against_metadata",
    "format_spec",
]

#: Device names a runner accepts.
DEVICES = ("cpu", "cuda")


class RunnerInputError(ValueError):
    """A feed does not match the model's inputs (missing or extra names, dtype, rank, an axis size).

    The message says what was expected and what was received, e.g. ``input 'x': expected shape
    (1, 400, 128) float32, received (1, 399, 128) float32``.
    """


class NonFiniteOutputError(RuntimeError):
    """A model produced NaN or infinite values.

    Attributes:
        output: The output's name.
        count: How many values are not finite.
        total: How many values the output has.
    """

    def __init__(self, output: str, count: int, total: int, n_nan: int, n_inf: int, backend: str = "") -> None:
        self.output = output
        self.count = count
        self.total = total
        where = f" ({backend})" if backend else ""
        super().__init__(f"output {output!r}{where}: {count} of {total} values are not finite "
                         f"({n_nan} NaN, {n_inf} infinite)")


class DeviceUnavailableError(RuntimeError):
    """The requested device (or the backend's support for it) is not available on this machine."""


def format_spec(spec: TensorSpec) -> str:
    """``"(1, 'samples') float32"``: a spec's shape and dtype, as the input errors show them."""
    return f"{_shape_text(spec.shape)} {spec.dtype}"


def _shape_text(shape: Sequence[Any]) -> str:
    inner = ", ".join(repr(d) if isinstance(d, str) else str(int(d)) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def check_feed(feed: Mapping[str, Any], specs: Mapping[str, TensorSpec]) -> None:
    """Check a feed against a model's inputs; raise on the first problem.

    Checks, in order: the feed is a mapping; no input is missing; no unknown name is fed; each
    value is a numpy array of the spec's dtype and rank; each fixed axis has the spec's size;
    inputs that share a dynamic axis name (``"batch"``) agree on its size.

    Args:
        feed: Input name → array.
        specs: Input name → the model's :class:`TensorSpec` (as :meth:`BaseRunner.input_metadata`).

    Raises:
        RunnerInputError: Naming the input, with expected and received shape and dtype.
    """
    if not isinstance(feed, Mapping):
        raise RunnerInputError(f"expected a dict of input name -> numpy array, received {type(feed).__name__}")
    expected_names = ", ".join(repr(n) for n in specs)
    missing = [n for n in specs if n not in feed]
    if missing:
        name = missing[0]
        raise RunnerInputError(f"missing input {name!r}: expected shape {format_spec(specs[name])}; "
                               f"received inputs {sorted(map(str, feed))} (the model's inputs are {expected_names})")
    extra = [n for n in feed if n not in specs]
    if extra:
        raise RunnerInputError(f"unexpected input {extra[0]!r}: the model's inputs are {expected_names}")
    dynamic_sizes: dict[str, tuple[str, int, int]] = {}  # axis name -> (input, axis, size) first seen
    for name, spec in specs.items():
        value = feed[name]
        if not isinstance(value, np.ndarray):
            raise RunnerInputError(f"input {name!r}: expected a numpy.ndarray of shape {format_spec(spec)}, "
                                   f"received {type(value).__module__}.{type(value).__name__}")
        received = f"{_shape_text(value.shape)} {value.dtype.name}"
        problem = ""
        if value.dtype.name != spec.dtype:
            problem = f"dtype {spec.dtype} expected"
        elif value.ndim != len(spec.shape):
            problem = f"rank {len(spec.shape)} expected, received rank {value.ndim}"
        else:
            for axis, (want, got) in enumerate(zip(spec.shape, value.shape)):
                if isinstance(want, str):
                    if got < 1:
                        problem = f"axis {axis} ({want!r}) must not be empty"
                        break
                    first = dynamic_sizes.setdefault(want, (name, axis, got))
                    if first[2] != got:
                        problem = (f"axis {axis} ({want!r}) is {got}, but input {first[0]!r} axis {first[1]} "
                                   f"({want!r}) is {first[2]}")
                        break
                elif want != got:
                    problem = f"axis {axis} must be {want}"
                    break
        if problem:
            raise RunnerInputError(f"input {name!r}: expected shape {format_spec(spec)}, received {received} "
                                   f"({problem})")


def check_finite_outputs(outputs: Mapping[str, np.ndarray], backend: str = "") -> None:
    """Raise :class:`NonFiniteOutputError` for the first floating-point output holding NaN or ±inf."""
    for name, value in outputs.items():
        if not np.issubdtype(value.dtype, np.floating):
            continue
        finite = np.isfinite(value)
        if finite.all():
            continue
        n_nan = int(np.count_nonzero(np.isnan(value)))
        count = int(value.size - np.count_nonzero(finite))
        raise NonFiniteOutputError(name, count, int(value.size), n_nan, count - n_nan, backend)


def check_io_against_metadata(
    recorded: Sequence[TensorSpec],
    found: Sequence[TensorSpec],
    *,
    kind: str,
    found_in: str,
    recorded_in: str,
) -> None:
    """Cross-check the tensors a model file really has against the ones its sidecar records.

    Names, order, dtypes and ranks must be equal; each axis must be fixed to the same size in
    both, or dynamic in both (dynamic axis *names* are not compared: exporters name them
    differently).

    Args:
        recorded: The sidecar's tensors (``metadata.inputs`` or ``metadata.outputs``).
        found: The tensors the session or engine reports.
        kind: ``"inputs"`` or ``"outputs"`` (names the field, e.g. ``inputs[0].shape``).
        found_in: What ``found`` describes, e.g. ``"the ONNX graph of model.onnx"``.
        recorded_in: What ``recorded`` comes from, e.g. ``"its sidecar model.onnx.json"``.

    Raises:
        MetadataMismatch: Naming the field, with ``expected`` what the model file has and
            ``found`` what the sidecar says.
    """
    detail = f"expected: {found_in}; found: {recorded_in}"
    if [t.name for t in found] != [t.name for t in recorded]:
        raise MetadataMismatch(f"{kind} names", [t.name for t in found], [t.name for t in recorded], detail)
    for i, (f, r) in enumerate(zip(found, recorded)):
        if f.dtype != r.dtype:
            raise MetadataMismatch(f"{kind}[{i}].dtype", f.dtype, r.dtype, f"tensor {f.name!r}; {detail}")
        if len(f.shape) != len(r.shape):
            raise MetadataMismatch(f"{kind}[{i}].shape", f.shape, r.shape,
                                   f"tensor {f.name!r}: rank {len(f.shape)} vs {len(r.shape)}; {detail}")
        for axis, (fd, rd) in enumerate(zip(f.shape, r.shape)):
            if isinstance(fd, str) and isinstance(rd, str):
                continue
            if fd != rd:
                raise MetadataMismatch(f"{kind}[{i}].shape", f.shape, r.shape,
                                       f"tensor {f.name!r}, axis {axis}: {fd!r} vs {rd!r}; {detail}")


class BaseRunner(abc.ABC):
    """Runs one model: open once, :meth:`infer` many times, close.

    Use as a context manager (``with runner:`` opens and closes it); :meth:`open` on an open
    runner does nothing, so ``with open_runner(...) as r:`` works on an already open runner.

    Attributes:
        backend: The backend's name (``"onnxruntime"``, ``"torch"``, ``"tensorrt"``).
        device: ``"cpu"`` or ``"cuda"``.
        name: A label for messages (defaults to the model's file name or class name).
        check_finite: Whether :meth:`infer` checks outputs for NaN and infinity.
        last_inference_ms: Duration of the last backend call in milliseconds (input and output
            checks excluded), or None before the first call.
    """

    backend: str = "base"

    def __init__(self, *, device: str = "cpu", name: str | None = None, check_finite: bool = True) -> None:
        if device not in DEVICES:
            raise ValueError(f"{type(self).__name__}: device must be one of {', '.join(DEVICES)}, found {device!r}")
        self.device = device
        self.name = name or type(self).__name__
        self.check_finite = bool(check_finite)
        self.last_inference_ms: float | None = None
        self._is_open = False
        self._input_specs: dict[str, TensorSpec] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` has run and :meth:`close` has not."""
        return self._is_open

    def open(self) -> "BaseRunner":
        """Load the model and allocate what inference needs; returns ``self``. No-op when open.

        Raises:
            DeviceUnavailableError: If the device (or the backend's support for it) is missing.
            MetadataMismatch: If the model disagrees with its sidecar (the field is named).
        """
        if not self._is_open:
            self._open()
            self._is_open = True
            self._input_specs = dict(self._input_metadata())
        return self

    def close(self) -> None:
        """Release the session, engine or buffers. No-op when closed."""
        if self._is_open:
            try:
                self._close()
            finally:
                self._is_open = False
                self._input_specs = None

    def __enter__(self) -> "BaseRunner":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        return f"<{type(self).__name__} {self.name!r} backend={self.backend} device={self.device} {state}>"

    def _require_open(self, what: str) -> None:
        if not self._is_open:
            raise RuntimeError(f"{self!r}: {what} needs an open runner; use `with runner:` or runner.open()")

    # ------------------------------------------------------------------ metadata

    def input_metadata(self) -> dict[str, TensorSpec]:
        """Input name → :class:`TensorSpec`, in the model's input order (dynamic axes as str)."""
        self._require_open("input_metadata()")
        assert self._input_specs is not None
        return dict(self._input_specs)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The model's output names, in output order (the keys :meth:`infer` returns)."""
        self._require_open("output_names")
        return tuple(self._output_names())

    # ------------------------------------------------------------------ inference

    def infer(self, feed: Mapping[str, np.ndarray], *, check_inputs: bool = True) -> dict[str, np.ndarray]:
        """Run the model on one feed.

        Args:
            feed: Input name → numpy array, each of the dtype and rank in
                :meth:`input_metadata`, fixed axes of the given sizes.
            check_inputs: Check the feed first (on by default; turning it off saves a few
                microseconds and trades clear errors for the backend's own).

        Returns:
            Output name → numpy array, in :attr:`output_names` order. The arrays may be
            buffers this runner reuses on the next call (see the module docstring).

        Raises:
            RunnerInputError: If the feed does not match the inputs.
            NonFiniteOutputError: If :attr:`check_finite` and an output holds NaN or ±inf.
        """
        self._require_open("infer()")
        assert self._input_specs is not None
        if check_inputs:
            check_feed(feed, self._input_specs)
        start = time.perf_counter()
        outputs = self._infer(feed)
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        if self.check_finite:
            check_finite_outputs(outputs, f"{self.backend}, {self.name}")
        return outputs

    # ------------------------------------------------------------------ for subclasses

    @abc.abstractmethod
    def _open(self) -> None:
        """Create the session / engine / buffers."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release what :meth:`_open` made."""

    @abc.abstractmethod
    def _input_metadata(self) -> Mapping[str, TensorSpec]:
        """Input specs, called once right after :meth:`_open`."""

    @abc.abstractmethod
    def _output_names(self) -> Sequence[str]:
        """Output names in order."""

    @abc.abstractmethod
    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on a checked feed; return output name → array (including every output)."""
