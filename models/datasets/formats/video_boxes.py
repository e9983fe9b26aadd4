"""Box sidecars: where the sounding source of a video is, for scoring sound-source localization.

A sidecar is a JSON file beside its video, named after it: ``NAME.boxes.json`` for
``NAME.mp4`` (any video extension). It describes the *sounding* source only: the object(s)
making the sound heard at a time. Two forms:

Per video (the source does not move and sounds all along, or there is none on screen)::

    {"units": "normalized", "boxes": [[0.10, 0.20, 0.45, 0.70]], "objects": 3}

Per frame (a step function of time: each entry holds from its ``t`` until the next entry's)::

    {"units": "pixels", "width": 640, "height": 360, "objects": 4,
     "frames": [{"t": 0.0, "boxes": []},
                {"t": 1.25, "boxes": [[64, 40, 210, 200]]},
                {"t": 2.9, "boxes": []}]}

Fields:

* ``units``: ``"normalized"`` (default; x over the frame's width, y over its height, in [0, 1])
  or ``"pixels"`` (then ``width`` and ``height``, the frame size the boxes were drawn on, are
  required).
* ``boxes``: a list of ``[x0, y0, x1, y1]`` (left, top, right, bottom; x1 > x0, y1 > y0). An
  **empty list means "no sounding source on screen"** (silence, or a sound from off screen):
  those stretches score the localizer's "no source" decision. Several boxes: the source is any
  of them (pointing counts a hit inside any).
* ``frames``: the per-frame form, entries sorted by ``t`` (seconds on the video's timeline);
  before the first entry nothing is known. Either ``boxes`` or ``frames``, not both.
* ``objects`` (optional, in the file or per entry): how many objects are on screen, sounding
  or not; it gives the pointing game's chance level 1 / objects.

Times before the first entry, and videos without a sidecar, are unlabelled (not scored).
"""
from __future__ import annotations

import bisect
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from models.datasets.formats._common import FormatError

SIDECAR_SUFFIX = ".boxes.json"


def sidecar_path(video: str | os.PathLike) -> Path:
    """``NAME.boxes.json`` beside ``NAME.EXT``."""
    p = Path(video)
    return p.with_name(p.stem + SIDECAR_SUFFIX)


@dataclass(frozen=True)
class SourceBoxes:
    """A video's sounding-source boxes over time, in normalized coordinates.

    Attributes:
        times: ``(n,)`` ascending start times of the entries (one entry at 0.0 for the per-video form).
        boxes: ``n`` arrays ``(k, 4)`` x0, y0, x1, y1 in [0, 1] (``k = 0``: no source on screen).
        objects: ``n`` object counts on screen (None where not given).
        per_video: whether the file used the per-video form (it then holds from time −inf).
    """

    times: np.ndarray
    boxes: tuple[np.ndarray, ...]
    objects: tuple[int | None, ...]
    per_video: bool = False

    def _index(self, t: float) -> int:
        if self.per_video:
            return 0
        return bisect.bisect_right(self.times.tolist(), t) - 1

    def at(self, t: float) -> np.ndarray | None:
        """``(k, 4)`` boxes at time ``t`` (``k = 0``: no source on screen), or None when unlabelled."""
        i = self._index(t)
        return None if i < 0 else self.boxes[i]

    def objects_at(self, t: float) -> int | None:
        i = self._index(t)
        return None if i < 0 else self.objects[i]

    def over(self, t0: float, t1: float) -> list[np.ndarray] | None:
        """The entries' boxes over ``[t0, t1)``; None when part of it is unlabelled."""
        i0, i1 = self._index(t0), self._index(max(t0, t1 - 1e-9))
        if i0 < 0:
            return None
        return list(self.boxes[i0 : i1 + 1])

    def no_source_over(self, t0: float, t1: float) -> bool:
        """Whether ``[t0, t1)`` is labelled throughout with no sounding source on screen."""
        parts = self.over(t0, t1)
        return parts is not None and all(len(b) == 0 for b in parts)


