"""Training configuration: one frozen dataclass per recipe, built on ``TrainConfig``, with
``key=value`` overrides from the command line."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Fields every recipe has. Recipes subclass this and add their own."""

    epochs: int = 10
    batch_size: int = 64  # global batch: split evenly over the processes of a distributed run
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 0  # linear warm-up, then cosine decay to lr_min_factor × lr
    lr_min_factor: float = 0.01
    num_workers: int = 2  # DataLoader worker processes (0 = load in the main process)
    seed: int = 0
    threads: int = 2  # torch intra-op threads per process
    device: str = "cpu"  # "cpu" or "cuda"
    sync_bn: bool = True  # convert BatchNorm to SyncBatchNorm in multi-GPU runs (GPU only)
    checkpoint_every: int = 0  # also checkpoint every N steps mid-epoch (0 = at epoch ends only)
    eval_every: int = 1  # evaluate every N epochs (the last epoch always)
    max_steps: int = 0  # stop after N steps in total (0 = run all epochs); for smoke runs and tests
    # Stop once training has taken this many minutes of wall time (0 = no limit), counted over
    # resumptions. The run ends after the step that crosses the limit, evaluates and checkpoints
    # there; the learning-rate schedule still spans all epochs, so a cut run is a prefix of the
    # run without the limit.
    time_limit_min: float = 0.0
    # Train seeds seed, seed + 1, ... seed + best_of - 1 into OUT/seed-<s>/ and make OUT the run of
    # the one best on validation (models/train/seed_selection.py); 1: one run in OUT itself.
    best_of: int = 1

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        positive = ("epochs", "batch_size", "threads", "eval_every", "best_of")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, found {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr: expected > 0, found {self.lr}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', found {self.device!r}")
        for name in ("num_workers", "checkpoint_every", "max_steps", "warmup_steps", "time_limit_min"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, found {getattr(self, name)}")


def _coerce(text: str, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # Optional[...] / X | None
        if text.lower() in ("none", "null", ""):
            return None
        return _coerce(text, next(a for a in args if a is not type(None)), name)
    if hint is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: expected true or false, found {text!r}")
    if origin is tuple:
        # "2,2,2" is the form format_override prints; "(2, 2, 2)" and "[2, 2, 2]" (Python's and
        # JSON's, as in config.json) are taken too, and "()" is the empty tuple
        body = text.strip()
        if body[:1] + body[-1:] in ("()", "[]"):
            body = body[1:-1]
        items = [t.strip() for t in body.split(",") if t.strip()]
        inner = args[0] if args else str
        return tuple(_coerce(t, inner, name) for t in items)
    try:
        return hint(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a value of type {getattr(hint, '__name__', hint)}, found {text!r}") from None


def format_override(value: Any) -> str:
    """``value`` as the text :func:`apply_overrides` reads back to the same value: ``none``,
    ``true``/``false``, ``2,2,2,2`` for a tuple (``()`` when empty), floats by ``repr`` (exact).

    Raises:
        ValueError: a tuple item that holds a comma (no override can spell it).
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        if not value:
            return "()"
        items = [format_override(v) for v in value]
        if any("," in t for t in items):
            raise ValueError(f"cannot spell {value!r} as an override: an item holds a comma")
        return ",".join(items)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_overrides(config: Any) -> list[str]:
    """Every field of ``config`` as ``key=value`` in the syntax :func:`apply_overrides` takes
    (each line, given back, rebuilds the same config)."""
    return [f"{f.name}={format_override(getattr(config, f.name))}" for f in dataclasses.fields(config)]


def apply_overrides(config: Any, overrides: list[str]) -> Any:
    """A copy of ``config`` with ``key=value`` overrides applied, typed by the dataclass fields."""
    hints = typing.get_type_hints(type(config))
    changes = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        if key not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(config))
            raise ValueError(f"unknown config field {key!r} for {type(config).__name__}; fields: {known}")
        changes[key] = _coerce(value, hints[key], key)
    return dataclasses.replace(config, **changes)


def config_to_dict(config: Any) -> dict:
    """Plain-type dict of a config (tuples become lists), for JSON and checkpoints."""
    def plain(v):
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v
    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def config_from_dict(cls: type, data: dict) -> Any:
    """Rebuild a config from ``config_to_dict`` output; unknown keys are an error naming them."""
    hints = typing.get_type_hints(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)} in the stored config")
    values = {}
    for key, value in data.items():
        if typing.get_origin(hints[key]) is tuple and isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)
