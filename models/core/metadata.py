"""The one schema for what travels with a model: weights, exported ONNX files, TensorRT engines.

Every model artefact avlive writes gets a JSON *sidecar* (by convention ``<artefact>.json``,
see :func:`sidecar_path`) holding a :class:`ModelMetadata`: which family and task the model
is, its labels in output order, the audio sample rate and window it expects, whether it needs
a video frame, the front-end parameters, the input and output tensors, and the SHA-256 of the
weights it was made from. Loaders check a sidecar against what they are about to feed the
model with :meth:`ModelMetadata.check_compatible` instead of failing later with a shape error
or, worse, silently mislabelling.

All validation happens in :meth:`ModelMetadata.__post_init__` (and
:meth:`TensorSpec.__post_init__`), so an object that exists is valid, whether it was built in
code or read from disk. Errors are :class:`ValueError`\\ s that name the field and say
``expected ... found ...``.

Example::

    meta = ModelMetadata(
        family="baseline", task="labeler", labels=("dog", "speech"),
        sample_rate=16000, window_seconds=1.0, needs_frame=False,
        frontend={"n_mels": 64, "hop_length": 160},
        inputs=(TensorSpec("audio", ("batch", 16000), "float32"),),
        outputs=(TensorSpec("logits", ("batch", 2), "float32"),),
    )
    meta.save(sidecar_path("runs/x/model.onnx"))
    ModelMetadata.load("runs/x/model.onnx.json").check_compatible(sample_rate=16000)
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from models.core.atomic import atomic_write_text, sha256_file

__all__ = [
    "SCHEMA_VERSION",
    "TASKS",
    "DTYPES",
    "TensorSpec",
    "ModelMetadata",
    "MetadataMismatch",
    "avlive_version",
    "sidecar_path",
    "PRECISIONS",
    "precision_path",
]

#: The sidecar schema version this code writes and reads.
SCHEMA_VERSION = 1

#: The tasks a model can perform.
TASKS = ("labeler", "localizer", "embedding")

#: Tensor element types, spelled as numpy / ONNX Runtime spell them (``numpy.dtype(x).name``).
DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class MetadataMismatch(ValueError):
    """A model's metadata does not match what the caller needs.

    Attributes:
        field: The mismatching field, e.g. ``"sample_rate"`` or ``"inputs[0].shape"``.
        expected: What the caller expected.
        found: What the metadata says.
    """

    def __init__(self, field: str, expected: Any, found: Any, detail: str = "") -> None:
        self.field = field
        self.expected = expected
        self.found = found
        message = f"model metadata mismatch in {field}: expected {expected!r}, found {found!r}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


def _invalid(field_name: str, expected: str, found: Any, *, raw: bool = False) -> ValueError:
    """The one shape of validation error: ``invalid model metadata field F: expected E, found V``.

    ``found`` is shown with ``repr`` unless ``raw`` (then it is already a description).
    """
    shown = found if raw else repr(found)
    return ValueError(f"invalid model metadata field {field_name}: expected {expected}, found {shown}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _plain(value: Any, where: str) -> Any:
    """A deep copy of ``value`` in plain JSON types (tuples become lists), or ValueError."""
    if value is None or isinstance(value, (bool, str)) or _is_int(value):
        return value
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return _plain(value.item(), where)  # numpy scalars become the Python scalar
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(where, "a finite number (JSON has no NaN or infinity)", value)
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _invalid(f"{where} key", "a str", k)
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    raise _invalid(where, "a plain JSON value (None, bool, int, float, str, list or dict)",
                   f"{type(value).__name__} {value!r}", raw=True)


def avlive_version() -> str:
    """The installed avlive version, or the one in the source tree's pyproject.toml, or ``"unknown"``."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("avlive")
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover
        pass
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if project:
        found = re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.M)
        if found:
            return found.group(1)
    return "unknown"


def _default_created_by() -> str:
    return f"avlive {avlive_version()}"


def sidecar_path(artifact: str | os.PathLike) -> Path:
    """The conventional sidecar path for a model artefact: ``model.onnx`` → ``model.onnx.json``."""
    return Path(f"{os.fspath(artifact)}.json")


