"""Export a model to ONNX and prove the file computes what the model computes.

:func:`export_onnx` is the core the ``python -m models.export`` command calls: it exports with
the dynamo exporter (``torch.onnx.export(..., dynamo=True)``, opset 18) under the input and
output names of the model's :class:`~models.core.metadata.ModelMetadata`, with the dynamic axes
asked for, into a temporary file beside the target; checks it with ``onnx.checker``; runs it in
ONNX Runtime against PyTorch on the example inputs *and* on random inputs of other sizes along
every dynamic axis, and on any further inputs it is given (|Δ| ≤ ``atol + rtol·|value|`` for
every value); and only then renames it onto the target and writes the
sidecar (``model.onnx.json``) with the tensor specs read from the exported graph. A failed
export or check leaves no file behind and an existing target untouched.

Models that take a waveform (they hold a :class:`~models.audio.frontend.FrontEnd`; their 2-D float
inputs are ``(batch, samples)`` at ``metadata.sample_rate``) are also checked on real audio
with little energy above 5 kHz: windows of a world scene, low-passed
(:func:`lowpassed_scene_audio`). Broadband noise hides the float32 front end's error; such
audio shows it (bands near float32's noise floor). There the tolerance grows by the error
float32 arithmetic can explain, measured on that very input: the spread between the model's
output with its front ends in float32 and in float64 (see :data:`ORT_STFT_ERROR_RATIO`). A
front end with ``stft_dtype="float64"`` has no spread, and the check stays at ``atol``.

Example::

    meta = ModelMetadata(family="baseline", task="labeler", labels=labels, sample_rate=16000,
                         window_seconds=1.0, needs_frame=False,
                         inputs=[TensorSpec("audio", ("batch", "samples"), "float32")],
                         outputs=[TensorSpec("logits", ("batch", len(labels)), "float32")])
    report = export_onnx(model, meta, {"audio": torch.randn(2, 16000)}, "runs/x/model.onnx",
                         dynamic_axes={"audio": {0: "batch", 1: "samples"}})
    print(report.opset, report.max_abs_diff)     # 18 {'logits': 2.4e-07}

The model's ``forward`` takes the inputs positionally in ``metadata.inputs`` order and returns
one tensor, a tuple/list in ``metadata.outputs`` order, or a dict keyed by output name. Only the
tensor *names* of ``metadata.inputs``/``outputs`` are used on the way in; their shapes and
dtypes in the sidecar come from the exported graph. Models must stay under ONNX's 2 GB
single-file limit (the file is written without external data, so one rename publishes it).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from models.core.atomic import atomic_path, remove_stale_temps, sha256_file
from models.audio.frontend import STFT_IMPLS, FrontEnd, has_stft_impl, stft_dtype_override, stft_impl_override
from models.core.metadata import ModelMetadata, TensorSpec, sidecar_path

__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "ORT_STFT_ERROR_RATIO",
    "SCENE_CUTOFF_HZ",
    "ExportError",
    "ExportVerificationError",
    "VerificationResult",
    "worst_abs_diff",
    "ExportReport",
    "export_onnx",
    "verify_onnx",
    "check_onnx",
    "onnx_tensor_specs",
    "onnx_opset",
    "outputs_by_name",
    "lowpassed_scene_audio",
    "front_end_spread",
]

#: The opset avlive exports (the dynamo exporter's native one; see shared notes on Pad and opset 17).
DEFAULT_OPSET = 18

#: An export may differ from PyTorch by at most ``DEFAULT_ATOL + DEFAULT_RTOL · |PyTorch value|``
#: per value (NumPy's ``allclose`` rule): float32 rounding grows with the size of the value.
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-4

#: How much farther from the exact (float64) features ONNX Runtime's float32 ``STFT`` kernel
#: lands than PyTorch's float32 ``torch.stft``, at most: the largest ratio of max |ONNX Runtime
#: float32 - librosa float64| to max |PyTorch float32 - librosa float64| that
#: ``python -m apps.frontend_precision`` measured (README, "Shared pieces": avlive's five front
#: ends on noise, the low-passed world scene and two real recordings; ratios 0.70 to 4.47, the
#: largest for L3 on noise; ONNX Runtime 1.32, torch 2.13), rounded up to two digits. Whole
#: models agree: on random-weight Slow-Fast (VGG-Sound, EPIC-Sounds) and the test net the same
#: ratio at the output was 0.5 to 3 wherever the front end's spread exceeded float32 noise.
#: The low-passed scene check of a waveform-input model allows, per output,
#: ``atol + (1 + ratio)·spread + rtol·|value|``, where ``spread`` = max |PyTorch output with its
#: front ends as configured - with them in float64|, measured on that very input at export:
#: |ORT - PyTorch| <= |ORT - exact| + |PyTorch - exact| <= ratio·spread + spread. Rerun the
#: app after upgrading onnxruntime or torch, and raise this only with its new table.
ORT_STFT_ERROR_RATIO = 4.5

#: The low-pass of :func:`lowpassed_scene_audio`: above it the audio has little energy.
SCENE_CUTOFF_HZ = 5000.0

_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                10: "float16", 11: "float64", 16: "bfloat16"}


class ExportError(RuntimeError):
    """The exporter failed, or the exported graph does not fit the metadata."""


class ExportVerificationError(ExportError):
    """ONNX Runtime and PyTorch disagree on an output.

    Attributes:
        output: The output's name.
        max_abs_diff: The largest absolute difference found (``inf`` for a shape mismatch or
            NaN on one side only).
        atol: The absolute part of the tolerance it exceeded.
        rtol: The relative part (times |PyTorch value|).
        input_shapes: The shapes of the inputs it was found on.
    """

    def __init__(self, output: str, max_abs_diff: float, atol: float, input_shapes: Mapping[str, tuple[int, ...]],
                 detail: str, rtol: float = 0.0) -> None:
        self.output = output
        self.max_abs_diff = max_abs_diff
        self.atol = atol
        self.rtol = rtol
        self.input_shapes = dict(input_shapes)
        self.detail = detail
        shapes = ", ".join(f"{k} {tuple(v)}" for k, v in input_shapes.items())
        tolerance = f"atol {atol:g}" + (f" + rtol {rtol:g} x |PyTorch value|" if rtol else "")
        super().__init__(f"ONNX Runtime and PyTorch disagree on output {output!r} for inputs {shapes}: "
                         f"max |difference| = {max_abs_diff:.3g}, beyond {tolerance} ({detail})")


@dataclass(frozen=True)
class VerificationResult:
    """One ONNX Runtime vs PyTorch comparison.

    Attributes:
        input_shapes: Input name → shape fed.
        max_abs_diff: Output name → max |ONNX Runtime - PyTorch|.
        kind: Which inputs: ``"example"``, ``"random"`` (other sizes), ``"lowpassed_scene"``
            (:func:`lowpassed_scene_audio`, waveform-input models) or ``"extra"``.
        atol: Output name → the absolute tolerance it was held to (None: not recorded).
    """

    input_shapes: dict[str, tuple[int, ...]]
    max_abs_diff: dict[str, float]
    kind: str = "extra"
    atol: dict[str, float] | None = None


def worst_abs_diff(checks: Sequence[VerificationResult]) -> dict[str, float]:
    """Output name → the largest max |ONNX Runtime - PyTorch| over ``checks`` (at least one)."""
    return {name: max(c.max_abs_diff[name] for c in checks) for name in checks[0].max_abs_diff}


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        path: The ONNX file.
        sidecar: Its metadata sidecar (``<path>.json``).
        opset: The default-domain opset in the file.
        metadata: The metadata written to the sidecar (tensor specs from the graph).
        checks: The comparisons run: the example inputs first, then random inputs of other sizes,
            then (waveform-input models) the low-passed world scene, then ``extra_checks`` in
            order; each says its ``kind``.
        max_abs_diff: Output name → worst max |ONNX Runtime - PyTorch| over all checks.
        seconds: Wall time of the whole export, checks included.
        front_end_spread: Output name → max |PyTorch output with the front ends as configured
            - with them in float64| on the low-passed scene (:func:`front_end_spread`); None
            for models without a waveform input.
    """

    path: Path
    sidecar: Path
    opset: int
    metadata: ModelMetadata
    checks: tuple[VerificationResult, ...]
    max_abs_diff: dict[str, float]
    seconds: float
    front_end_spread: dict[str, float] | None = None


