"""Shared plumbing for the annotation-format readers and writers.

Everything here is private to :mod:`models.datasets.formats`: the error type, strict
header checks, typed field parsers that name the file, line and column they fail on,
``HH:MM:SS.ff`` timestamp conversion and an atomic text writer that controls line
endings and the final newline byte for byte.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, Sequence


class FormatError(ValueError):
    """A file does not have the layout its reader expects.

    Subclasses :class:`ValueError`, so ``except ValueError`` catches it. The message always
    names the file, and where it applies the line, what was expected and what was found.
    """


def where(path: str | os.PathLike, line: int | None = None) -> str:
    """``path`` or ``path:line`` for error messages."""
    return f"{os.fspath(path)}:{line}" if line is not None else os.fspath(path)


def header_error(path: str | os.PathLike, what: str, expected: Sequence[str] | str, found: object) -> FormatError:
    """The error for a file whose header (or first row) is not the expected one.

    Args:
        path: The file read.
        what: Human name of the format, e.g. ``"EPIC-KITCHENS-100 annotation csv"``.
        expected: The expected header columns, or a sentence describing them.
        found: What the first line actually held (``None``: the file is empty).

    Returns:
        A :class:`FormatError` to raise.
    """
    if not isinstance(expected, str):
        expected = ",".join(expected)
    found_text = "an empty file" if found is None else repr(found)
    return FormatError(f"{where(path)}: not in the {what} layout: expected {expected}; found {found_text}")


def open_text(path: str | os.PathLike):
    """Open a text file for :mod:`csv` (``newline=""``; a UTF-8 byte-order mark is dropped)."""
    return open(path, newline="", encoding="utf-8-sig")


def csv_rows(path: str | os.PathLike, delimiter: str = ",", skipinitialspace: bool = False) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for the non-blank rows of a csv file.

    Args:
        path: File to read.
        delimiter: Field separator.
        skipinitialspace: Ignore spaces after a delimiter (AudioSet's ``", "``).

    Yields:
        The 1-based line number where the row ends and its fields.
    """
    with open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter, skipinitialspace=skipinitialspace)
        for fields in reader:
            if not fields or fields == [""]:
                continue
            yield reader.line_num, fields