def load_export(artifact: str | os.PathLike, missing: str) -> tuple[Path, "ModelMetadata"]:
    """``(path, metadata from its sidecar)`` of an exported model file.

    Raises:
        FileNotFoundError: the file is missing (``missing`` says what to do), or its sidecar is.
    """
    src = Path(artifact)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: {missing}")
    side = sidecar_path(src)
    if not side.is_file():
        raise FileNotFoundError(f"{src}: its sidecar {side.name} is missing (python -m models.export writes both)")
    return src, ModelMetadata.load(side)


#: The numeric precisions a model may be exported in (``python -m models.export --int8``).
PRECISIONS = ("fp32", "int8", "bf16")


def precision_path(onnx: str | os.PathLike, precision: str) -> Path:
    """Where the ``precision`` variant of an exported model lives: ``model.onnx`` (fp32) →
    ``model.int8.onnx`` (int8) beside it; its sidecar is :func:`sidecar_path` of that.

    Raises:
        ValueError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, found {precision!r}")
    path = Path(onnx)
    return path if precision == "fp32" else path.with_name(f"{path.stem}.{precision}{path.suffix}")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of a model.

    Attributes:
        name: The tensor's name (as in the ONNX graph / engine bindings).
        shape: One entry per axis: a positive int for a fixed size, or a non-empty str naming a
            dynamic axis (``"batch"``, ``"time"``). Lists are accepted and stored as a tuple.
        dtype: Element type, one of :data:`DTYPES`.
    """

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def __post_init__(self) -> None:
        self._validate("tensor")

    def _validate(self, where: str) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise _invalid(f"{where}.name", "a non-empty str", self.name)
        if isinstance(self.shape, (str, bytes)) or not isinstance(self.shape, Sequence):
            raise _invalid(f"{where}.shape", "a list of ints and/or str axis names", self.shape)
        shape = tuple(self.shape)
        for i, dim in enumerate(shape):
            if _is_int(dim):
                if dim < 1:
                    raise _invalid(f"{where}.shape[{i}]", "a positive int or a str naming a dynamic axis", dim)
            elif not (isinstance(dim, str) and dim):
                raise _invalid(f"{where}.shape[{i}]", "a positive int or a str naming a dynamic axis", dim)
        object.__setattr__(self, "shape", shape)
        if self.dtype not in DTYPES:
            raise _invalid(f"{where}.dtype", f"one of {', '.join(DTYPES)}", self.dtype)

    @property
    def is_dynamic(self) -> bool:
        """Whether any axis is dynamic."""
        return any(isinstance(d, str) for d in self.shape)

    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON dict: ``{"name": ..., "shape": [...], "dtype": ...}``."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "tensor") -> "TensorSpec":
        """Build from :meth:`to_dict`'s output; ``where`` names it in error messages.

        Raises:
            ValueError: On missing or unknown keys or invalid values.
        """
        if not isinstance(data, Mapping):
            raise _invalid(where, "an object with name, shape and dtype", data)
        keys = {"name", "shape", "dtype"}
        missing = sorted(keys - set(data))
        if missing:
            raise _invalid(where, "an object with name, shape and dtype", f"{dict(data)!r} (missing {', '.join(missing)})",
                           raw=True)
        unknown = sorted(set(data) - keys)
        if unknown:
            raise _invalid(f"{where}.{unknown[0]}", "no such field (a tensor has only name, shape and dtype)",
                           data[unknown[0]])
        spec = object.__new__(cls)
        object.__setattr__(spec, "name", data["name"])
        object.__setattr__(spec, "shape", data["shape"])
        object.__setattr__(spec, "dtype", data["dtype"])
        spec._validate(where)
        return spec


