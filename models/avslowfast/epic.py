"""EPIC-KITCHENS-100 action segments as AVSlowFast clips: pictures, audio, verb and noun.

What is read under the dataset root (``shared/REFERENCE.md`` section 6):

* the annotations (:func:`models.datasets.formats.read_epic100_annotations`), whose
  ``start_timestamp``/``stop_timestamp`` place each segment;
* ``EPIC_100_video_info.csv``: each video's fps and duration;
* the pictures of each video, either the extracted frames
  ``<root>/<participant>/rgb_frames/<video_id>/frame_0000000001.jpg`` (frame ``n`` shows time
  ``(n - 1) / fps``; ``start_frame``/``stop_frame`` count the same numbers) or the video
  ``<root>/<participant>/videos/<video_id>.MP4`` decoded with PyAV (a frame's number is
  ``round(pts_seconds · fps) + 1``). ``frames_from="auto"`` takes the frames where a video has
  them, else its MP4;
* the audio HDF5 (:class:`models.datasets.formats.EpicAudioHDF5`, 24 kHz), read per item and
  resampled to 16 kHz (soxr).

**A clip** is the lite recipe's (:class:`models.avslowfast.data.ClipSpec`): ``T`` pictures
``1 / frame_rate`` apart whose last one is at the clip's end ``e``, and the audio window
``[e - audio_seconds, e]`` (zeros before the video's start). The end is placed in the segment:
training draws it uniformly so that the audio window lies inside the segment (from ``(seed,
epoch, index)``), validation centres the window on the segment; a segment shorter than the
window gets the centred window. Ends are kept within ``[(T - 1) / frame_rate, duration]``.
Each instant takes the frame nearest it, ``round(t · fps) + 1``.

**Decoding.** The frames a segment can use (every frame its windows can reach when training,
the ``T`` frames of the centred window for validation) are decoded once, video by video
(through the crash-contained decode pool with ``workers > 0``), resized to ``S x S`` and kept in
memory as uint8: ``S² · 3`` bytes per frame (9.4 kB at 56 x 56), so the whole EPIC-100 training
set (about 12 M frames at 60 fps) does not fit; a subset of videos does. A segment that needs a
missing frame, an unreadable jpg, a frame its video does not hold, or a video that is absent or
fails to decode is skipped: counted in ``report`` (a :class:`models.io.decode_pool.SkipReport`
keyed by ``narration_id``), warned about, never given another frame in its place.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from models.avslowfast.data import AUDIO_FRONTEND, ClipSpec, resize_clip
from models.datasets.formats import EpicAudioHDF5, EpicNarration, EpicVideoInfo
from models.datasets.formats.epic import EPIC_RGB_FRAME, EPIC_VIDEO_FILE
from models.io.decode_pool import SkipReport, decode_many

logger = logging.getLogger(__name__)

__all__ = ["FRAMES_FROM", "EpicClips", "frame_number", "picture_sources"]

#: Where the pictures come from: per video the frames if present else the MP4, or one of them.
FRAMES_FROM = ("auto", "rgb_frames", "videos")
#: A frame's file name inside ``rgb_frames/<video_id>/``.
_FRAME_NAME = Path(EPIC_RGB_FRAME).name
#: Audio read around a window before resampling, so the resampler's edges fall outside it.
_AUDIO_MARGIN_S = 0.05


def frame_number(t: np.ndarray | float, fps: float, count: int) -> np.ndarray:
    """The EPIC frame (1-based) nearest instant(s) ``t``: ``round(t · fps) + 1`` within ``[1, count]``."""
    return np.clip(np.rint(np.asarray(t, np.float64) * fps).astype(np.int64) + 1, 1, max(1, count))


def picture_sources(root: Path, videos: dict[str, str], frames_from: str = "auto") -> dict[str, tuple[str, Path]]:
    """Per video id (-> participant id) the pictures found: ``("rgb_frames", folder)`` or
    ``("videos", file)``; videos with neither are left out.

    Raises:
        ValueError: ``frames_from`` is not one of :data:`FRAMES_FROM`.
    """
    if frames_from not in FRAMES_FROM:
        raise ValueError(f"frames_from: expected one of {FRAMES_FROM}, found {frames_from!r}")
    found = {}
    for video_id, participant in videos.items():
        folder = (root / EPIC_RGB_FRAME.format(participant=participant, video_id=video_id, number=1)).parent
        file = root / EPIC_VIDEO_FILE.format(participant=participant, video_id=video_id)
        if frames_from in ("auto", "rgb_frames") and folder.is_dir():
            found[video_id] = ("rgb_frames", folder)
        elif frames_from in ("auto", "videos") and file.is_file():
            found[video_id] = ("videos", file)
    return found


@dataclass(frozen=True)
class _FramesJob:
    """One video's decoding: which frame numbers, from where, at what size."""

    video_id: str
    kind: str  # "rgb_frames" or "videos"
    path: Path
    numbers: tuple[int, ...]  # sorted
    fps: float
    image_size: int

    def __fspath__(self) -> str:  # the decode pool's reports name the file or folder
        return str(self.path)


