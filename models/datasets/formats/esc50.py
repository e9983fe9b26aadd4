"""ESC-50 metadata (karolpiczak/ESC-50).

Two headers for the same rows, both read into :class:`Esc50Clip`:

* current ``meta/esc50.csv``: ``filename,fold,target,category,esc10,src_file,take``
  (``target`` = class id 0–49, ``category`` = class name);
* older ``esc50.csv``: ``filename,fold,category,category_name,esc10,src_file,take``
  (here ``category`` is the integer class id and ``category_name`` the name).

``fold`` is 1–5 (the official cross-validation folds), ``esc10`` is ``True``/``False``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from models.datasets.formats._common import FormatError, expect_fields, first_row, format_csv, match_header, parse_int, where, write_text

ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
ESC50_OLDER_COLUMNS = ("filename", "fold", "category", "category_name", "esc10", "src_file", "take")
ESC50_LAYOUTS = {"current": ESC50_COLUMNS, "older": ESC50_OLDER_COLUMNS}
ESC50_FOLDS = (1, 2, 3, 4, 5)
ESC50_NUM_CLASSES = 50


@dataclass(frozen=True)
class Esc50Clip:
    """One ESC-50 clip.

    Attributes:
        filename: e.g. ``1-100032-A-0.wav`` (``<fold>-<src_file>-<take>-<target>.wav``).
        fold: Cross-validation fold, 1–5.
        target: Class id, 0–49.
        category: Class name, e.g. ``dog``.
        esc10: Whether the clip belongs to the ESC-10 subset.
        src_file: Freesound source id (kept as text).
        take: Take letter, e.g. ``A``.
    """

    filename: str
    fold: int
    target: int
    category: str
    esc10: bool
    src_file: str
    take: str


def _parse_bool(text: str, path, line: int) -> bool:
    if text in ("True", "False"):
        return text == "True"
    raise FormatError(f"{where(path, line)}: column 'esc10' must be True or False; found {text!r}")


def read_esc50(path: str | os.PathLike) -> list[Esc50Clip]:
    """Read ESC-50 metadata in the current or the older header layout.

    Args:
        path: ``meta/esc50.csv`` (current) or ``esc50.csv`` (older layout).

    Returns:
        Clips in file order.

    Raises:
        FormatError: (a ``ValueError``) on another header, a fold outside 1–5, a bad class
            id or ``esc10`` value.
    """
    (line, header), rows = first_row(path)
    match_header(path, header, ESC50_LAYOUTS, "ESC-50 metadata csv")
    out = []
    for line, f in rows:
        expect_fields(path, line, f, 7, header)
        # Same column order in both layouts; only the names differ (older: 'category' is
        # the id and 'category_name' the name).
        filename, fold, target, category, esc10, src_file, take = f
        fold_n = parse_int(fold, path, line, "fold")
        if fold_n not in ESC50_FOLDS:
            raise FormatError(f"{where(path, line)}: column 'fold' must be one of {ESC50_FOLDS}; found {fold!r}")
        target_n = parse_int(target, path, line, header[2])
        if not 0 <= target_n < ESC50_NUM_CLASSES:
            raise FormatError(f"{where(path, line)}: column {header[2]!r} must be a class id 0-49; found {target!r}")
        out.append(Esc50Clip(filename, fold_n, target_n, category, _parse_bool(esc10, path, line), src_file, take))
    return out


def write_esc50(path: str | os.PathLike, clips: Iterable[Esc50Clip], layout: str = "current",
                line_terminator: str = "\n") -> None:
    """Write ESC-50 metadata.

    Args:
        path: Output file (written atomically).
        clips: Clips.
        layout: ``"current"`` (``target,category``) or ``"older"`` (``category,category_name``);
            the column order is the same, only the header differs.
        line_terminator: Line end.
    """
    if layout not in ESC50_LAYOUTS:
        raise ValueError(f"unknown ESC-50 layout {layout!r}; expected one of {list(ESC50_LAYOUTS)}")
    rows: list[tuple] = [ESC50_LAYOUTS[layout]]
    rows += [(c.filename, int(c.fold), int(c.target), c.category, "True" if c.esc10 else "False", c.src_file, c.take)
             for c in clips]
    write_text(path, format_csv(rows, line_terminator))


def esc50_class_names(clips: Iterable[Esc50Clip]) -> list[str]:
    """Class names indexed by ``target``, as found in the clips.

    Raises:
        ValueError: If a target maps to two names, or the targets seen are not ``0 .. n-1``.
    """
    names: dict[int, str] = {}
    for c in clips:
        if names.setdefault(c.target, c.category) != c.category:
            raise ValueError(f"class id {c.target} is both {names[c.target]!r} and {c.category!r}")
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"class ids seen are not 0..{len(names) - 1}: {sorted(names)}")
    return [names[i] for i in range(len(names))]
