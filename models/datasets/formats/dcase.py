"""DESED / DCASE task 4 metadata TSVs (turpaultn/DCASE2019_task4, DCASE-REPO/DESED_task).

Tab-separated, not csv-quoted, LF line ends, one header line:

* weak: ``filename<TAB>event_labels``, labels comma-joined
  (``Y-6p32k2WUCs_0.000_10.000.wav<TAB>Alarm_bell_ringing,Speech``);
* strong: ``filename<TAB>onset<TAB>offset<TAB>event_label``, one row per event. A row whose
  onset, offset and label are all empty means "this clip has no event": the clip stays in
  the file list but yields no :class:`~models.core.events.LabeledEvent`;
* unlabeled: ``filename`` only.

File names are opaque keys: ``Y<ytid>_<start>_<end>.wav``, ``<ytid>_<start>_<end>.wav`` or
``10.wav`` all occur. Strong events use the project's shared
:class:`models.core.events.LabeledEvent`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from models.core.events import DCASE_STRONG_HEADER, LabeledEvent

from models.datasets.formats._common import FormatError, check_plain, expect_fields, header_error, join_lines, parse_float, tsv_lines, where, \
    write_text

DCASE_WEAK_HEADER = ("filename", "event_labels")
DCASE_UNLABELED_HEADER = ("filename",)


@dataclass(frozen=True)
class WeakLabel:
    """One clip of a weak-label TSV: the classes present somewhere in ``filename``."""

    filename: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class StrongLabels:
    """The content of a strong-label TSV.

    Attributes:
        files: Every clip named in the file, in first-appearance order, including clips
            whose only row is empty (no event).
        events: The events in file order.
    """

    files: tuple[str, ...]
    events: tuple[LabeledEvent, ...]

    @property
    def empty_files(self) -> tuple[str, ...]:
        """Clips listed without any event."""
        with_events = {e.filename for e in self.events}
        return tuple(f for f in self.files if f not in with_events)

    def events_for(self, filename: str) -> tuple[LabeledEvent, ...]:
        """The events of one clip, in file order."""
        return tuple(e for e in self.events if e.filename == filename)

    @classmethod
    def from_events(cls, events: Iterable[LabeledEvent], files: Iterable[str] = ()) -> "StrongLabels":
        """Build from events; ``files`` may add clips without events (and fixes the order of those it names).

        Args:
            events: Events, any order (kept as given).
            files: Clips to list first, in this order; clips of events not named here follow
                in first-appearance order.
        """
        events = tuple(events)
        order = dict.fromkeys(files)
        order.update(dict.fromkeys(e.filename for e in events))
        return cls(tuple(order), events)


def _read_header(path, expected: tuple[str, ...], what: str):
    lines = tsv_lines(path)
    line, header = next(lines, (None, None))
    if header is None or tuple(header) != expected:
        raise header_error(path, what, f"the tab-separated header {' '.join(expected)!r}",
                           "\t".join(header) if header is not None else None)
    return lines


def read_dcase_weak(path: str | os.PathLike) -> list[WeakLabel]:
    """Read a weak-label TSV (``filename<TAB>event_labels``).

    Returns:
        One record per row, labels split at commas (an empty field gives ``()``).

    Raises:
        FormatError: (a ``ValueError``) on another header or a row without two fields.
    """
    out = []
    for line, f in _read_header(path, DCASE_WEAK_HEADER, "DCASE weak-label TSV"):
        expect_fields(path, line, f, 2, DCASE_WEAK_HEADER)
        out.append(WeakLabel(f[0], tuple(x for x in f[1].split(",") if x)))
    return out


def write_dcase_weak(path: str | os.PathLike, clips: Iterable[WeakLabel]) -> None:
    """Write a weak-label TSV (labels comma-joined, LF)."""
    lines = ["\t".join(DCASE_WEAK_HEADER)]
    for c in clips:
        check_plain(c.filename, "file name")
        for label in c.labels:
            check_plain(label, "label", "\t\r\n,")
        lines.append(f"{c.filename}\t{','.join(c.labels)}")
    write_text(path, join_lines(lines))


def read_dcase_strong(path: str | os.PathLike) -> StrongLabels:
    """Read a strong-label TSV (``filename onset offset event_label``), keeping clips without events.

    Args:
        path: e.g. DESED ``validation.tsv``, ``public.tsv``, ``synthetic.tsv``.

    Returns:
        Every clip named (rows with empty onset, offset and label add the clip but no event)
        and the events.

    Raises:
        FormatError: (a ``ValueError``) on another header, a row that is only partly empty,
            a non-numeric time or an offset before its onset.
    """
    files: dict[str, None] = {}
    events = []
    for line, f in _read_header(path, DCASE_STRONG_HEADER, "DCASE strong-label TSV"):
        expect_fields(path, line, f, 4, DCASE_STRONG_HEADER)
        filename, onset, offset, label = f
        files.setdefault(filename)
        if onset == offset == label == "":
            continue
        if "" in (onset, offset, label):
            raise FormatError(f"{where(path, line)}: onset, offset and event_label must be all set or all empty; "
                              f"found {f!r}")
        try:
            events.append(LabeledEvent(filename, parse_float(onset, path, line, "onset"),
                                       parse_float(offset, path, line, "offset"), label))
        except FormatError:
            raise
        except ValueError as e:
            raise FormatError(f"{where(path, line)}: {e}") from None
    return StrongLabels(tuple(files), tuple(events))


def _format_time(value: float, decimals: int | None) -> str:
    return repr(float(value)) if decimals is None else f"{value:.{decimals}f}"


def write_dcase_strong(path: str | os.PathLike, labels: StrongLabels | Iterable[LabeledEvent],
                       decimals: int | None = 3) -> None:
    """Write a strong-label TSV; clips without events get a row with empty onset, offset and label.

    Rows are grouped by clip in ``labels.files`` order, events in their given order, so a
    file read with :func:`read_dcase_strong` is written back unchanged when its rows were
    grouped by clip (as DESED's are). Unlike :func:`models.core.events.write_strong_tsv`, events
    are not re-sorted.

    Args:
        path: Output file (written atomically).
        labels: A :class:`StrongLabels`, or bare events (then no empty clips).
        decimals: Fraction digits of onset/offset (DESED validation/public: 3); ``None``
            writes Python's shortest round-trip ``repr`` (DESED 2019 ``synthetic.tsv``).
    """
    if not isinstance(labels, StrongLabels):
        labels = StrongLabels.from_events(labels)
    by_file: dict[str, list[LabeledEvent]] = {f: [] for f in labels.files}
    for e in labels.events:
        if e.filename not in by_file:
            raise ValueError(f"event {e} names a clip missing from StrongLabels.files")
        by_file[e.filename].append(e)
    lines = ["\t".join(DCASE_STRONG_HEADER)]
    for filename, events in by_file.items():
        check_plain(filename, "file name")
        if not events:
            lines.append(f"{filename}\t\t\t")
        for e in events:
            check_plain(e.label, "label")
            lines.append(f"{filename}\t{_format_time(e.onset, decimals)}\t{_format_time(e.offset, decimals)}\t{e.label}")
    write_text(path, join_lines(lines))


def read_dcase_unlabeled(path: str | os.PathLike) -> list[str]:
    """Read an unlabeled-clip TSV (header ``filename``, one file name per line).

    Returns:
        The file names in order.

    Raises:
        FormatError: (a ``ValueError``) on another header or a row with a tab.
    """
    out = []
    for line, f in _read_header(path, DCASE_UNLABELED_HEADER, "DCASE unlabeled-clip TSV"):
        expect_fields(path, line, f, 1, DCASE_UNLABELED_HEADER)
        out.append(f[0])
    return out


def write_dcase_unlabeled(path: str | os.PathLike, filenames: Iterable[str]) -> None:
    """Write an unlabeled-clip TSV (header ``filename``, LF)."""
    lines = ["filename"] + [check_plain(name, "file name") for name in filenames]
    write_text(path, join_lines(lines))