def _decode_frames(job: _FramesJob) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Worker side: ``(numbers (n,) int64, frames (n, S, S, 3) uint8 RGB, [(number, why), ...]
    for the frames asked for but not delivered)``."""
    import cv2

    wanted = np.asarray(job.numbers, np.int64)
    size = job.image_size
    if job.kind == "rgb_frames":
        got, frames, bad = [], [], []
        for n in wanted.tolist():
            path = job.path / _FRAME_NAME.format(number=n)
            if not path.is_file():
                bad.append((n, f"missing: {path}"))
                continue
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                bad.append((n, f"error: {path} is not a readable jpg"))
                continue
            got.append(n)
            frames.append(resize_clip(bgr[None, :, :, ::-1], size)[0])
        stack = np.stack(frames) if frames else np.zeros((0, size, size, 3), np.uint8)
        return np.asarray(got, np.int64), stack, bad
    from models.io.media import read_video_frames

    first, last = (wanted[0] - 1) / job.fps, (wanted[-1] - 1) / job.fps
    frames, times = read_video_frames(job.path, start=max(0.0, first - 0.5 / job.fps), stop=last + 0.5 / job.fps,
                                      size=(size, size))
    numbers = np.rint(np.asarray(times, np.float64) * job.fps).astype(np.int64) + 1
    keep = np.isin(numbers, wanted)
    numbers, frames = numbers[keep], frames[keep]
    numbers, unique = np.unique(numbers, return_index=True)  # a repeated timestamp keeps its first frame
    frames = frames[unique]
    bad = [(int(n), f"missing: no frame at {(n - 1) / job.fps:.3f} s in {job.path}")
           for n in np.setdiff1d(wanted, numbers).tolist()]
    return numbers, np.ascontiguousarray(frames), bad


class EpicClips(Dataset):
    """EPIC-KITCHENS-100 segments as AVSlowFast clips (see the module docstring).

    Args:
        root: the dataset root (pictures are found under it).
        narrations: labelled segments (rows of ``EPIC_100_train.csv`` / ``_validation.csv``).
        videos: ``EPIC_100_video_info.csv`` rows (fps, duration) by video id.
        audio: the audio HDF5.
        spec: the clip.
        train: random windows (True) or the centred one (False).
        seed: draws the training windows.
        frames_from: one of :data:`FRAMES_FROM`.
        workers: decoder processes (0: decode here).

    Item ``(epoch, index)`` -> dict: ``frames (3, T, S, S)`` float32 in [-1, 1], ``audio
    (samples,)`` float32 at 16 kHz, ``verb``, ``noun`` int64 class ids, ``epoch``.

    Raises:
        FileNotFoundError: no video of the segments has pictures under ``root`` (the message
            names both layouts).
        ValueError: every segment was skipped.
    """

    def __init__(self, root: Path, narrations: list[EpicNarration], videos: dict[str, EpicVideoInfo],
                 audio: EpicAudioHDF5, spec: ClipSpec, *, train: bool, seed: int = 0, frames_from: str = "auto",
                 workers: int = 0) -> None:
        self.spec, self.train, self.seed, self.audio = spec, bool(train), int(seed), audio
        self.report = SkipReport()
        root = Path(root)
        participants = {r.video_id: r.participant_id for r in narrations}
        sources = picture_sources(root, participants, frames_from)
        if narrations and not sources:
            where = {"auto": "rgb_frames or videos", "rgb_frames": "rgb_frames", "videos": "videos"}[frames_from]
            example = narrations[0]
            raise FileNotFoundError(
                f"--data {root}: no {where} for any of the {len(participants)} videos the annotations name; expected "
                f"{root / EPIC_RGB_FRAME.format(participant=example.participant_id, video_id=example.video_id, number=1)}"
                f" ... or {root / EPIC_VIDEO_FILE.format(participant=example.participant_id, video_id=example.video_id)}")
        rows, ranges = [], []
        span = (spec.frames - 1) / spec.frame_rate  # seconds from a clip's first picture to its last
        self._frame_counts = {v: math.floor(info.duration * info.fps) for v, info in videos.items()}
        self._fps = {v: info.fps for v, info in videos.items()}
        for r in narrations:
            why = self._unusable(r, videos, sources)
            if why:
                self.report.add(r.narration_id, why)
                continue
            info = videos[r.video_id]
            lo, hi = self._ends(r, info.duration)
            count = self._frame_counts[r.video_id]
            if self.train:  # every frame a window's pictures can land on
                needed = np.arange(frame_number(lo - span, info.fps, count), frame_number(hi, info.fps, count) + 1)
            else:
                needed = np.unique(frame_number(spec.frame_times(lo), info.fps, count))
            rows.append((r, lo, hi))
            ranges.append(needed)
        self.pictures = self._decode(rows, ranges, videos, sources, workers)
        self.items = []
        for (r, lo, hi), needed in zip(rows, ranges):
            numbers, _, bad = self.pictures.get(r.video_id, (None, None, {}))
            if numbers is None:
                job = next(j for j, _ in self.video_report.skipped if j.video_id == r.video_id)
                self.report.add(r.narration_id, f"{self.video_report.reason(job)} (video {r.video_id})")
                continue
            lacking = [n for n in needed.tolist() if n in bad]
            if lacking:
                self.report.add(r.narration_id, f"{bad[lacking[0]]} ({len(lacking)} of its frames unusable)")
                continue
            self.items.append((r, lo, hi))
        self.report.n_ok = len(self.items)
        if self.report.count:
            logger.warning("EpicClips: %s", self.report.summary().splitlines()[0])
        if not self.items:
            raise ValueError(f"EpicClips: none of the {len(narrations)} segments is usable under {root} "
                             f"({self.report.summary().splitlines()[0]})")

    def _unusable(self, r: EpicNarration, videos: dict[str, EpicVideoInfo], sources: dict) -> str:
        if r.verb_class is None or r.noun_class is None:
            return "error: no verb/noun labels (a test-timestamps row)"
        if r.video_id not in videos:
            return f"missing: video {r.video_id} is not in EPIC_100_video_info.csv (its fps is unknown)"
        if r.video_id not in sources:
            return f"missing: no rgb_frames folder or MP4 for video {r.video_id}"
        if r.video_id not in self.audio:
            return f"missing: no audio for video {r.video_id} in {self.audio.path}"
        if r.stop_timestamp <= r.start_timestamp:
            return f"error: empty segment [{r.start_timestamp}, {r.stop_timestamp}] s"
        return ""

    def _ends(self, r: EpicNarration, duration: float) -> tuple[float, float]:
        """The earliest and latest clip end of a segment (equal for validation)."""
        window = self.spec.audio_seconds
        first_end = (self.spec.frames - 1) / self.spec.frame_rate
        centred = (r.start_timestamp + r.stop_timestamp + window) / 2
        lo, hi = ((r.start_timestamp + window, r.stop_timestamp)
                  if self.train and r.stop_timestamp - r.start_timestamp > window else (centred, centred))
        return (min(max(lo, first_end), duration), min(max(hi, first_end), duration))

    def _decode(self, rows, ranges, videos, sources, workers: int) -> dict[str, tuple]:
        """video id -> (numbers (n,), frames (n, S, S, 3), {number: why} of the frames not delivered)."""
        wanted: dict[str, set[int]] = {}
        for (r, _, _), needed in zip(rows, ranges):
            wanted.setdefault(r.video_id, set()).update(needed.tolist())
        jobs = [_FramesJob(v, sources[v][0], sources[v][1], tuple(sorted(ns)), videos[v].fps, self.spec.image_size)
                for v, ns in sorted(wanted.items())]
        self.video_report = SkipReport()
        out = {}
        if workers > 0:
            decoded = decode_many(jobs, _decode_frames, workers=workers, report=self.video_report, timeout_s=600.0)
        else:
            decoded = self._decode_here(jobs)
        for job, (numbers, frames, bad) in decoded:
            out[job.video_id] = (numbers, frames, dict(bad))
        return out

    def _decode_here(self, jobs):
        for job in jobs:
            try:
                yield job, _decode_frames(job)
            except Exception as e:  # noqa: BLE001 - any decoder error skips the video, as the pool does
                self.video_report.add(job, f"error: {type(e).__name__}: {e}")

    def __len__(self) -> int:
        return len(self.items)

    def _audio_window(self, video_id: str, end: float) -> np.ndarray:
        """``(samples,)`` float32 at 16 kHz ending at ``end`` s (zeros outside the recording)."""
        import soxr

        n, sr_out, sr_in = self.spec.audio_samples, AUDIO_FRONTEND.sample_rate, self.audio.sample_rate
        start = end - n / sr_out
        first = round((start - _AUDIO_MARGIN_S) * sr_in)
        last = round((end + _AUDIO_MARGIN_S) * sr_in)
        raw = np.zeros(last - first, np.float32)
        part = self.audio.samples(video_id, max(0, first), max(0, last))
        raw[max(0, -first):max(0, -first) + len(part)] = part
        wave = soxr.resample(raw, sr_in, sr_out, quality="HQ")
        skip = round(_AUDIO_MARGIN_S * sr_out)
        out = np.zeros(n, np.float32)
        piece = wave[skip:skip + n]
        out[:len(piece)] = piece
        return out

    def __getitem__(self, address):
        epoch, index = address if isinstance(address, tuple) else (0, address)
        r, lo, hi = self.items[index]
        end = lo
        if hi > lo:
            end = float(np.random.default_rng([self.seed, epoch, index]).uniform(lo, hi))
        numbers, frames, _ = self.pictures[r.video_id]
        wanted = frame_number(self.spec.frame_times(end), self._fps[r.video_id], self._frame_counts[r.video_id])
        picks = np.searchsorted(numbers, wanted)  # all present: checked at construction
        clip = frames[picks].transpose(3, 0, 1, 2).astype(np.float32) / 127.5 - 1.0  # (3, T, S, S)
        return {"frames": torch.from_numpy(clip), "audio": torch.from_numpy(self._audio_window(r.video_id, end)),
                "verb": torch.tensor(r.verb_class, dtype=torch.int64), "noun": torch.tensor(r.noun_class, dtype=torch.int64),
                "epoch": torch.tensor(epoch)}