def _boxes(raw, units: str, size: tuple[float, float] | None, where: str) -> np.ndarray:
    if not isinstance(raw, list):
        raise FormatError(f"{where}: expected a list of [x0, y0, x1, y1] boxes, found {type(raw).__name__}")
    out = np.zeros((len(raw), 4))
    for k, box in enumerate(raw):
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise FormatError(f"{where}: expected a box [x0, y0, x1, y1] of 4 numbers, found {box!r}")
        b = np.asarray(box, np.float64)
        if size is not None:
            b = b / np.array([size[0], size[1], size[0], size[1]])
        if not (np.all(np.isfinite(b)) and b[2] > b[0] and b[3] > b[1] and b.min() >= -1e-6 and b.max() <= 1 + 1e-6):
            raise FormatError(f"{where}: expected x0 < x1, y0 < y1 inside the frame ({units}), found {box!r}")
        out[k] = np.clip(b, 0.0, 1.0)
    return out


def _objects(raw, where: str) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or raw < 1:
        raise FormatError(f"{where}: expected 'objects' a positive integer, found {raw!r}")
    return raw


def parse_source_boxes(data: dict, where: str = "sidecar") -> SourceBoxes:
    """A sidecar's JSON object → :class:`SourceBoxes` (module docstring format).

    Raises:
        FormatError: (a ``ValueError``) on any departure from the format, naming what was expected and found.
    """
    if not isinstance(data, dict):
        raise FormatError(f"{where}: expected a JSON object, found {type(data).__name__}")
    units = data.get("units", "normalized")
    if units not in ("normalized", "pixels"):
        raise FormatError(f"{where}: expected units 'normalized' or 'pixels', found {units!r}")
    size = None
    if units == "pixels":
        w, h = data.get("width"), data.get("height")
        if not (isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0):
            raise FormatError(f"{where}: units 'pixels' needs width and height > 0, found {w!r} and {h!r}")
        size = (float(w), float(h))
    if ("boxes" in data) == ("frames" in data):
        raise FormatError(f"{where}: expected exactly one of 'boxes' (per video) and 'frames' (per frame)")
    objects = _objects(data.get("objects"), where)
    if "boxes" in data:
        return SourceBoxes(np.zeros(1), (_boxes(data["boxes"], units, size, where),), (objects,), per_video=True)
    frames = data["frames"]
    if not isinstance(frames, list) or not frames:
        raise FormatError(f"{where}: expected 'frames' a non-empty list of {{'t', 'boxes'}} entries")
    times, boxes, counts = [], [], []
    for k, entry in enumerate(frames):
        w = f"{where} frames[{k}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("t"), (int, float)) or not math.isfinite(entry["t"]):
            raise FormatError(f"{w}: expected {{'t': seconds, 'boxes': [...]}}, found {entry!r}")
        if times and entry["t"] <= times[-1]:
            raise FormatError(f"{w}: expected t after {times[-1]}, found {entry['t']}")
        times.append(float(entry["t"]))
        boxes.append(_boxes(entry.get("boxes"), units, size, w))
        counts.append(_objects(entry.get("objects"), w) if "objects" in entry else objects)
    return SourceBoxes(np.asarray(times), tuple(boxes), tuple(counts))


def read_source_boxes(video: str | os.PathLike) -> SourceBoxes | None:
    """The sidecar of ``video`` (:func:`sidecar_path`), or None when it has none."""
    path = sidecar_path(video)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FormatError(f"{path}: expected JSON, found a syntax error at line {e.lineno}") from e
    return parse_source_boxes(data, str(path))


def write_source_boxes(video: str | os.PathLike, frames: Sequence[tuple[float, Sequence[Sequence[float]]]] | None = None,
                       boxes: Sequence[Sequence[float]] | None = None, objects: int | None = None) -> Path:
    """Write a normalized sidecar beside ``video``: per frame (``frames``: ``(t, boxes)`` entries) or
    per video (``boxes``). Returns its path."""
    data: dict = {"units": "normalized"}
    if objects is not None:
        data["objects"] = int(objects)
    if (frames is None) == (boxes is None):
        raise ValueError("write_source_boxes: expected exactly one of frames and boxes")
    if boxes is not None:
        data["boxes"] = [[round(float(v), 5) for v in b] for b in boxes]
    else:
        data["frames"] = [{"t": round(float(t), 4), "boxes": [[round(float(v), 5) for v in b] for b in bx]}
                          for t, bx in frames]
    parse_source_boxes(json.loads(json.dumps(data)), "write_source_boxes")  # what is written must read back
    path = sidecar_path(video)
    path.write_text(json.dumps(data) + "\n", encoding="utf-8")
    return path
