"""EPIC-KITCHENS-100 annotations (epic-kitchens/epic-kitchens-100-annotations) and EPIC audio HDF5.

Files:

* ``EPIC_100_{train,validation}.csv``: 15 columns (:data:`EPIC100_COLUMNS`);
  ``EPIC_100_test_timestamps.csv``: the first 8. ``start/stop_timestamp`` are
  ``HH:MM:SS.ff`` (2 decimals), ``narration_timestamp`` ``HH:MM:SS.fff`` (3); frames are at
  the video's fps. ``all_nouns``/``all_noun_classes`` are Python list literals
  (``"['paper', 'bin']"``, ``"[49, 36]"``). LF line ends.
* ``EPIC_100_{verb,noun}_classes.csv``: ``id,key,instances,category`` (97 verbs, 300
  nouns), ``instances`` a Python list literal; CRLF, no newline after the last row.
* ``EPIC_100_video_info.csv``: ``video_id,duration,fps,resolution``.
* Audio: the auditory-slow-fast reference keeps all EPIC audio in ONE HDF5 file, one 1-D
  float dataset per ``video_id`` at 24 kHz; a segment is
  ``wave[round(start*24000):round(stop*24000)]`` (:class:`EpicAudioHDF5`).

The ``.pkl`` versions of the annotation tables (pandas frames indexed by ``narration_id``)
are out of scope; the csv files hold the same table.
"""
from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from models.datasets.formats._common import (FormatError, expect_fields, first_row, format_csv, format_hms, header_error, match_header,
                      parse_float, parse_hms, parse_int, where, write_text)

EPIC100_COLUMNS = ("narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
                   "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
                   "noun_class", "all_nouns", "all_noun_classes")
EPIC100_TEST_COLUMNS = EPIC100_COLUMNS[:8]
EPIC100_CLASS_COLUMNS = ("id", "key", "instances", "category")
EPIC100_VIDEO_INFO_COLUMNS = ("video_id", "duration", "fps", "resolution")
EPIC100_NUM_VERBS = 97
EPIC100_NUM_NOUNS = 300
EPIC_AUDIO_SAMPLE_RATE = 24_000
#: Where EPIC-KITCHENS-100 keeps a video's pictures under the dataset root: the extracted frames
#: (1-based numbers at the video's fps, which ``start_frame``/``stop_frame`` count) or the video.
EPIC_RGB_FRAME = "{participant}/rgb_frames/{video_id}/frame_{number:010d}.jpg"
EPIC_VIDEO_FILE = "{participant}/videos/{video_id}.MP4"


@dataclass(frozen=True)
class EpicNarration:
    """One EPIC-KITCHENS-100 action segment (a row of the annotation or test-timestamp csv).

    Times are seconds (floats); the label fields are ``None`` for test-timestamp rows.

    Attributes:
        narration_id: ``<video_id>_<n>``, the key (index of the reference's .pkl).
        participant_id: e.g. ``P01``.
        video_id: e.g. ``P01_11``.
        narration_timestamp: When the narration was spoken (3-decimal field).
        start_timestamp: Segment start (2-decimal field).
        stop_timestamp: Segment end (2-decimal field).
        start_frame: First frame at the video's fps.
        stop_frame: Last frame.
        narration: Free-text narration.
        verb: Verb key as narrated-then-mapped (e.g. ``put-down``).
        verb_class: Verb class id (0–96).
        noun: Main noun key.
        noun_class: Noun class id (0–299).
        all_nouns: Every noun in the narration.
        all_noun_classes: Their class ids.
    """

    narration_id: str
    participant_id: str
    video_id: str
    narration_timestamp: float
    start_timestamp: float
    stop_timestamp: float
    start_frame: int
    stop_frame: int
    narration: str | None = None
    verb: str | None = None
    verb_class: int | None = None
    noun: str | None = None
    noun_class: int | None = None
    all_nouns: tuple[str, ...] | None = None
    all_noun_classes: tuple[int, ...] | None = None

    @property
    def has_labels(self) -> bool:
        """Whether the verb/noun fields are set (``False`` for test-timestamp rows)."""
        return self.verb_class is not None

    def start_sample(self, sample_rate: int = EPIC_AUDIO_SAMPLE_RATE) -> int:
        """``round(start_timestamp * sample_rate)``, the reference's first audio sample."""
        return round(self.start_timestamp * sample_rate)

    def stop_sample(self, sample_rate: int = EPIC_AUDIO_SAMPLE_RATE) -> int:
        """``round(stop_timestamp * sample_rate)``, one past the reference's last audio sample."""
        return round(self.stop_timestamp * sample_rate)


