"""AudioSet segment lists and ontology class table.

Segment lists (``balanced_train_segments.csv``, ``eval_segments.csv``,
``unbalanced_train_segments.csv``) come in two layouts, both read by
:func:`read_audioset_segments`:

* ``original`` (Google's files): three ``#`` comment lines, the last naming the columns,
  then rows separated by ``", "`` with the labels always quoted::

      # Segments csv created Sun Mar  5 10:54:31 2017
      # num_ytids=22160, num_segs=22160, num_unique_labels=527, num_positive_labels=52882
      # YTID, start_seconds, end_seconds, positive_labels
      --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"

* ``plain`` (re-formatted copies, e.g. in jarammm/DrummerNet): a header line
  ``YTID,start_seconds,end_seconds,positive_labels`` and ``","`` separators, labels still
  always quoted.

``class_labels_indices.csv``: ``index,mid,display_name`` (527 rows), names always quoted.

YouTube ids are opaque keys (they may start with ``-`` and hold ``_``).
"""
from __future__ import annotations

import csv
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from models.datasets.formats._common import (FormatError, expect_fields, first_row, header_error, join_lines, match_header, open_text,
                      parse_float, parse_int, where, write_text)

AUDIOSET_SEGMENT_COLUMNS = ("YTID", "start_seconds", "end_seconds", "positive_labels")
AUDIOSET_CLASS_COLUMNS = ("index", "mid", "display_name")
AUDIOSET_LAYOUTS = ("original", "plain")
AUDIOSET_NUM_CLASSES = 527


@dataclass(frozen=True)
class AudioSetSegment:
    """One AudioSet segment: YouTube video ``ytid`` from ``start_seconds`` to ``end_seconds``.

    Attributes:
        ytid: YouTube id (opaque key).
        start_seconds: Segment start in seconds.
        end_seconds: Segment end in seconds.
        positive_labels: Ontology ids (``/m/...``, ``/t/...``) present in the segment.
    """

    ytid: str
    start_seconds: float
    end_seconds: float
    positive_labels: tuple[str, ...]


@dataclass(frozen=True)
class AudioSetClass:
    """One row of ``class_labels_indices.csv``: class index, ontology id and display name."""

    index: int
    mid: str
    display_name: str


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def read_audioset_segments(path: str | os.PathLike) -> list[AudioSetSegment]:
    """Read an AudioSet segment list in either layout (recognised from the first line).

    Args:
        path: A ``*_segments.csv`` file.

    Returns:
        Segments in file order.

    Raises:
        FormatError: (a ``ValueError``) if neither the last leading ``#`` line nor the
            first line names the columns ``YTID, start_seconds, end_seconds, positive_labels``,
            or a row is malformed.
    """
    with open_text(path) as f:
        lines = [line.rstrip("\r") for line in f.read().split("\n")]
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    expected = ("the last of the leading '#' comment lines, or a plain first line, naming the columns "
                + ", ".join(AUDIOSET_SEGMENT_COLUMNS))
    if i:  # original layout: the last comment line names the columns
        header_line = lines[i - 1]
        header = [c.strip() for c in header_line.lstrip("#").split(",")]
    else:
        header_line = lines[0] if lines and lines[0] else None
        header = next(csv.reader([header_line], skipinitialspace=True)) if header_line else None
        i = 1
    if header is None or tuple(header) != AUDIOSET_SEGMENT_COLUMNS:
        raise header_error(path, "AudioSet segment list", expected, header_line)
    out = []
    for number, line in enumerate(lines[i:], start=i + 1):
        if not line.strip():
            continue
        fields = next(csv.reader([line], skipinitialspace=True))
        expect_fields(path, number, fields, 4, AUDIOSET_SEGMENT_COLUMNS)
        ytid, start, end, labels = fields
        out.append(AudioSetSegment(ytid, parse_float(start, path, number, "start_seconds"),
                                   parse_float(end, path, number, "end_seconds"),
                                   tuple(x.strip() for x in labels.split(",") if x.strip())))
    return out


def _segment_fields(s: AudioSetSegment) -> tuple[str, str, str, str]:
    for x in (s.ytid, *s.positive_labels):
        if not x or any(c in x for c in ',"\r\n\t '):
            raise ValueError(f"AudioSet key {x!r} is empty or contains a separator")
    return s.ytid, f"{s.start_seconds:.3f}", f"{s.end_seconds:.3f}", _quote(",".join(s.positive_labels))