def _tensor_tuple(value: Any, where: str) -> tuple[TensorSpec, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _invalid(where, "a list of tensor specs", value)
    specs = []
    for i, item in enumerate(value):
        if isinstance(item, TensorSpec):
            specs.append(item)  # validated when it was made
        else:
            specs.append(TensorSpec.from_dict(item, f"{where}[{i}]"))
    if not specs:
        raise _invalid(where, "at least one tensor", "none", raw=True)
    names = [s.name for s in specs]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise _invalid(f"{where}[{i}].name", "a name not used by another tensor", n)
    return tuple(specs)


@dataclass(frozen=True, kw_only=True)
class ModelMetadata:
    """What travels with a model's weights, ONNX file or TensorRT engine (as a JSON sidecar).

    Construct with keyword arguments; lists are accepted where tuples are stored, and tensor
    specs may be given as :class:`TensorSpec` or as dicts. ``frontend`` and ``extra`` are deep
    copied into plain JSON types (tuples become lists), so what you build equals what you load.

    Attributes:
        family: Model family, e.g. ``"slowfast"``, ``"l3"``, ``"baseline"``.
        task: One of :data:`TASKS`: ``"labeler"``, ``"localizer"`` or ``"embedding"``.
        labels: Class labels in output order (unique, non-empty strings). Required for labelers
            and localizers; may be empty for embedding models.
        sample_rate: Audio sample rate in Hz the model expects.
        window_seconds: Length of the audio window the model consumes, in seconds.
        needs_frame: Whether the model also takes a video frame.
        inputs: The model's input tensors, in order.
        outputs: The model's output tensors, in order.
        frontend: Front-end (feature extraction) parameters, plain JSON types only.
        checkpoint_sha256: SHA-256 (64 lowercase hex digits) of the weights file this artefact
            was made from, or None.
        extra: Anything else in plain JSON types, e.g. ``{"thresholds": {...}}``.
        created_by: The writer, ``"avlive <version>"`` by default.
        created_at: When it was written (ISO 8601, free-form), or None.
        schema_version: Always :data:`SCHEMA_VERSION` (other versions are refused).
    """

    family: str
    task: str
    labels: tuple[str, ...]
    sample_rate: int
    window_seconds: float
    needs_frame: bool
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    frontend: dict[str, Any] = field(default_factory=dict, hash=False)
    checkpoint_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    created_by: str = field(default_factory=_default_created_by)
    created_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        def set_(name: str, value: Any) -> None:  # normalised values on a frozen instance
            object.__setattr__(self, name, value)

        _check_schema_version(self.schema_version)
        if not isinstance(self.family, str) or not self.family.strip():
            raise _invalid("family", 'a non-empty str such as "slowfast", "l3" or "baseline"', self.family)
        if self.task not in TASKS:
            raise _invalid("task", f"one of {', '.join(map(repr, TASKS))}", self.task)
        if isinstance(self.labels, (str, bytes)) or not isinstance(self.labels, Sequence):
            raise _invalid("labels", "a list of label strings", self.labels)
        labels = tuple(self.labels)
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label:
                raise _invalid(f"labels[{i}]", "a non-empty str", label)
            if label in labels[:i]:
                raise _invalid(f"labels[{i}]", "unique labels", f"{label!r} again (first at index {labels.index(label)})",
                               raw=True)
        if not labels and self.task != "embedding":
            raise _invalid("labels", f"at least one label for a {self.task}", "none", raw=True)
        set_("labels", labels)
        if not _is_int(self.sample_rate) or self.sample_rate <= 0:
            raise _invalid("sample_rate", "a positive int (Hz)", self.sample_rate)
        if (not isinstance(self.window_seconds, (int, float)) or isinstance(self.window_seconds, bool)
                or not math.isfinite(self.window_seconds) or self.window_seconds <= 0):
            raise _invalid("window_seconds", "a positive finite number of seconds", self.window_seconds)
        set_("window_seconds", float(self.window_seconds))
        if not isinstance(self.needs_frame, bool):
            raise _invalid("needs_frame", "a bool", self.needs_frame)
        if not isinstance(self.frontend, Mapping):
            raise _invalid("frontend", "a dict of plain front-end parameters", self.frontend)
        set_("frontend", _plain(self.frontend, "frontend"))
        set_("inputs", _tensor_tuple(self.inputs, "inputs"))
        set_("outputs", _tensor_tuple(self.outputs, "outputs"))
        if self.checkpoint_sha256 is not None and (
                not isinstance(self.checkpoint_sha256, str) or not _SHA256_RE.match(self.checkpoint_sha256)):
            raise _invalid("checkpoint_sha256", "None or 64 lowercase hex digits", self.checkpoint_sha256)
        if not isinstance(self.extra, Mapping):
            raise _invalid("extra", "a dict of plain values", self.extra)
        set_("extra", _plain(self.extra, "extra"))
        if not isinstance(self.created_by, str) or not self.created_by:
            raise _invalid("created_by", 'a non-empty str such as "avlive 0.1.0"', self.created_by)
        if self.created_at is not None and not isinstance(self.created_at, str):
            raise _invalid("created_at", "None or an ISO 8601 str", self.created_at)

    # ----------------------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON dict (a deep copy; safe to modify)."""
        return {
            "schema_version": self.schema_version,
            "family": self.family,
            "task": self.task,
            "labels": list(self.labels),
            "sample_rate": self.sample_rate,
            "window_seconds": self.window_seconds,
            "needs_frame": self.needs_frame,
            "frontend": copy.deepcopy(self.frontend),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "checkpoint_sha256": self.checkpoint_sha256,
            "extra": copy.deepcopy(self.extra),
            "created_by": self.created_by,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelMetadata":
        """Build from :meth:`to_dict`'s output.

        Raises:
            ValueError: If ``schema_version`` is missing or not :data:`SCHEMA_VERSION`, a
                required field is missing, a field is unknown, or a value is invalid.
        """
        if not isinstance(data, Mapping):
            raise _invalid("(top level)", "a JSON object", data)
        if "schema_version" not in data:
            raise _invalid("schema_version", f"{SCHEMA_VERSION}", "no schema_version field (is this an avlive model sidecar?)",
                           raw=True)
        _check_schema_version(data["schema_version"], data.get("created_by"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model metadata field {unknown[0]}: expected only the schema {SCHEMA_VERSION} "
                             f"fields ({', '.join(sorted(known))}), found {unknown[0]}={data[unknown[0]]!r}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise _invalid(missing[0], "a value", f"none (missing field{'s' if len(missing) > 1 else ''}: {', '.join(missing)})",
                           raw=True)
        return cls(**data)

    def to_json(self) -> str:
        """The sidecar text: indented JSON with a trailing newline."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelMetadata":
        """Parse sidecar text.

        Raises:
            ValueError: If the text is not JSON or does not hold valid metadata.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model metadata is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike) -> None:
        """Write the sidecar atomically (see :mod:`models.core.atomic`)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelMetadata":
        """Read a sidecar written by :meth:`save`.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            ValueError: If its contents are invalid; the message names the file.
        """
        text = Path(path).read_text(encoding="utf-8")
        try:
            return cls.from_json(text)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)}: {exc}") from exc

    def replace(self, **changes: Any) -> "ModelMetadata":
        """A copy with some fields changed (validated like a new object)."""
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------------------- checks

    def check_compatible(
        self,
        *,
        sample_rate: int | None = None,
        labels: Sequence[str] | None = None,
        inputs: Sequence[TensorSpec | Mapping[str, Any]] | None = None,
        outputs: Sequence[TensorSpec | Mapping[str, Any]] | None = None,
    ) -> None:
        """Check that this model fits what the caller is about to do; arguments left None are not checked.

        Tensor shapes match axis by axis: equal sizes match, and a dynamic (str) axis in this
        metadata accepts any size or name the caller gives; a fixed axis here does not accept a
        dynamic one from the caller. Names, dtypes and the number of tensors must be equal.

        Args:
            sample_rate: The sample rate the caller will feed, in Hz.
            labels: The labels the caller expects, in output order.
            inputs: The tensors the caller will feed.
            outputs: The tensors the caller expects back.

        Raises:
            MetadataMismatch: Naming the first mismatching field with expected (the caller's)
                and found (this metadata's) values.
        """
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise MetadataMismatch("sample_rate", sample_rate, self.sample_rate)
        if labels is not None:
            if isinstance(labels, str):
                raise TypeError("labels must be a sequence of label strings, not a str")
            want = tuple(labels)
            if want != self.labels:
                raise MetadataMismatch("labels", want, self.labels, _label_difference(want, self.labels))
        for name, want_specs, have in (("inputs", inputs, self.inputs), ("outputs", outputs, self.outputs)):
            if want_specs is None:
                continue
            want = [s if isinstance(s, TensorSpec) else TensorSpec.from_dict(s, f"{name} argument[{i}]")
                    for i, s in enumerate(want_specs)]
            if len(want) != len(have):
                raise MetadataMismatch(name, [t.name for t in want], [t.name for t in have],
                                       f"{len(want)} tensors expected, the model has {len(have)}")
            for i, (w, h) in enumerate(zip(want, have)):
                if w.name != h.name:
                    raise MetadataMismatch(f"{name}[{i}].name", w.name, h.name)
                if w.dtype != h.dtype:
                    raise MetadataMismatch(f"{name}[{i}].dtype", w.dtype, h.dtype, f"tensor {h.name!r}")
                if len(w.shape) != len(h.shape):
                    raise MetadataMismatch(f"{name}[{i}].shape", w.shape, h.shape,
                                           f"tensor {h.name!r}: rank {len(w.shape)} expected, the model has rank {len(h.shape)}")
                for axis, (wd, hd) in enumerate(zip(w.shape, h.shape)):
                    if isinstance(hd, str):
                        continue
                    if wd != hd:
                        raise MetadataMismatch(f"{name}[{i}].shape", w.shape, h.shape,
                                               f"tensor {h.name!r}, axis {axis}: {wd!r} expected, the model has {hd!r}")

    def check_checkpoint(self, path: str | os.PathLike) -> None:
        """Check that the file at ``path`` is the checkpoint this metadata was made from.

        Raises:
            ValueError: If this metadata records no ``checkpoint_sha256``.
            MetadataMismatch: If the file's SHA-256 differs (field ``checkpoint_sha256``;
                expected is the file's digest, found the recorded one).
        """
        if self.checkpoint_sha256 is None:
            raise ValueError(f"cannot check {path}: this model metadata records no checkpoint_sha256")
        digest = sha256_file(path)
        if digest != self.checkpoint_sha256:
            raise MetadataMismatch("checkpoint_sha256", digest, self.checkpoint_sha256, f"file {os.fspath(path)}")


def _check_schema_version(version: Any, created_by: Any = None) -> None:
    if version == SCHEMA_VERSION and _is_int(version):
        return
    by = f" by {created_by}" if isinstance(created_by, str) else ""
    if _is_int(version) and version > SCHEMA_VERSION:
        hint = f"the sidecar was written{by} with a newer schema; upgrade avlive to read it"
    elif _is_int(version) and version >= 1:
        hint = f"the sidecar was written{by} with an older schema; re-export the model"
    else:
        hint = "not a valid schema version"
    raise ValueError(f"unsupported model metadata field schema_version: expected {SCHEMA_VERSION}, "
                     f"found {version!r} ({hint})")


def _label_difference(want: tuple[str, ...], have: tuple[str, ...]) -> str:
    if len(want) != len(have):
        missing = [x for x in want if x not in have]
        surplus = [x for x in have if x not in want]
        parts = [f"{len(want)} labels expected, the model has {len(have)}"]
        if missing:
            parts.append(f"model lacks {missing[:5]}")
        if surplus:
            parts.append(f"model also has {surplus[:5]}")
        return "; ".join(parts)
    if sorted(want) == sorted(have):
        i = next(i for i, (a, b) in enumerate(zip(want, have)) if a != b)
        return f"same labels in a different order; first difference at index {i}: {want[i]!r} expected, found {have[i]!r}"
    i = next(i for i, (a, b) in enumerate(zip(want, have)) if a != b)
    return f"first difference at index {i}: {want[i]!r} expected, found {have[i]!r}"
