"""VGG-Sound annotation files (hche11/VGGSound ``data/``).

Three headerless csv files:

* ``vggsound.csv``: ``ytid,start,label,split`` for every clip, ``split`` in
  ``train``/``test``; labels containing commas are csv-quoted
  (``--9O4XZOge4,30,"female speech, woman speaking",train``). LF line ends.
* ``train.csv`` / ``test.csv``: ``<ytid>_<start:06d>.mp4,label``
  (``glLQrEijrKg_000300.mp4,playing hammond organ``). YouTube ids may themselves hold
  ``_`` and ``-``, so the file name is split at its *last* underscore. CRLF line ends.
* ``stat.csv``: ``label,count,category``, one row per class (309), CRLF, no newline after
  the last row.

The class index used by the VGG-Sound authors' loader is the position of the label in the
*sorted* class names (:func:`vggsound_class_order`).

Out of scope: the ``train.pkl`` / ``test.pkl`` annotation pickles used by the
auditory-slow-fast reference (pandas frames downloaded from Dropbox, converted from the csv
files above). They are not read or written here; convert from ``train.csv``/``test.csv``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable

from models.datasets.formats._common import FormatError, csv_rows, expect_fields, format_csv, header_error, parse_int, where, write_text

VGGSOUND_COLUMNS = ("ytid", "start", "label", "split")
VGGSOUND_SPLIT_COLUMNS = ("filename", "label")
VGGSOUND_STAT_COLUMNS = ("label", "count", "category")
VGGSOUND_SPLITS = ("train", "test")
VGGSOUND_NUM_CLASSES = 309
VGGSOUND_CLIP_SECONDS = 10

_SPLIT_FILENAME = re.compile(r"(.+)_(\d{6,})\.mp4")


@dataclass(frozen=True)
class VggSoundClip:
    """One VGG-Sound clip: ``label`` sounds in YouTube video ``ytid`` from ``start`` s for 10 s.

    Attributes:
        ytid: YouTube id, an opaque key (may contain ``-`` and ``_``, may start with ``-``).
        start: Start of the clip in whole seconds.
        label: Class name, as in ``stat.csv``.
        split: ``"train"`` or ``"test"`` where known (always for ``vggsound.csv``; for
            ``train.csv``/``test.csv`` only if the caller names it), else ``None``.
    """

    ytid: str
    start: int
    label: str
    split: str | None = None

    @property
    def end(self) -> int:
        """End of the clip in seconds (``start + 10``)."""
        return self.start + VGGSOUND_CLIP_SECONDS

    @property
    def filename(self) -> str:
        """``<ytid>_<start:06d>.mp4``, the clip's name in ``train.csv``/``test.csv``."""
        return f"{self.ytid}_{self.start:06d}.mp4"


@dataclass(frozen=True)
class VggSoundClass:
    """One row of ``stat.csv``: a class name, its clip count and its super-category."""

    label: str
    count: int
    category: str


def parse_vggsound_filename(name: str) -> tuple[str, int]:
    """Split ``<ytid>_<start:06d>.mp4`` into ``(ytid, start)`` at the last underscore.

    Args:
        name: Clip file name, e.g. ``"LDo_Xsip0BEQ_000177.mp4"``.

    Returns:
        ``("LDo_Xsip0BEQ", 177)``.

    Raises:
        ValueError: If the name does not follow the pattern.
    """
    m = _SPLIT_FILENAME.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not a VGG-Sound clip name <ytid>_<start:06d>.mp4")
    return m.group(1), int(m.group(2))


def _check_ytid(ytid: str) -> str:
    if not ytid or any(c in ytid for c in ",\"\r\n\t "):
        raise ValueError(f"YouTube id {ytid!r} is empty or contains a separator")
    return ytid


def read_vggsound_csv(path: str | os.PathLike) -> list[VggSoundClip]:
    """Read ``vggsound.csv`` (no header: ``ytid,start,label,split``).

    Args:
        path: The file.

    Returns:
        The clips in file order, each with its ``split``.

    Raises:
        FormatError: (a ``ValueError``) on a header line, a wrong field count, a non-integer
            start or a split other than ``train``/``test``.
    """
    clips = []
    for line, fields in csv_rows(path):
        if line == 1 and (len(fields) != 4 or not fields[1].isdigit()):
            raise header_error(path, "VGG-Sound vggsound.csv",
                               "no header and rows ytid,start,label,split (e.g. ---g-f_I2yQ,1,people marching,test)", fields)
        expect_fields(path, line, fields, 4, VGGSOUND_COLUMNS)
        ytid, start, label, split = fields
        if split not in VGGSOUND_SPLITS:
            raise FormatError(f"{where(path, line)}: column 'split' must be one of {VGGSOUND_SPLITS}; found {split!r}")
        clips.append(VggSoundClip(ytid, parse_int(start, path, line, "start"), label, split))
    if not clips:
        raise header_error(path, "VGG-Sound vggsound.csv", "rows ytid,start,label,split", None)
    return clips