# --------------------------------------------------------------------------------------- helpers


def outputs_by_name(result: Any, names: Sequence[str], *, where: str = "forward") -> dict[str, torch.Tensor]:
    """Name a module's outputs: one tensor, a tuple/list in ``names`` order, or a dict by name.

    Args:
        result: What ``module(...)`` returned.
        names: The output names, in order.
        where: Names the caller in error messages.

    Raises:
        ValueError: If the number of outputs or the dict's keys do not match ``names``.
        TypeError: For any other return type.
    """
    names = list(names)
    if isinstance(result, torch.Tensor):
        values = [result]
    elif isinstance(result, Mapping):
        if set(result) != set(names):
            raise ValueError(f"{where} returned a dict with keys {sorted(map(str, result))}, expected the outputs "
                             f"{names}")
        values = [result[n] for n in names]
    elif isinstance(result, (tuple, list)):
        values = list(result)
    else:
        raise TypeError(f"{where} returned {type(result).__name__}; expected a tensor, a tuple/list of tensors or "
                        "a dict of tensors")
    if len(values) != len(names):
        raise ValueError(f"{where} returned {len(values)} output(s), expected {len(names)}: {names}")
    for n, v in zip(names, values):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{where}: output {n!r} is a {type(v).__name__}, expected a tensor")
    return dict(zip(names, values))


