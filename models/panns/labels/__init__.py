"""The 527 AudioSet class names in PANNs output order.

``class_labels_indices.csv`` (``index,mid,display_name``) is the AudioSet ontology's class list
(CC BY 4.0, Google), the same file the PANNs repository keeps as
``metadata/class_labels_indices.csv`` (git blob 3a2767e8); output ``i`` of a PANNs network is
row ``i`` (0 "Speech", 137 "Music", 526 "Field recording"). See THIRD_PARTY_NOTICES.md.
"""
from __future__ import annotations

import csv
import functools
from pathlib import Path

__all__ = ["AUDIOSET_LABELS_CSV", "audioset_labels"]

AUDIOSET_LABELS_CSV = Path(__file__).with_name("class_labels_indices.csv")


@functools.lru_cache(maxsize=1)
def audioset_labels() -> tuple[str, ...]:
    """The 527 display names, by class index (names hold commas: read as CSV).

    Raises:
        ValueError: the file is not the expected ``index,mid,display_name`` table of 527 rows.
    """
    with AUDIOSET_LABELS_CSV.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["index", "mid", "display_name"]:
        raise ValueError(f"{AUDIOSET_LABELS_CSV}: expected the header index,mid,display_name, found {rows[:1]}")
    names = [r[2] for r in rows[1:]]
    if [int(r[0]) for r in rows[1:]] != list(range(len(names))) or len(names) != 527:
        raise ValueError(f"{AUDIOSET_LABELS_CSV}: expected 527 rows indexed 0..526, found {len(names)}")
    return tuple(names)