def write_vggsound_csv(path: str | os.PathLike, clips: Iterable[VggSoundClip], line_terminator: str = "\n") -> None:
    """Write ``vggsound.csv`` (no header; labels with commas quoted), readable by :func:`read_vggsound_csv`.

    Args:
        path: Output file (written atomically).
        clips: Clips; each needs ``split`` set to ``train`` or ``test``.
        line_terminator: Line end (the copy in ``tests/data/real`` uses LF).
    """
    rows = []
    for c in clips:
        if c.split not in VGGSOUND_SPLITS:
            raise ValueError(f"clip {c} has no split; vggsound.csv needs one of {VGGSOUND_SPLITS}")
        rows.append((_check_ytid(c.ytid), int(c.start), c.label, c.split))
    write_text(path, format_csv(rows, line_terminator))


def read_vggsound_split_csv(path: str | os.PathLike, split: str | None = None) -> list[VggSoundClip]:
    """Read ``train.csv`` or ``test.csv`` (no header: ``<ytid>_<start:06d>.mp4,label``).

    Args:
        path: The file.
        split: Value for every record's ``split`` (e.g. ``"test"``); ``None`` leaves it unset.

    Returns:
        The clips in file order.

    Raises:
        FormatError: (a ``ValueError``) on a wrong field count or a file name that is not
            ``<ytid>_<start:06d>.mp4``.
    """
    clips = []
    for line, fields in csv_rows(path):
        if line == 1 and (len(fields) != 2 or _SPLIT_FILENAME.fullmatch(fields[0]) is None):
            raise header_error(path, "VGG-Sound train/test csv",
                               "no header and rows <ytid>_<start:06d>.mp4,label", fields)
        expect_fields(path, line, fields, 2, VGGSOUND_SPLIT_COLUMNS)
        try:
            ytid, start = parse_vggsound_filename(fields[0])
        except ValueError as e:
            raise FormatError(f"{where(path, line)}: {e}") from None
        clips.append(VggSoundClip(ytid, start, fields[1], split))
    if not clips:
        raise header_error(path, "VGG-Sound train/test csv", "rows <ytid>_<start:06d>.mp4,label", None)
    return clips


def write_vggsound_split_csv(path: str | os.PathLike, clips: Iterable[VggSoundClip], line_terminator: str = "\r\n") -> None:
    """Write ``train.csv``/``test.csv`` rows ``<ytid>_<start:06d>.mp4,label`` (``split`` is not stored).

    Args:
        path: Output file (written atomically).
        clips: Clips.
        line_terminator: Line end; the official files use CRLF.
    """
    rows = [(f"{_check_ytid(c.ytid)}_{int(c.start):06d}.mp4", c.label) for c in clips]
    write_text(path, format_csv(rows, line_terminator))


def read_vggsound_stat(path: str | os.PathLike) -> list[VggSoundClass]:
    """Read ``stat.csv`` (no header: ``label,count,category``).

    Args:
        path: The file.

    Returns:
        One record per class in file order (309 for the official file).

    Raises:
        FormatError: (a ``ValueError``) on a wrong field count, a non-integer count or a
            repeated label.
    """
    classes, seen = [], set()
    for line, fields in csv_rows(path):
        if line == 1 and (len(fields) != 3 or not fields[1].isdigit()):
            raise header_error(path, "VGG-Sound stat.csv",
                               "no header and rows label,count,category (e.g. ambulance siren,1050,vehicle)", fields)
        expect_fields(path, line, fields, 3, VGGSOUND_STAT_COLUMNS)
        label, count, category = fields
        if label in seen:
            raise FormatError(f"{where(path, line)}: class {label!r} appears twice")
        seen.add(label)
        classes.append(VggSoundClass(label, parse_int(count, path, line, "count"), category))
    if not classes:
        raise header_error(path, "VGG-Sound stat.csv", "rows label,count,category", None)
    return classes


def write_vggsound_stat(path: str | os.PathLike, classes: Iterable[VggSoundClass], line_terminator: str = "\r\n",
                        final_newline: bool = False) -> None:
    """Write ``stat.csv`` as the official file has it (CRLF, no newline after the last row).

    Args:
        path: Output file (written atomically).
        classes: Class rows.
        line_terminator: Line end.
        final_newline: Whether to end the last row with ``line_terminator``.
    """
    rows = [(c.label, int(c.count), c.category) for c in classes]
    write_text(path, format_csv(rows, line_terminator, final_newline))


def vggsound_class_order(stat_rows: Iterable[VggSoundClass | str]) -> list[str]:
    """Class names in index order: sorted, as the VGG-Sound authors' loader numbers them.

    Args:
        stat_rows: Rows of ``stat.csv`` (or bare class names).

    Returns:
        ``sorted`` class names; a label's class id is its position in this list.
    """
    return sorted(r if isinstance(r, str) else r.label for r in stat_rows)