@dataclass(frozen=True)
class EpicClass:
    """One row of ``EPIC_100_verb_classes.csv`` / ``EPIC_100_noun_classes.csv``."""

    id: int
    key: str
    instances: tuple[str, ...]
    category: str


@dataclass(frozen=True)
class EpicVideoInfo:
    """One row of ``EPIC_100_video_info.csv`` (duration in seconds, ``resolution`` ``WxH``)."""

    video_id: str
    duration: float
    fps: float
    resolution: str

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` parsed from ``resolution``."""
        w, h = self.resolution.lower().split("x")
        return int(w), int(h)


def _literal_list(text: str, kind: type, path, line: int, column: str) -> tuple:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        raise FormatError(
            f"{where(path, line)}: column {column!r} must be a Python list of {kind.__name__}; found {text!r}")
    return tuple(value)


def read_epic100_annotations(path: str | os.PathLike) -> list[EpicNarration]:
    """Read an EPIC-KITCHENS-100 annotation csv (15 columns) or test-timestamp csv (8 columns).

    Args:
        path: ``EPIC_100_train.csv``, ``EPIC_100_validation.csv`` or ``EPIC_100_test_timestamps.csv``.

    Returns:
        The segments in file order; label fields are ``None`` for the 8-column layout.

    Raises:
        FormatError: (a ``ValueError``) on another header, a wrong field count, a bad
            timestamp, integer or list literal.
    """
    (line, header), rows = first_row(path)
    layout = match_header(path, header, {"annotations": EPIC100_COLUMNS, "test": EPIC100_TEST_COLUMNS},
                           "EPIC-KITCHENS-100 annotation csv")
    n = len(EPIC100_COLUMNS) if layout == "annotations" else len(EPIC100_TEST_COLUMNS)
    out = []
    for line, f in rows:
        expect_fields(path, line, f, n, header)
        common = (f[0], f[1], f[2], parse_hms(f[3], path, line, "narration_timestamp"),
                  parse_hms(f[4], path, line, "start_timestamp"), parse_hms(f[5], path, line, "stop_timestamp"),
                  parse_int(f[6], path, line, "start_frame"), parse_int(f[7], path, line, "stop_frame"))
        if layout == "test":
            out.append(EpicNarration(*common))
            continue
        out.append(EpicNarration(
            *common, narration=f[8], verb=f[9], verb_class=parse_int(f[10], path, line, "verb_class"), noun=f[11],
            noun_class=parse_int(f[12], path, line, "noun_class"),
            all_nouns=_literal_list(f[13], str, path, line, "all_nouns"),
            all_noun_classes=_literal_list(f[14], int, path, line, "all_noun_classes")))
    return out


def write_epic100_annotations(path: str | os.PathLike, records: Iterable[EpicNarration],
                              with_labels: bool | None = None, line_terminator: str = "\n") -> None:
    """Write an EPIC-KITCHENS-100 annotation csv (15 columns) or test-timestamp csv (8 columns).

    Args:
        path: Output file (written atomically).
        records: Segments.
        with_labels: ``True`` for the 15-column layout, ``False`` for the 8-column test
            layout; ``None`` picks 15 if the records have labels (all of them must).
        line_terminator: Line end (the official files use LF).

    Raises:
        ValueError: If a record lacks labels for the 15-column layout.
    """
    records = list(records)
    if with_labels is None:
        with_labels = bool(records) and all(r.has_labels for r in records)
    rows: list[tuple] = [EPIC100_COLUMNS if with_labels else EPIC100_TEST_COLUMNS]
    for r in records:
        row = (r.narration_id, r.participant_id, r.video_id, format_hms(r.narration_timestamp, 3),
               format_hms(r.start_timestamp, 2), format_hms(r.stop_timestamp, 2), int(r.start_frame), int(r.stop_frame))
        if with_labels:
            if not r.has_labels or r.all_nouns is None or r.all_noun_classes is None:
                raise ValueError(f"{r.narration_id}: the 15-column layout needs verb/noun labels")
            row += (r.narration, r.verb, int(r.verb_class), r.noun, int(r.noun_class),
                    str([str(x) for x in r.all_nouns]), str([int(x) for x in r.all_noun_classes]))
        rows.append(row)
    write_text(path, format_csv(rows, line_terminator))


def read_epic100_classes(path: str | os.PathLike) -> list[EpicClass]:
    """Read ``EPIC_100_verb_classes.csv`` or ``EPIC_100_noun_classes.csv``.

    Args:
        path: The file.

    Returns:
        One record per class in file order (97 verbs / 300 nouns for the official files).

    Raises:
        FormatError: (a ``ValueError``) on another header, a bad id, a repeated id or an
            ``instances`` field that is not a Python list of strings.
    """
    (line, header), rows = first_row(path)
    match_header(path, header, {"classes": EPIC100_CLASS_COLUMNS}, "EPIC-KITCHENS-100 verb/noun class csv")
    out, seen = [], set()
    for line, f in rows:
        expect_fields(path, line, f, 4, EPIC100_CLASS_COLUMNS)
        cid = parse_int(f[0], path, line, "id")
        if cid in seen:
            raise FormatError(f"{where(path, line)}: class id {cid} appears twice")
        seen.add(cid)
        out.append(EpicClass(cid, f[1], _literal_list(f[2], str, path, line, "instances"), f[3]))
    return out


def write_epic100_classes(path: str | os.PathLike, classes: Iterable[EpicClass], line_terminator: str = "\r\n",
                          final_newline: bool = False) -> None:
    """Write a verb/noun class csv as the official files have it (CRLF, no final newline).

    ``instances`` is written as ``str(list)`` (``['a', 'b']``, one space after each comma).

    Args:
        path: Output file (written atomically).
        classes: Class rows.
        line_terminator: Line end.
        final_newline: Whether to end the last row with ``line_terminator``.
    """
    rows: list[tuple] = [EPIC100_CLASS_COLUMNS]
    rows += [(int(c.id), c.key, str([str(x) for x in c.instances]), c.category) for c in classes]
    write_text(path, format_csv(rows, line_terminator, final_newline))


def read_epic100_video_info(path: str | os.PathLike) -> list[EpicVideoInfo]:
    """Read ``EPIC_100_video_info.csv`` (``video_id,duration,fps,resolution``).

    Raises:
        FormatError: (a ``ValueError``) on another header or a non-numeric duration/fps.
    """
    (line, header), rows = first_row(path)
    match_header(path, header, {"video_info": EPIC100_VIDEO_INFO_COLUMNS}, "EPIC-KITCHENS-100 video info csv")
    out = []
    for line, f in rows:
        expect_fields(path, line, f, 4, EPIC100_VIDEO_INFO_COLUMNS)
        out.append(EpicVideoInfo(f[0], parse_float(f[1], path, line, "duration"), parse_float(f[2], path, line, "fps"),
                                 f[3]))
    return out


def write_epic100_video_info(path: str | os.PathLike, videos: Iterable[EpicVideoInfo], line_terminator: str = "\n") -> None:
    """Write ``EPIC_100_video_info.csv``; floats use Python's shortest round-trip ``repr``."""
    rows: list[tuple] = [EPIC100_VIDEO_INFO_COLUMNS]
    rows += [(v.video_id, repr(float(v.duration)), repr(float(v.fps)), v.resolution) for v in videos]
    write_text(path, format_csv(rows, line_terminator))


def epic_class_keys(classes: Iterable[EpicClass]) -> list[str]:
    """Class keys indexed by class id.

    Raises:
        ValueError: If the ids are not exactly ``0 .. n-1``.
    """
    by_id = {c.id: c.key for c in classes}
    if sorted(by_id) != list(range(len(by_id))):
        raise ValueError(f"class ids are not 0..{len(by_id) - 1}")
    return [by_id[i] for i in range(len(by_id))]


# --------------------------------------------------------------------------------------------
# Audio: one HDF5 file, one 1-D float32 dataset per video_id.


def write_epic_audio_hdf5(path: str | os.PathLike, waves: Mapping[str, np.ndarray]) -> None:
    """Write EPIC audio as the reference keeps it: one HDF5 file, one 1-D float32 dataset per video.

    Args:
        path: Output ``.hdf5`` file (written to a temp name, then renamed).
        waves: ``video_id -> mono waveform`` at 24 kHz (any real dtype; stored as float32).

    Raises:
        ValueError: If a waveform is not 1-D or a video id is empty or contains ``/``.
    """
    import h5py

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        for video_id, wave in waves.items():
            if not video_id or "/" in video_id:
                raise ValueError(f"video id {video_id!r} cannot name an HDF5 dataset")
            wave = np.asarray(wave)
            if wave.ndim != 1:
                raise ValueError(f"audio of {video_id!r} must be 1-D (mono); got shape {wave.shape}")
            f.create_dataset(video_id, data=wave.astype(np.float32, copy=False))
    os.replace(tmp, path)


class EpicAudioHDF5:
    """Reader of the one-file EPIC audio HDF5 (one 1-D dataset per ``video_id``, 24 kHz).

    The file is opened lazily and reopened after pickling, so one instance can be handed to
    DataLoader worker processes.

    Args:
        path: The HDF5 file.
        sample_rate: Sample rate of every dataset (24 000 for EPIC).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        FormatError: (a ``ValueError``) if it is not an HDF5 file.

    Example:
        >>> audio = EpicAudioHDF5("EPIC-KITCHENS-100_audio.hdf5")      # doctest: +SKIP
        >>> audio.segment("P01_11", 0.0, 1.89).shape                   # doctest: +SKIP
        (45360,)
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int = EPIC_AUDIO_SAMPLE_RATE):
        import h5py

        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such EPIC audio HDF5 file")
        if not h5py.is_hdf5(self.path):
            raise header_error(self.path, "EPIC audio HDF5 file",
                               "an HDF5 file with one 1-D float dataset per video_id", "a file that is not HDF5")
        self._file = None

    def _h5(self):
        if self._file is None:
            import h5py

            self._file = h5py.File(self.path, "r")
        return self._file

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def close(self) -> None:
        """Close the underlying file (it reopens on the next read)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "EpicAudioHDF5":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def video_ids(self) -> list[str]:
        """The video ids stored, sorted."""
        return sorted(self._h5().keys())

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and video_id in self._h5()

    def __len__(self) -> int:
        return len(self._h5())

    def _dataset(self, video_id: str):
        f = self._h5()
        if video_id not in f:
            raise KeyError(f"{self.path}: no audio for video {video_id!r}")
        ds = f[video_id]
        if getattr(ds, "ndim", None) != 1:
            raise FormatError(f"{self.path}: dataset {video_id!r} must be a 1-D waveform; found {ds!r}")
        return ds

    def num_samples(self, video_id: str) -> int:
        """Length of a video's waveform in samples."""
        return int(self._dataset(video_id).shape[0])

    def duration(self, video_id: str) -> float:
        """Length of a video's waveform in seconds."""
        return self.num_samples(video_id) / self.sample_rate

    def read(self, video_id: str) -> np.ndarray:
        """A video's whole waveform (float32)."""
        return np.asarray(self._dataset(video_id)[()], dtype=np.float32)

    def samples(self, video_id: str, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of a video (float32), cut short at the end of the audio.

        Raises:
            KeyError: If the video is not in the file.
            ValueError: If ``start < 0`` or ``stop < start``.
        """
        if start < 0 or stop < start:
            raise ValueError(f"bad sample range [{start}, {stop}) for {video_id!r}")
        return np.asarray(self._dataset(video_id)[int(start):int(stop)], dtype=np.float32)

    def segment(self, video_id: str, start_s: float, stop_s: float) -> np.ndarray:
        """The audio of a segment given in seconds: samples ``round(start_s*sr) .. round(stop_s*sr)``.

        Args:
            video_id: Dataset name.
            start_s: Segment start in seconds.
            stop_s: Segment end in seconds.

        Returns:
            float32 samples, cut short at the end of the audio.
        """
        return self.samples(video_id, round(start_s * self.sample_rate), round(stop_s * self.sample_rate))
