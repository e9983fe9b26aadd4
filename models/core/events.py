"""Labelled sound events and the DCASE strong-label TSV they travel in.

One record type for every producer and consumer of timed events: the synthetic world's
ground truth, the live pipeline's detections, dataset readers and the metrics.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

DCASE_STRONG_HEADER = ("filename", "onset", "offset", "event_label")


@dataclass(frozen=True, order=True)
class LabeledEvent:
    """One event: ``label`` sounds in ``filename`` from ``onset`` to ``offset`` seconds."""

    filename: str
    onset: float
    offset: float
    label: str

    def __post_init__(self) -> None:
        if not self.offset >= self.onset:
            raise ValueError(f"event offset {self.offset} precedes its onset {self.onset} ({self.label!r} in {self.filename!r})")

    @property
    def duration(self) -> float:
        return self.offset - self.onset


def format_strong_tsv(events: Iterable[LabeledEvent], decimals: int = 3) -> str:
    """The DCASE strong-label TSV text (header ``filename onset offset event_label``)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(DCASE_STRONG_HEADER)
    for e in sorted(events):
        writer.writerow((e.filename, f"{e.onset:.{decimals}f}", f"{e.offset:.{decimals}f}", e.label))
    return out.getvalue()


def write_strong_tsv(path: str | os.PathLike, events: Iterable[LabeledEvent], decimals: int = 3) -> None:
    """Write events as a DCASE strong-label TSV (atomically: temp file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(format_strong_tsv(events, decimals))
    os.replace(tmp, path)


def read_strong_tsv(path: str | os.PathLike) -> list[LabeledEvent]:
    """Read a DCASE strong-label TSV; rows with an empty onset, offset or label are skipped
    (DESED marks clips without events that way)."""
    events = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = set(DCASE_STRONG_HEADER) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: expected the columns {DCASE_STRONG_HEADER}, found {reader.fieldnames}")
        for row in reader:
            if not (row["onset"] and row["offset"] and row["event_label"]):
                continue
            events.append(LabeledEvent(row["filename"], float(row["onset"]), float(row["offset"]), row["event_label"]))
    return events