def onnx_opset(model_proto: Any) -> int:
    """The default-domain (``""`` / ``"ai.onnx"``) opset of an ``onnx.ModelProto``.

    Raises:
        ValueError: If the model imports no default-domain opset.
    """
    for entry in model_proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ValueError("the ONNX model imports no default-domain opset")


def onnx_tensor_specs(model_proto: Any) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The graph's inputs (initializers excluded) and outputs as :class:`TensorSpec`\\ s.

    Fixed axes become ints, named dynamic axes keep their name (``"batch"``), unnamed ones become
    ``"<tensor>_dim<i>"``.

    Raises:
        ExportError: For an element type :data:`models.core.metadata.DTYPES` lacks.
    """
    initializers = {i.name for i in model_proto.graph.initializer}

    def spec(value_info: Any) -> TensorSpec:
        tensor_type = value_info.type.tensor_type
        dtype = _ONNX_DTYPES.get(tensor_type.elem_type)
        if dtype is None:
            raise ExportError(f"tensor {value_info.name!r} has ONNX element type {tensor_type.elem_type}, "
                              "which avlive's metadata cannot describe")
        shape = []
        for i, d in enumerate(tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(int(d.dim_value))
            else:
                shape.append(d.dim_param or f"{value_info.name}_dim{i}")
        return TensorSpec(value_info.name, tuple(shape), dtype)

    inputs = tuple(spec(v) for v in model_proto.graph.input if v.name not in initializers)
    outputs = tuple(spec(v) for v in model_proto.graph.output)
    return inputs, outputs


def check_onnx(path: str | os.PathLike) -> Any:
    """``onnx.checker.check_model`` on the file, then return the loaded ``onnx.ModelProto``.

    Raises:
        ExportError: If the checker rejects the model (its message included).
    """
    import onnx

    try:
        onnx.checker.check_model(os.fspath(path))
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejects {path}: {exc}") from exc
    return onnx.load(os.fspath(path))


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    """Max |a - b| in float64 (NaN in both places counts as equal) and a note on where."""
    if a.shape != b.shape:
        return math.inf, f"shapes differ: ONNX Runtime {a.shape}, PyTorch {b.shape}"
    if a.size == 0:
        return 0.0, "empty"
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    both_nan = np.isnan(a64) & np.isnan(b64)
    diff = np.abs(a64 - b64)
    diff[both_nan] = 0.0
    diff[np.isnan(diff)] = math.inf  # NaN on one side only, or inf - inf
    index = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return float(diff[index]), f"worst at index {tuple(int(i) for i in index)}: ONNX Runtime {float(a[index]):.7g}, " \
                               f"PyTorch {float(b[index]):.7g}"


def _within_tolerance(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> bool:
    """``|a − b| ≤ atol + rtol·|b|`` everywhere (NaN in both places counts as equal)."""
    if a.shape != b.shape:
        return False
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.abs(a64 - b64) <= atol + rtol * np.abs(b64)
    return bool(np.all(ok | (np.isnan(a64) & np.isnan(b64))))


def verify_onnx(
    path: str | os.PathLike,
    model: nn.Module,
    inputs: Mapping[str, torch.Tensor],
    *,
    atol: float | Mapping[str, float] = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    threads: int = 2,
) -> dict[str, float]:
    """Run the ONNX file in ONNX Runtime (CPU) and ``model`` in PyTorch on ``inputs``; compare.

    Args:
        path: The ONNX file.
        model: The module it was exported from (called in eval mode, positionally in the
            graph's input order, under ``torch.inference_mode``; left in eval mode).
        inputs: Graph input name → tensor, e.g. ``{"audio": (B, N) float32}``.
        atol: Allowed |ONNX Runtime - PyTorch| per value (one number, or output name → number
            for every output), plus ...
        rtol: ... this fraction of |PyTorch value|.
        threads: ONNX Runtime intra-op threads.

    Returns:
        Output name → max |ONNX Runtime - PyTorch|, in graph output order.

    Raises:
        ValueError: If ``inputs`` names differ from the graph's inputs.
        ExportVerificationError: Naming the first output with a value outside the tolerance.
    """
    import onnxruntime as ort

    from models.evaluation.benchmark import ort_session_options

    session = ort.InferenceSession(os.fspath(path), sess_options=ort_session_options(threads),
                                   providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    if sorted(inputs) != sorted(input_names):
        raise ValueError(f"verify_onnx: inputs {sorted(inputs)} given, the ONNX graph's inputs are {input_names}")
    feed = {n: inputs[n].detach().cpu().numpy() for n in input_names}
    onnx_values = session.run(output_names, feed)
    model.eval()
    with torch.inference_mode():
        result = model(*[inputs[n] for n in input_names])
    torch_values = outputs_by_name(result, output_names, where=f"{type(model).__name__}.forward")
    shapes = {n: tuple(inputs[n].shape) for n in input_names}
    atols = dict(atol) if isinstance(atol, Mapping) else {n: atol for n in output_names}
    if sorted(atols) != sorted(output_names):
        raise ValueError(f"verify_onnx: atol given for {sorted(atols)}, the ONNX graph's outputs are {output_names}")
    diffs: dict[str, float] = {}
    for name, onnx_value in zip(output_names, onnx_values):
        torch_value = torch_values[name].detach().cpu().numpy()
        diff, detail = _max_abs_diff(np.asarray(onnx_value), torch_value)
        a = atols[name]
        if not diff <= a and not _within_tolerance(np.asarray(onnx_value), torch_value, a, rtol):
            raise ExportVerificationError(name, diff, a, shapes, detail, rtol)
        diffs[name] = diff
    return diffs


def _scene_seed() -> int:
    """The scene :func:`lowpassed_scene_audio` renders by default: the validation split's first."""
    from models.world import split_seed

    return split_seed("val", 0)


def lowpassed_scene_audio(sample_rate: int, samples: int, batch: int = 1, *, seed: int | None = None,
                          cutoff_hz: float = SCENE_CUTOFF_HZ) -> np.ndarray:
    """Real audio with little energy above ``cutoff_hz``: world-scene windows, low-passed.

    The scene ``Scene(BENCH, seed)`` (default seed: the validation split's first) is rendered
    at ``sample_rate`` for ``batch * samples`` samples, filtered by a 4th-order Butterworth
    low-pass at ``cutoff_hz`` (clipped to 0.45·sample_rate; models/world/sounds.py) and cut
    into ``batch`` consecutive windows. On such audio the bands above the cutoff lie near
    float32's noise floor, where a float32 front end is least exact (models/audio/frontend.py).

    Returns:
        ``(batch, samples)`` float32.
    """
    from scipy import signal

    from models.world import BENCH, Scene
    from models.world.sounds import lowpass_sos

    seed = _scene_seed() if seed is None else seed
    stream = Scene(BENCH, seed).render_audio(0, batch * samples, sample_rate).astype(np.float64)
    stream = signal.sosfilt(lowpass_sos(cutoff_hz, sample_rate, order=4), stream)
    return stream.reshape(batch, samples).astype(np.float32)


def front_end_spread(model: nn.Module, inputs: Sequence[torch.Tensor], output_names: Sequence[str]) -> dict[str, float]:
    """What float32 front ends cost ``model`` on ``inputs``, measured.

    Args:
        model: Called in eval mode, positionally, under ``torch.inference_mode``.
        inputs: Its inputs, in order.
        output_names: Its outputs' names, in order (see :func:`outputs_by_name`).

    Returns:
        Output name → max |output with the front ends as configured - output with every
        :class:`~models.audio.frontend.FrontEnd` inside computing in float64|: 0 when they already
        compute in float64 or the model holds none.
    """
    model.eval()
    where = f"{type(model).__name__}.forward"
    with torch.inference_mode():
        as_configured = outputs_by_name(model(*inputs), output_names, where=where)
        with stft_dtype_override(model, "float64"):
            exact = outputs_by_name(model(*inputs), output_names, where=where)
    return {n: _max_abs_diff(as_configured[n].detach().cpu().numpy(), exact[n].detach().cpu().numpy())[0]
            for n in output_names}


# --------------------------------------------------------------------------------------- export


def _name_output_axes(proto: Any, metadata: ModelMetadata) -> bool:
    """Give an output axis the name its metadata spec gives it (a str) where the exporter wrote a
    fixed size: the dynamo exporter annotates an output whose length follows a dynamic input
    through a recurrent loop (a GRU over ``history + new`` frames) with the example's size,
    though the graph computes any size, and ONNX Runtime then warns on every run. The
    intermediate shape annotations, stale the same way, are dropped then. Returns whether
    anything changed."""
    changed = False
    specs = {s.name: s for s in metadata.outputs}
    for output in proto.graph.output:
        spec = specs.get(output.name)
        dims = output.type.tensor_type.shape.dim
        if spec is None or len(spec.shape) != len(dims):
            continue
        for dim, want in zip(dims, spec.shape):
            if isinstance(want, str) and dim.HasField("dim_value"):
                dim.dim_param = want
                changed = True
    if changed:  # the intermediates carry the same stale sizes; ONNX Runtime infers them again
        del proto.graph.value_info[:]
    return changed


def _save_proto(proto: Any, path: Path) -> None:
    import onnx

    onnx.save_model(proto, os.fspath(path))


def _check_arguments(
    model: Any, metadata: Any, example_inputs: Any, dynamic_axes: Any, opset: Any,
) -> tuple[list[str], dict[str, dict[int, str]]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"export_onnx: model must be a torch.nn.Module, found {type(model).__name__}")
    if not isinstance(metadata, ModelMetadata):
        raise TypeError(f"export_onnx: metadata must be a ModelMetadata, found {type(metadata).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 13:
        raise ValueError(f"export_onnx: opset must be an int >= 13 (avlive exports {DEFAULT_OPSET}), found {opset!r}")
    names = [s.name for s in metadata.inputs]
    if not isinstance(example_inputs, Mapping) or sorted(example_inputs) != sorted(names):
        found = sorted(example_inputs) if isinstance(example_inputs, Mapping) else type(example_inputs).__name__
        raise ValueError(f"export_onnx: example_inputs must hold exactly the metadata's inputs {names}, found {found}")
    for n in names:
        if not isinstance(example_inputs[n], torch.Tensor):
            raise TypeError(f"export_onnx: example input {n!r} must be a torch.Tensor, "
                            f"found {type(example_inputs[n]).__name__}")
    axes: dict[str, dict[int, str]] = {}
    for n, spec in (dynamic_axes or {}).items():
        if n not in names:
            raise ValueError(f"export_onnx: dynamic_axes names input {n!r}; the inputs are {names}")
        rank = example_inputs[n].dim()
        axes[n] = {}
        for axis, axis_name in dict(spec).items():
            if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < rank:
                raise ValueError(f"export_onnx: dynamic_axes[{n!r}] axis {axis!r} is not an axis of the "
                                 f"rank-{rank} example input {n!r}")
            if not isinstance(axis_name, str) or not axis_name.isidentifier():
                raise ValueError(f"export_onnx: dynamic_axes[{n!r}][{axis}] must name the axis with a Python "
                                 f"identifier such as 'batch', found {axis_name!r}")
            axes[n][axis % rank] = axis_name
    return names, axes


def _second_inputs(
    example_inputs: Mapping[str, torch.Tensor],
    axes: Mapping[str, Mapping[int, str]],
    sizes: Mapping[str, int] | None,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Random inputs like the examples, with every dynamic axis resized (same name, same size)."""
    new_size: dict[str, int] = dict(sizes or {})
    for n, spec in axes.items():
        for axis, axis_name in spec.items():
            size = int(example_inputs[n].shape[axis])
            new_size.setdefault(axis_name, size + max(1, size // 3))
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for n, example in example_inputs.items():
        shape = list(example.shape)
        for axis, axis_name in axes.get(n, {}).items():
            shape[axis] = new_size[axis_name]
        if example.dtype.is_floating_point:
            ref = example.detach().double().cpu()
            std = float(ref.std()) if ref.numel() > 1 else 1.0
            mean = float(ref.mean()) if ref.numel() else 0.0
            if not (math.isfinite(std) and std > 0):
                std = 1.0
            if not math.isfinite(mean):
                mean = 0.0
            value = torch.randn(shape, generator=generator, dtype=torch.float64) * std + mean
        elif example.dtype == torch.bool:
            value = torch.rand(shape, generator=generator) > 0.5
        else:
            lo = int(example.min()) if example.numel() else 0
            hi = int(example.max()) if example.numel() else 1
            value = torch.randint(lo, hi + 1, shape, generator=generator)
        out[n] = value.to(dtype=example.dtype, device=example.device)
    return out


def _scene_inputs(
    model: nn.Module, example_inputs: Mapping[str, torch.Tensor], sample_rate: int,
) -> dict[str, torch.Tensor] | None:
    """The examples with every waveform input replaced by low-passed scene windows of its shape.

    Waveform inputs: the 2-D floating-point ``(batch, samples)`` inputs of a model that holds a
    :class:`~models.audio.frontend.FrontEnd`. None when there are none.
    """
    if not any(isinstance(m, FrontEnd) for m in model.modules()):
        return None
    names = [n for n, x in example_inputs.items() if x.dtype.is_floating_point and x.dim() == 2]
    if not names:
        return None
    feed = dict(example_inputs)
    for n in names:
        batch, samples = example_inputs[n].shape
        audio = torch.from_numpy(lowpassed_scene_audio(sample_rate, int(samples), int(batch)))
        feed[n] = audio.to(dtype=example_inputs[n].dtype, device=example_inputs[n].device)
    return feed


def export_onnx(
    model: nn.Module,
    metadata: ModelMetadata,
    example_inputs: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = DEFAULT_OPSET,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    verify_sizes: Mapping[str, int] | None = None,
    seed: int = 0,
    extra_checks: Sequence[Mapping[str, torch.Tensor]] = (),
    stft_impl: str = "stft",
) -> ExportReport:
    """Export ``model`` to ``path`` (ONNX, dynamo exporter), verify it, write its sidecar.

    Args:
        model: The module (set to eval mode). ``forward`` takes the inputs positionally in
            ``metadata.inputs`` order and returns a tensor, a tuple/list in
            ``metadata.outputs`` order, or a dict keyed by output name.
        metadata: The model's metadata. Its input/output *names* name the graph's tensors;
            the sidecar gets the graph's shapes and dtypes in their place, everything else
            (labels, sample rate, front end, ``checkpoint_sha256`` ...) is kept, and
            ``extra["onnx_export"]`` records opset, example shapes, dynamic axes and the
            measured differences.
        example_inputs: Input name → example tensor, e.g. ``{"audio": (2, 16000) float32}``.
        path: Where the ``.onnx`` file goes (its directory is created if needed).
        dynamic_axes: Input name → {axis: axis name}, e.g. ``{"audio": {0: "batch", 1:
            "samples"}}``; axes sharing a name share a size. Axes not named are fixed.
        opset: The ONNX opset (18; the file must come out with exactly this one).
        atol: Allowed |ONNX Runtime - PyTorch| per value, plus ...
        rtol: ... this fraction of |PyTorch value| (:func:`verify_onnx`).
        verify_sizes: Axis name → size for the second check (default: each dynamic axis's
            example size plus a third, at least plus one).
        seed: Seed of the second check's random inputs.
        extra_checks: More inputs to verify on before the file is kept (e.g. real data).
        stft_impl: The STFT formulation of every front end in the model that has two
            (:func:`~models.audio.frontend.has_stft_impl`) while it is exported and verified:
            ``"stft"`` (ONNX ``STFT``) or ``"conv"`` (a strided ``Conv`` with the windowed DFT
            basis, which TensorRT's ONNX parser builds; ``python -m models.export RUN --frontend
            conv``). The model's own setting is restored afterwards; the sidecar records it as
            ``extra["onnx_export"]["stft_impl"]``.

    Models that hold a :class:`~models.audio.frontend.FrontEnd` are also verified on low-passed world
    scene windows (:func:`lowpassed_scene_audio`, the example's shape) in place of their 2-D
    float inputs, within ``atol + (1 + ORT_STFT_ERROR_RATIO)·spread + rtol·|value|``,
    ``spread`` per output from :func:`front_end_spread` on those windows; the sidecar records
    both under ``extra["onnx_export"]["lowpassed_scene"]``.

    Returns:
        An :class:`ExportReport` with the opset and the max differences.

    Raises:
        ValueError, TypeError: For arguments that do not fit together (the message says which).
        ExportError: If the exporter fails, the checker rejects the file, the opset or the
            tensor names come out different.
        ExportVerificationError: If ONNX Runtime and PyTorch disagree (output and max
            difference named).

    In every error case no file is left at ``path`` (an earlier file there is untouched) and no
    sidecar is written.
    """
    if stft_impl not in STFT_IMPLS:
        raise ValueError(f"stft_impl: expected one of {', '.join(STFT_IMPLS)}, found {stft_impl!r}")
    if stft_impl != "stft" and not any(has_stft_impl(m) for m in model.modules()):
        raise ExportError(f"--frontend {stft_impl}: {type(model).__name__} holds no front end with an STFT to compute "
                          f"that way (PANNs computes its STFT as convolutions already; SoundNet has none)")
    with stft_impl_override(model, stft_impl) if stft_impl != "stft" else contextlib.nullcontext():
        return _export_onnx(model, metadata, example_inputs, path, dynamic_axes=dynamic_axes, opset=opset, atol=atol,
                            rtol=rtol, verify_sizes=verify_sizes, seed=seed, extra_checks=extra_checks,
                            stft_impl=stft_impl)


def _export_onnx(
    model: nn.Module,
    metadata: ModelMetadata,
    example_inputs: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None,
    opset: int,
    atol: float,
    rtol: float,
    verify_sizes: Mapping[str, int] | None,
    seed: int,
    extra_checks: Sequence[Mapping[str, torch.Tensor]],
    stft_impl: str,
) -> ExportReport:
    """:func:`export_onnx` itself, with the front ends already in their ``stft_impl`` formulation.
    Every option is required here: the defaults live once, on :func:`export_onnx`."""
    started = time.perf_counter()
    input_names, axes = _check_arguments(model, metadata, example_inputs, dynamic_axes, opset)
    output_names = [s.name for s in metadata.outputs]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    remove_stale_temps(sidecar_path(target))
    model.eval()
    dims = {name: torch.export.Dim(name) for spec in axes.values() for name in spec.values()}
    args = tuple(example_inputs[n] for n in input_names)
    dynamic_shapes = tuple({axis: dims[name] for axis, name in axes[n].items()} if n in axes else None
                           for n in input_names) if axes else None
    second = _second_inputs(example_inputs, axes, verify_sizes, seed)

    with atomic_path(target) as tmp:
        try:
            with warnings.catch_warnings():  # torch 2.13's own pytree deprecation notice, not ours to fix
                warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)", FutureWarning)
                torch.onnx.export(model, args, os.fspath(tmp), dynamo=True, verbose=False, opset_version=opset,
                                  input_names=input_names, output_names=output_names,
                                  dynamic_shapes=dynamic_shapes, external_data=False)
        except Exception as exc:  # the exporter raises many types; say which model and why
            raise ExportError(f"torch.onnx.export (dynamo) failed for {type(model).__name__}: "
                              f"{type(exc).__name__}: {exc}") from exc
        proto = check_onnx(tmp)
        if _name_output_axes(proto, metadata):
            _save_proto(proto, tmp)
        found_opset = onnx_opset(proto)
        if found_opset != opset:
            raise ExportError(f"asked for opset {opset}, the exporter wrote opset {found_opset} "
                              "(the dynamo exporter builds opset 18 and may fail to convert down); use opset=18")
        graph_inputs, graph_outputs = onnx_tensor_specs(proto)
        for kind, want, have in (("inputs", input_names, graph_inputs), ("outputs", output_names, graph_outputs)):
            if [s.name for s in have] != want:
                raise ExportError(f"the exported graph's {kind} are {[s.name for s in have]}, the metadata's are "
                                  f"{want} (does forward take/return them in metadata order?)")
        checks = []

        def check(kind: str, feed: Mapping[str, torch.Tensor], atols: dict[str, float]) -> None:
            diffs = verify_onnx(tmp, model, feed, atol=atols, rtol=rtol)
            checks.append(VerificationResult({n: tuple(feed[n].shape) for n in input_names}, diffs, kind, atols))

        uniform = {n: atol for n in output_names}
        check("example", example_inputs, uniform)
        check("random", second, uniform)
        scene = _scene_inputs(model, example_inputs, metadata.sample_rate)
        spread = None
        if scene is not None:
            spread = front_end_spread(model, [scene[n] for n in input_names], output_names)
            scene_atol = {n: atol + (1.0 + ORT_STFT_ERROR_RATIO) * spread[n] for n in output_names}
            try:
                check("lowpassed_scene", scene, scene_atol)
            except ExportVerificationError as exc:
                raise ExportVerificationError(
                    exc.output, exc.max_abs_diff, exc.atol, exc.input_shapes,
                    f"low-passed world scene; atol {atol:g} + (1 + {ORT_STFT_ERROR_RATIO:g}) x the front end's "
                    f"float32-vs-float64 spread {spread[exc.output]:.3g}; {exc.detail}", exc.rtol) from None
        for feed in extra_checks:
            check("extra", feed, uniform)
        worst = worst_abs_diff(checks)
        record = {
            "opset": found_opset,
            "torch_version": torch.__version__,
            "example_shapes": {n: list(example_inputs[n].shape) for n in input_names},
            "dynamic_axes": {n: {str(a): name for a, name in spec.items()} for n, spec in axes.items()},
            "atol": atol,
            "rtol": rtol,
            "max_abs_diff": worst,
            "stft_impl": stft_impl,
        }
        if spread is not None:
            record["lowpassed_scene"] = {
                "seed": _scene_seed(), "cutoff_hz": SCENE_CUTOFF_HZ, "front_end_spread": spread,
                "atol": checks[2].atol, "max_abs_diff": checks[2].max_abs_diff,
            }
        sidecar_meta = metadata.replace(
            inputs=graph_inputs, outputs=graph_outputs, extra={**metadata.extra, "onnx_export": record},
            created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    # the sidecar names the file it describes: written after the model, so an export killed between
    # the two renames leaves a pair whose hashes disagree, which loading refuses (check_onnx_pair)
    sidecar_meta = sidecar_meta.replace(extra={**sidecar_meta.extra, "onnx_sha256": sha256_file(target)})
    side = sidecar_path(target)
    sidecar_meta.save(side)
    return ExportReport(path=target, sidecar=side, opset=found_opset, metadata=sidecar_meta, checks=tuple(checks),
                        max_abs_diff=worst, seconds=time.perf_counter() - started, front_end_spread=spread)