def tsv_lines(path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` of a plain (unquoted) tab-separated file.

    DESED/DCASE TSVs are not csv-quoted: a ``"`` in a file name is an ordinary character,
    so they are split on tabs rather than read with :mod:`csv`. Blank lines are skipped.
    """
    with open(path, encoding="utf-8-sig", newline=None) as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if line == "":
                continue
            yield number, line.split("\t")


def expect_fields(path: str | os.PathLike, line: int, fields: Sequence[str], count: int, columns: Sequence[str]) -> None:
    """Raise unless a row has exactly ``count`` fields."""
    if len(fields) != count:
        raise FormatError(
            f"{where(path, line)}: expected {count} fields ({','.join(columns)}); found {len(fields)}: {list(fields)!r}")


def parse_int(text: str, path: str | os.PathLike, line: int, column: str) -> int:
    """``int(text)`` or a :class:`FormatError` naming file, line and column."""
    try:
        return int(text)
    except ValueError:
        raise FormatError(f"{where(path, line)}: column {column!r} must be an integer; found {text!r}") from None


def parse_float(text: str, path: str | os.PathLike, line: int, column: str) -> float:
    """``float(text)`` or a :class:`FormatError` naming file, line and column."""
    try:
        return float(text)
    except ValueError:
        raise FormatError(f"{where(path, line)}: column {column!r} must be a number; found {text!r}") from None


_HMS = re.compile(r"(\d+):([0-5]\d):([0-5]\d)(?:\.(\d+))?")


def parse_hms(text: str, path: str | os.PathLike | None = None, line: int | None = None, column: str = "timestamp") -> float:
    """Seconds from an ``HH:MM:SS[.fff]`` timestamp, exactly rounded.

    The value is computed as one integer division (``units / 10**digits``), so
    ``parse_hms("00:13:07.21") == 787.21`` holds exactly.

    Args:
        text: The timestamp.
        path: File, for the error message.
        line: Line, for the error message.
        column: Column name, for the error message.

    Returns:
        The time in seconds.

    Raises:
        FormatError: If ``text`` is not ``HH:MM:SS`` with an optional decimal fraction.
    """
    m = _HMS.fullmatch(text)
    if m is None:
        loc = f"{where(path, line)}: " if path is not None else ""
        raise FormatError(f"{loc}column {column!r} must be a HH:MM:SS.ff timestamp; found {text!r}")
    h, mi, s, frac = m.groups()
    frac = frac or ""
    units = ((int(h) * 60 + int(mi)) * 60 + int(s)) * 10 ** len(frac) + (int(frac) if frac else 0)
    return units / 10 ** len(frac)


def format_hms(seconds: float, decimals: int) -> str:
    """``HH:MM:SS.ff`` with ``decimals`` fraction digits (the inverse of :func:`parse_hms`).

    Args:
        seconds: Non-negative time in seconds.
        decimals: Fraction digits (EPIC start/stop: 2; narration and EPIC-SOUNDS: 3).

    Returns:
        The timestamp text; hours take more than two digits when needed.
    """
    if not seconds >= 0:
        raise ValueError(f"timestamps must be non-negative seconds; got {seconds!r}")
    scale = 10 ** decimals
    units = round(seconds * scale)
    whole, frac = divmod(units, scale)
    h, rest = divmod(whole, 3600)
    mi, s = divmod(rest, 60)
    text = f"{h:02d}:{mi:02d}:{s:02d}"
    return f"{text}.{frac:0{decimals}d}" if decimals else text


def check_plain(value: str, what: str, forbidden: str = "\t\r\n") -> str:
    """Return ``value`` unless it holds a character that would break the row layout."""
    bad = [c for c in forbidden if c in value]
    if bad:
        raise ValueError(f"{what} {value!r} contains {bad!r}, which this format cannot hold")
    return value


def format_csv(rows: Iterable[Sequence[object]], line_terminator: str = "\n", final_newline: bool = True,
               delimiter: str = ",") -> str:
    """Rows as csv text, minimal quoting (fields with the delimiter, quotes or newlines).

    Args:
        rows: Rows of already formatted fields (``str()`` is applied).
        line_terminator: ``"\\n"`` or ``"\\r\\n"``, as the real file has it.
        final_newline: Whether the last row ends with ``line_terminator`` (some real
            files, e.g. VGG-Sound ``stat.csv``, do not).

    Returns:
        The file text.
    """
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=line_terminator, quoting=csv.QUOTE_MINIMAL).writerows(rows)
    text = out.getvalue()
    if not final_newline and text.endswith(line_terminator):
        text = text[: -len(line_terminator)]
    return text


def join_lines(lines: Iterable[str], line_terminator: str = "\n", final_newline: bool = True) -> str:
    """Join pre-formatted lines with ``line_terminator``."""
    text = line_terminator.join(lines)
    return text + line_terminator if final_newline and text else text


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 with no newline translation, atomically (temp file, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def first_row(path: str | os.PathLike, delimiter: str = ",") -> tuple[tuple[int | None, list[str] | None], Iterator]:
    """The first non-blank csv row (``(None, None)`` for an empty file) and an iterator over the rest."""
    rows = csv_rows(path, delimiter=delimiter)
    return next(rows, (None, None)), rows


def match_header(path: str | os.PathLike, fields: Sequence[str] | None, allowed: dict[str, Sequence[str]],
                 what: str) -> str:
    """Name of the layout in ``allowed`` whose columns equal ``fields`` exactly.

    Args:
        path: The file, for the error message.
        fields: The header row read (``None`` for an empty file).
        allowed: Layout name -> exact column names.
        what: Human name of the format.

    Returns:
        The matching layout name.

    Raises:
        FormatError: If no layout matches; the message lists every accepted header.
    """
    if fields is not None:
        for name, columns in allowed.items():
            if tuple(fields) == tuple(columns):
                return name
    expected = " or ".join(f"the header {','.join(c)!r}" for c in allowed.values())
    raise header_error(path, what, expected, ",".join(fields) if fields is not None else None)