def write_audioset_segments(path: str | os.PathLike, segments: Iterable[AudioSetSegment], layout: str = "original",
                            created: str | None = None, line_terminator: str = "\n") -> None:
    """Write an AudioSet segment list.

    Args:
        path: Output file (written atomically).
        segments: Segments; times are written with 3 decimals.
        layout: ``"original"`` (3 ``#`` lines, ``", "`` separators) or ``"plain"`` (header
            line, ``","``). Labels are always quoted, as in both real layouts.
        created: Date text of the first comment line (``time.ctime()`` format, e.g.
            ``"Sun Mar  5 10:54:31 2017"``); defaults to now. Original layout only.
        line_terminator: Line end.
    """
    segments = list(segments)
    rows = [_segment_fields(s) for s in segments]
    if layout == "original":
        labels = [label for s in segments for label in s.positive_labels]
        lines = [f"# Segments csv created {created if created is not None else time.ctime()}",
                 f"# num_ytids={len({s.ytid for s in segments})}, num_segs={len(segments)}, "
                 f"num_unique_labels={len(set(labels))}, num_positive_labels={len(labels)}",
                 "# " + ", ".join(AUDIOSET_SEGMENT_COLUMNS)]
        lines += [", ".join(r) for r in rows]
    elif layout == "plain":
        lines = [",".join(AUDIOSET_SEGMENT_COLUMNS)] + [",".join(r) for r in rows]
    else:
        raise ValueError(f"unknown AudioSet layout {layout!r}; expected one of {AUDIOSET_LAYOUTS}")
    write_text(path, join_lines(lines, line_terminator))


def read_audioset_class_labels(path: str | os.PathLike) -> list[AudioSetClass]:
    """Read ``class_labels_indices.csv`` (``index,mid,display_name``; 527 rows officially).

    Raises:
        FormatError: (a ``ValueError``) on another header, a bad or repeated index.
    """
    (line, header), rows = first_row(path)
    match_header(path, header, {"classes": AUDIOSET_CLASS_COLUMNS}, "AudioSet class_labels_indices.csv")
    out, seen = [], set()
    for line, f in rows:
        expect_fields(path, line, f, 3, AUDIOSET_CLASS_COLUMNS)
        index = parse_int(f[0], path, line, "index")
        if index in seen:
            raise FormatError(f"{where(path, line)}: class index {index} appears twice")
        seen.add(index)
        out.append(AudioSetClass(index, f[1], f[2]))
    return out


def write_audioset_class_labels(path: str | os.PathLike, classes: Iterable[AudioSetClass],
                                line_terminator: str = "\n") -> None:
    """Write ``class_labels_indices.csv`` as the real file has it (display names always quoted)."""
    lines = [",".join(AUDIOSET_CLASS_COLUMNS)]
    for c in classes:
        if any(ch in c.mid for ch in ',"\r\n'):
            raise ValueError(f"AudioSet mid {c.mid!r} contains a separator")
        if any(ch in c.display_name for ch in "\r\n"):
            raise ValueError(f"display name {c.display_name!r} contains a line break")
        lines.append(f"{int(c.index)},{c.mid},{_quote(c.display_name)}")
    write_text(path, join_lines(lines, line_terminator))


def audioset_class_index(classes: Iterable[AudioSetClass]) -> dict[str, int]:
    """``mid -> index`` for turning ``positive_labels`` into a multi-hot target."""
    return {c.mid: c.index for c in classes}


#: AudioSet's class list (``class_labels_indices.csv``: the ontology's 527 classes, CC BY 4.0,
#: Google; the same file the PANNs and EfficientAT repositories keep as
#: ``metadata/class_labels_indices.csv``), shipped as package data.
AUDIOSET_LABELS_CSV = Path(__file__).resolve().parents[1] / "labels" / "audioset_class_labels_indices.csv"


@functools.lru_cache(maxsize=1)
def audioset_display_names() -> tuple[str, ...]:
    """The 527 display names by class index: the output order of AudioSet taggers
    (0 "Speech", 137 "Music", 526 "Field recording").

    Raises:
        ValueError: the shipped file is not a class list indexed 0..526.
    """
    classes = sorted(read_audioset_class_labels(AUDIOSET_LABELS_CSV), key=lambda c: c.index)
    if [c.index for c in classes] != list(range(527)):
        raise ValueError(f"{AUDIOSET_LABELS_CSV}: expected AudioSet classes indexed 0..526, found {len(classes)} rows")
    return tuple(c.display_name for c in classes)
