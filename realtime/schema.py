"""The JSON-lines schema: one object per hop, as ``realtime.sinks.JsonLinesSink`` writes it.

Version 1.3 (``schema_version`` 1, ``schema_minor`` 3). Every record has exactly these fields
(times in stream seconds from the start of the capture, scores in [0, 1]):

==================  ===========================================================================
field               meaning
==================  ===========================================================================
``schema_version``  1, the major version
``schema_minor``    3, the minor version (since 1.1; a record without it is 1.0)
``source``          the source name (``synthetic:SEED``, a media file's basename, ``mic``)
``hop``             hop index k: the windows end in [k, k+1) × hop seconds
``stream_time``     seconds: end of this hop's windows (the newest captured sample)
``final``           true only for the last record, written at stop, that closes open events
``top``             list of ``{"label", "score", "model"}``: best smoothed scores, best first
``active``          list of ``{"label", "onset", "score"}``: events going on (onset corrected)
``ended``           list of ``{"label", "onset", "offset"}``: events that ended at this hop
``heatmap``         null (no localizer result yet) or ``{"peak": [x, y], "score", "has_source",
                    "stream_time", "fresh"}``: the newest heatmap's peak pixel, its score,
                    whether the score clears the localizer's threshold, the end time of the
                    window it came from, whether the localizer ran at this hop
``latency_ms``      stage → milliseconds: ``copy``, ``model:<name>`` per model run,
                    ``post``, ``sinks`` (previous hop), ``total``
``counters``        ``{"hops", "skips", "late_reads", "frame_overwrites", "missing_frames",
                    "resyncs", "recorder_dropped_frames", "resets"}``: totals since the start
                    (non-negative ints); ``recorder_dropped_frames`` (since 1.1): video frames
                    the mp4 recorder dropped because its queue was full (0 when not recording);
                    ``resets`` (since 1.2): times a stateful model was reset before a run
                    (at its first run and after a gap in its hops); since 1.3:
                    ``gap_samples`` (silence the capture wrote where audio was missing: a
                    source that skipped samples, a microphone lost), ``input_overflows``
                    (input the devices lost before capture read it), ``device_losses`` and
                    ``device_recoveries`` (live devices lost / back)
``lag_ms``          milliseconds of audio that arrived while this hop computed
``lost``            (since 1.3) names of the live sources lost at this hop (``[]`` normally):
                    while the microphone is lost the models hear silence, while the camera is
                    lost no localizer runs (``heatmap.fresh`` stays false)
==================  ===========================================================================

:func:`validate` checks a decoded object against this by hand (jsonschema is not a
dependency) and raises :class:`SchemaError` naming the first offending field, e.g.
``top[1].score``.

**Versions.** A reader should check ``schema_version`` first: a changed meaning or a removed
field bumps it, and a reader must refuse a major version it does not know. A new field only
bumps ``schema_minor`` (:data:`ADDED_IN` lists what each minor version added): a reader of 1.x
reads the fields it knows and ignores the rest, so it keeps working on newer 1.y records.
:func:`validate` accepts every 1.x record up to :data:`SCHEMA_MINOR` exactly (1.0 records, as
earlier avlive versions wrote them, still validate) and a newer 1.y record with fields it does
not know.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["ADDED_IN", "SCHEMA_MINOR", "SCHEMA_VERSION", "FIELDS", "COUNTERS", "SchemaError", "record", "validate"]

SCHEMA_VERSION = 1
SCHEMA_MINOR = 3

#: Minor version → the fields it added (``"counters.<name>"`` for a counter).
ADDED_IN: dict[int, tuple[str, ...]] = {1: ("schema_minor", "counters.recorder_dropped_frames"), 2: ("counters.resets",),
                                      3: ("lost", "counters.gap_samples", "counters.input_overflows",
                                          "counters.device_losses", "counters.device_recoveries")}

#: Field → one-line description (the table above).
FIELDS: dict[str, str] = {
    "schema_version": "schema (major) version, 1",
    "schema_minor": "schema minor version, 1 (absent: 1.0)",
    "source": "source name (synthetic:SEED, media basename, mic)",
    "hop": "hop index; windows end in [hop, hop + 1) * hop_s",
    "stream_time": "seconds, end of this hop's windows",
    "final": "true for the last record, written at stop",
    "top": "[{label, score, model}] best smoothed scores, best first",
    "active": "[{label, onset, score}] events going on",
    "ended": "[{label, onset, offset}] events ended at this hop",
    "heatmap": "null or {peak: [x, y], score, has_source, stream_time, fresh}",
    "latency_ms": "{stage: ms}: copy, model:<name>, post, sinks (previous hop), total",
    "counters": "{hops, skips, late_reads, frame_overwrites, missing_frames, resyncs, recorder_dropped_frames, resets, "
                "gap_samples, input_overflows, device_losses, device_recoveries}",
    "lag_ms": "ms of audio that arrived while this hop computed",
    "lost": "[source name] live sources lost at this hop",
}

COUNTERS = ("hops", "skips", "late_reads", "frame_overwrites", "missing_frames", "resyncs", "recorder_dropped_frames",
            "resets", "gap_samples", "input_overflows", "device_losses", "device_recoveries")


def _since(name: str) -> int:
    """The minor version that added a field (0: in 1.0)."""
    return next((minor for minor, names in ADDED_IN.items() if name in names), 0)


class SchemaError(ValueError):
    """A record does not follow the schema.

    Attributes:
        field: the offending field's path, e.g. ``"top[1].score"``.
    """

    def __init__(self, field: str, expected: str, found: Any) -> None:
        self.field = field
        shown = repr(found)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"hop record field {field!r}: expected {expected}, found {shown}")


def record(result, source: str) -> dict[str, Any]:
    """The schema's object for one ``realtime.scheduler.HopResult`` (plain JSON types)."""
    heatmap = None
    if result.heatmap is not None:
        h = result.heatmap
        heatmap = {"peak": [int(h.peak[0]), int(h.peak[1])], "score": _r(h.score), "has_source": bool(h.has_source),
                   "stream_time": _r(result.heatmap_time), "fresh": bool(result.heatmap_fresh)}
    c = result.counters
    return {
        "schema_version": SCHEMA_VERSION,
        "schema_minor": SCHEMA_MINOR,
        "source": source,
        "hop": int(result.hop),
        "stream_time": _r(result.stream_time),
        "final": bool(result.final),
        "top": [{"label": x.label, "score": _r(x.score), "model": x.model} for x in result.top],
        "active": [{"label": e.label, "onset": _r(e.onset), "score": _r(e.score)} for e in result.active],
        "ended": [{"label": e.label, "onset": _r(e.onset), "offset": _r(e.offset)} for e in result.ended],
        "heatmap": heatmap,
        "latency_ms": {k: _r(v, 3) for k, v in result.latency_ms.items()},
        "counters": {name: int(getattr(c, name)) for name in COUNTERS},
        "lag_ms": _r(result.lag_ms, 3),
        "lost": list(result.lost),
    }


