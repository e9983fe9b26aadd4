"""EPIC-SOUNDS annotations (epic-kitchens/epic-sounds-annotations).

Three csv layouts, all LF, timestamps ``HH:MM:SS.fff`` (3 decimals), samples at 24 kHz:

* ``annotations`` (``EPIC_Sounds_{train,validation}.csv``): ``annotation_id,
  participant_id, video_id, start_timestamp, stop_timestamp, start_sample, stop_sample,
  description, class, class_id`` (44 classes, ids 0–43).
* ``test_timestamps`` (``EPIC_Sounds_recognition_test_timestamps.csv``): the first 7.
* ``not_categorised`` (``sound_events_not_categorised.csv``): the first 7 +
  ``description``; ids look like ``P01_01_NC_0``.

``start_sample``/``stop_sample`` are the authoritative positions: in the real files they
differ from ``round(timestamp * 24000)`` by up to one sample, so both are kept as read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from models.datasets.formats._common import expect_fields, first_row, format_csv, format_hms, match_header, parse_hms, parse_int, write_text

EPIC_SOUNDS_COLUMNS = ("annotation_id", "participant_id", "video_id", "start_timestamp", "stop_timestamp",
                       "start_sample", "stop_sample", "description", "class", "class_id")
EPIC_SOUNDS_LAYOUTS = {
    "annotations": EPIC_SOUNDS_COLUMNS,
    "test_timestamps": EPIC_SOUNDS_COLUMNS[:7],
    "not_categorised": EPIC_SOUNDS_COLUMNS[:8],
}
EPIC_SOUNDS_NUM_CLASSES = 44
EPIC_SOUNDS_SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class EpicSoundsSegment:
    """One EPIC-SOUNDS segment, from any of the three layouts.

    Attributes:
        annotation_id: Key, e.g. ``P01_11_0`` or ``P01_01_NC_0``.
        participant_id: e.g. ``P01``.
        video_id: e.g. ``P01_11``; the dataset name in the audio HDF5.
        start_timestamp: Start in seconds (3-decimal field).
        stop_timestamp: End in seconds.
        start_sample: First sample at 24 kHz.
        stop_sample: End sample at 24 kHz.
        description: Free-text description (``None`` in the test layout).
        class_name: The ``class`` column (``None`` unless the annotations layout).
        class_id: The ``class_id`` column, 0–43 (``None`` unless the annotations layout).
    """

    annotation_id: str
    participant_id: str
    video_id: str
    start_timestamp: float
    stop_timestamp: float
    start_sample: int
    stop_sample: int
    description: str | None = None
    class_name: str | None = None
    class_id: int | None = None

    @property
    def layout(self) -> str:
        """The smallest layout that holds this record's fields."""
        if self.class_id is not None or self.class_name is not None:
            return "annotations"
        return "not_categorised" if self.description is not None else "test_timestamps"


def read_epic_sounds(path: str | os.PathLike) -> list[EpicSoundsSegment]:
    """Read any EPIC-SOUNDS csv; the layout is recognised from the header.

    Args:
        path: ``EPIC_Sounds_{train,validation}.csv``, ``EPIC_Sounds_recognition_test_timestamps.csv``
            or ``sound_events_not_categorised.csv``.

    Returns:
        Segments in file order (fields absent from the layout are ``None``).

    Raises:
        FormatError: (a ``ValueError``) on another header, a wrong field count, a bad
            timestamp or integer.
    """
    (line, header), rows = first_row(path)
    layout = match_header(path, header, EPIC_SOUNDS_LAYOUTS, "EPIC-SOUNDS csv")
    n = len(EPIC_SOUNDS_LAYOUTS[layout])
    out = []
    for line, f in rows:
        expect_fields(path, line, f, n, header)
        seg = dict(annotation_id=f[0], participant_id=f[1], video_id=f[2],
                   start_timestamp=parse_hms(f[3], path, line, "start_timestamp"),
                   stop_timestamp=parse_hms(f[4], path, line, "stop_timestamp"),
                   start_sample=parse_int(f[5], path, line, "start_sample"),
                   stop_sample=parse_int(f[6], path, line, "stop_sample"))
        if n > 7:
            seg["description"] = f[7]
        if n > 8:
            seg["class_name"] = f[8]
            seg["class_id"] = parse_int(f[9], path, line, "class_id")
        out.append(EpicSoundsSegment(**seg))
    return out


def write_epic_sounds(path: str | os.PathLike, segments: Iterable[EpicSoundsSegment], layout: str | None = None,
                      line_terminator: str = "\n") -> None:
    """Write an EPIC-SOUNDS csv.

    Args:
        path: Output file (written atomically).
        segments: Segments.
        layout: ``"annotations"``, ``"test_timestamps"`` or ``"not_categorised"``; ``None``
            takes the richest layout any record needs (an empty list gives ``annotations``).
        line_terminator: Line end (the official files use LF).

    Raises:
        ValueError: On an unknown layout or a record missing a field the layout needs.
    """
    segments = list(segments)
    if layout is None:
        needed = {s.layout for s in segments} or {"annotations"}
        layout = max(needed, key=lambda name: len(EPIC_SOUNDS_LAYOUTS[name]))
    if layout not in EPIC_SOUNDS_LAYOUTS:
        raise ValueError(f"unknown EPIC-SOUNDS layout {layout!r}; expected one of {list(EPIC_SOUNDS_LAYOUTS)}")
    n = len(EPIC_SOUNDS_LAYOUTS[layout])
    rows: list[tuple] = [EPIC_SOUNDS_LAYOUTS[layout]]
    for s in segments:
        row = (s.annotation_id, s.participant_id, s.video_id, format_hms(s.start_timestamp, 3),
               format_hms(s.stop_timestamp, 3), int(s.start_sample), int(s.stop_sample),
               s.description, s.class_name, s.class_id)[:n]
        if any(v is None for v in row):
            raise ValueError(f"{s.annotation_id}: the {layout!r} layout needs {EPIC_SOUNDS_LAYOUTS[layout]}")
        rows.append(row)
    write_text(path, format_csv(rows, line_terminator))