def _r(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


# ------------------------------------------------------------------------------ validation


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _number(obj: Mapping, key: str, where: str, *, low: float | None = None, high: float | None = None) -> float:
    x = obj[key]
    bounds = "" if low is None else f" >= {low}" if high is None else f" in [{low}, {high}]"
    if not _is_number(x) or (low is not None and x < low) or (high is not None and x > high):
        raise SchemaError(where + key, f"a finite number{bounds}", x)
    return x


def _string(obj: Mapping, key: str, where: str) -> None:
    if not isinstance(obj[key], str) or not obj[key]:
        raise SchemaError(where + key, "a non-empty string", obj[key])


def _object(x: Any, path: str, keys: tuple[str, ...], exact: bool = True, version: str = "") -> Mapping:
    if not isinstance(x, Mapping):
        raise SchemaError(path, f"an object with {', '.join(keys)}", x)
    for key in keys:
        if key not in x:
            raise SchemaError(f"{path}.{key}" if path else key, "present", "nothing")
    if exact:
        extra = sorted(set(x) - set(keys))
        if extra:
            name = f"{path}.{extra[0]}" if path else extra[0]
            raise SchemaError(name, f"no such field (schema version {version or SCHEMA_VERSION} has "
                                    f"{', '.join(keys)})", x[extra[0]])
    return x


def _list(obj: Mapping, key: str) -> list:
    if not isinstance(obj[key], list):
        raise SchemaError(key, "a list", obj[key])
    return obj[key]


def validate(obj: Any) -> None:
    """Check one decoded JSON-lines object against the schema.

    Raises:
        SchemaError: naming the first offending field (``.field``), what was expected and what
            was found.
    """
    if not isinstance(obj, Mapping):
        raise SchemaError("", "an object", obj)
    if "schema_version" in obj and (obj["schema_version"] != SCHEMA_VERSION or not _is_int(obj["schema_version"])):
        raise SchemaError("schema_version", str(SCHEMA_VERSION), obj["schema_version"])
    minor = obj.get("schema_minor", 0)
    if not _is_int(minor) or ("schema_minor" in obj and minor < 1):
        raise SchemaError("schema_minor", "an int >= 1 (absent for 1.0)", minor)
    newer = minor > SCHEMA_MINOR  # written by a newer 1.y: fields we do not know are allowed
    version = f"{SCHEMA_VERSION}.{minor}"
    _object(obj, "", tuple(f for f in FIELDS if _since(f) <= minor), exact=not newer, version=version)
    _string(obj, "source", "")
    if not _is_int(obj["hop"]) or obj["hop"] < 0:
        raise SchemaError("hop", "an int >= 0", obj["hop"])
    _number(obj, "stream_time", "", low=0.0)
    if not isinstance(obj["final"], bool):
        raise SchemaError("final", "true or false", obj["final"])

    for i, item in enumerate(_list(obj, "top")):
        where = f"top[{i}]"
        _object(item, where, ("label", "score", "model"))
        _string(item, "label", where + ".")
        _number(item, "score", where + ".", low=0.0, high=1.0)
        _string(item, "model", where + ".")
    for i, item in enumerate(_list(obj, "active")):
        where = f"active[{i}]"
        _object(item, where, ("label", "onset", "score"))
        _string(item, "label", where + ".")
        _number(item, "onset", where + ".", low=0.0)
        _number(item, "score", where + ".", low=0.0, high=1.0)
    for i, item in enumerate(_list(obj, "ended")):
        where = f"ended[{i}]"
        _object(item, where, ("label", "onset", "offset"))
        _string(item, "label", where + ".")
        onset = _number(item, "onset", where + ".", low=0.0)
        _number(item, "offset", where + ".", low=onset)

    heatmap = obj["heatmap"]
    if heatmap is not None:
        _object(heatmap, "heatmap", ("peak", "score", "has_source", "stream_time", "fresh"))
        peak = heatmap["peak"]
        if not (isinstance(peak, list) and len(peak) == 2 and all(_is_int(v) and v >= 0 for v in peak)):
            raise SchemaError("heatmap.peak", "[x, y], two ints >= 0", peak)
        _number(heatmap, "score", "heatmap.", low=0.0, high=1.0)
        _number(heatmap, "stream_time", "heatmap.", low=0.0)
        for key in ("has_source", "fresh"):
            if not isinstance(heatmap[key], bool):
                raise SchemaError(f"heatmap.{key}", "true or false", heatmap[key])

    latency = obj["latency_ms"]
    if not isinstance(latency, Mapping):
        raise SchemaError("latency_ms", "an object of stage -> milliseconds", latency)
    for stage, ms in latency.items():
        if not isinstance(stage, str) or not _is_number(ms) or ms < 0:
            raise SchemaError(f"latency_ms.{stage}", "milliseconds >= 0", ms)

    counter_names = tuple(c for c in COUNTERS if _since(f"counters.{c}") <= minor)
    counters = _object(obj["counters"], "counters", counter_names, exact=not newer, version=version)
    for name in counter_names:
        if not _is_int(counters[name]) or counters[name] < 0:
            raise SchemaError(f"counters.{name}", "an int >= 0", counters[name])
    _number(obj, "lag_ms", "", low=0.0)
    if _since("lost") <= minor:
        for i, name in enumerate(_list(obj, "lost")):
            if not isinstance(name, str) or not name:
                raise SchemaError(f"lost[{i}]", "a source name", name)
