"""Datasets over media clips: decode once, crash-contained, never substitute a clip.

* :class:`ClipSpec` / :class:`ClipIndex`: the clips of a parsed dataset format (path, labels,
  optional start/stop), built with the ``from_*`` constructors from the records of
  :mod:`models.datasets.formats`.
* :meth:`ClipIndex.decode`: decodes every clip through :func:`models.io.decode_pool.decode_many`
  (worker processes, so a decoder crash or hang costs one clip), resamples to the requested
  rate and pads/crops to a fixed length. A clip that is missing, fails, crashes or times out
  is **skipped** with its reason: each skip is counted, warned about
  (:class:`~models.io.decode_pool.ClipSkippedWarning`) and listed in the
  :class:`~models.io.decode_pool.SkipReport`, whose summary is logged at the end. Nothing is
  substituted: the result holds exactly the good clips, in input order.
* :class:`ClipDataset`: a torch ``Dataset`` over the decoded clips, items addressed by
  ``(epoch, index)`` (what the trainer's sampler yields) or a plain ``index``.
* :class:`EpicSegments`: a torch ``Dataset`` of EPIC segments read from the one-file audio
  HDF5 by their timestamps (sample = ``round(seconds · 24000)``, as the auditory-slow-fast
  reference cuts them) or, for EPIC-SOUNDS records, by their ``start_sample``/``stop_sample``.

Example::

    clips = read_vggsound_csv(root / "vggsound.csv")
    index = ClipIndex.from_vggsound([c for c in clips if c.split == "test"], root / "video")
    decoded = index.decode(sample_rate=16_000, seconds=10.0, workers=4)
    print(decoded.summary())           # what was skipped, and why
    test_set = ClipDataset(decoded, classes=vggsound_class_order(read_vggsound_stat(root / "stat.csv")))
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from models.io.decode_pool import SkipReport, decode_many
from models.datasets.clip_decode import ClipSpec, decode_clip, fit_length
from models.datasets.formats import (AudioSetSegment, EpicAudioHDF5, EpicNarration, EpicSoundsSegment, Esc50Clip, MediaFile,
                      StrongLabels, VggSoundClip, WeakLabel)

logger = logging.getLogger(__name__)

__all__ = ["ClipDataset", "ClipIndex", "ClipSpec", "DecodedClips", "EpicSegments", "fit_length"]

TARGET_KINDS = ("single", "multi", "none")


# --------------------------------------------------------------------------------------------
# the index


@dataclass(frozen=True)
class ClipIndex:
    """The clips of a dataset, in order, before decoding.

    Attributes:
        clips: The clips.
    """

    clips: tuple[ClipSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "clips", tuple(self.clips))
        for c in self.clips:
            if not isinstance(c, ClipSpec):
                raise TypeError(f"ClipIndex: expected ClipSpec items, found {type(c).__name__}: {c!r}")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> ClipSpec:
        return self.clips[i]

    def __iter__(self) -> Iterator[ClipSpec]:
        return iter(self.clips)

    @property
    def classes(self) -> tuple[str, ...]:
        """The distinct labels of all clips, sorted."""
        return tuple(sorted({label for c in self.clips for label in c.labels}))

    # -- from the parsed formats

    @classmethod
    def from_vggsound(cls, clips: Iterable[VggSoundClip], video_dir: str | os.PathLike) -> "ClipIndex":
        """VGG-Sound clips: ``video_dir / <ytid>_<start:06d>.mp4``, each file the whole clip."""
        return cls(tuple(ClipSpec(Path(video_dir) / c.filename, (c.label,)) for c in clips))

    @classmethod
    def from_esc50(cls, clips: Iterable[Esc50Clip], audio_dir: str | os.PathLike) -> "ClipIndex":
        """ESC-50 clips: ``audio_dir / filename``, labelled by ``category`` (the class name)."""
        return cls(tuple(ClipSpec(Path(audio_dir) / c.filename, (c.category,)) for c in clips))

    @classmethod
    def from_audioset(cls, segments: Iterable[AudioSetSegment], audio_dir: str | os.PathLike,
                      name=None) -> "ClipIndex":
        """AudioSet segments, labelled by their positive ontology ids (``/m/...``).

        Args:
            segments: The segment list.
            audio_dir: Folder of the clips.
            name: ``name(segment) -> file name``; default ``Y<ytid>_<start:.3f>_<end:.3f>.wav``
                (:func:`models.datasets.from_world.audioset_wav_name`).
        """
        name = _audioset_name if name is None else name
        return cls(tuple(ClipSpec(Path(audio_dir) / name(s), s.positive_labels) for s in segments))

    @classmethod
    def from_dcase_weak(cls, clips: Iterable[WeakLabel], audio_dir: str | os.PathLike) -> "ClipIndex":
        """DESED/DCASE weakly labelled clips (labels: the classes present)."""
        return cls(tuple(ClipSpec(Path(audio_dir) / c.filename, c.labels) for c in clips))

    @classmethod
    def from_dcase_strong(cls, labels: StrongLabels, audio_dir: str | os.PathLike) -> "ClipIndex":
        """DESED/DCASE strongly labelled clips, every file listed (clips without events get ``()``).

        The labels are the distinct event labels of each clip, in order of appearance; the
        events themselves stay in ``labels.events_for(spec.key)``.
        """
        return cls(tuple(ClipSpec(Path(audio_dir) / f, tuple(dict.fromkeys(e.label for e in labels.events_for(f))))
                         for f in labels.files))

    @classmethod
    def from_dcase_unlabeled(cls, filenames: Iterable[str], audio_dir: str | os.PathLike) -> "ClipIndex":
        """DESED/DCASE unlabeled clips."""
        return cls(tuple(ClipSpec(Path(audio_dir) / f) for f in filenames))

    @classmethod
    def from_media_files(cls, files: Iterable[MediaFile]) -> "ClipIndex":
        """A folder of media (:func:`~models.datasets.formats.read_video_folder`), unlabeled, keyed by relative path."""
        return cls(tuple(ClipSpec(f.path, key=f.relpath) for f in files))

    # -- decoding

    def decode(self, sample_rate: int, seconds: float, *, num_frames: int = 0,
               frame_size: tuple[int, int] | None = None, min_seconds: float | None = None, workers: int = 2,
               timeout_s: float = 60.0, report: SkipReport | None = None) -> "DecodedClips":
        """Decode every clip (mono audio, optionally frames) in crash-contained worker processes.

        Each clip's audio is decoded from ``start`` to ``stop``, down-mixed to mono, resampled
        to ``sample_rate`` (soxr) and cut or zero-padded at the end to ``round(seconds ·
        sample_rate)`` samples (:func:`fit_length`). With ``num_frames``, that many frames
        evenly spaced over the clip's span are decoded too (RGB, scaled to ``frame_size``).

        A clip that is missing, cannot be decoded, crashes its worker, times out, is shorter
        than ``min_seconds`` or lacks a requested video stream is skipped: counted, warned
        about and listed (``DecodedClips.skipped`` and ``.report``; reasons start with
        ``missing:``, ``error:``, ``crash:`` or ``timeout:``); the summary is logged at the end.
        The result holds the good clips only, in input order; no clip is substituted.

        Args:
            sample_rate: Output rate in Hz.
            seconds: Output length in seconds.
            num_frames: Video frames per clip (0: audio only).
            frame_size: ``(width, height)`` to scale frames to; needed when the files differ.
            min_seconds: Skip clips whose decoded audio is shorter than this (e.g. truncated
                files that still decode); None keeps every decodable clip.
            workers: Decoder processes.
            timeout_s: Seconds one clip may take before its worker is killed.
            report: A :class:`SkipReport` to add to (a new one otherwise).

        Returns:
            The decoded clips.

        Raises:
            RuntimeError: If no clip decoded (the message holds the skip summary).
            ValueError: On a bad argument, or frames of different sizes without ``frame_size``.
        """
        if sample_rate <= 0 or seconds <= 0:
            raise ValueError(f"expected sample_rate > 0 and seconds > 0, found {sample_rate} and {seconds}")
        if num_frames < 0:
            raise ValueError(f"num_frames: expected >= 0, found {num_frames}")
        report = report if report is not None else SkipReport()
        n_skipped_before = report.count
        present = []
        for spec in self.clips:  # missing files (common: vanished videos) need no worker
            if spec.path.is_file():
                present.append(spec)
            else:
                report.add(spec, f"missing: no such file {os.fspath(spec.path)!r}")
        n_samples = round(seconds * sample_rate)
        min_samples = 0 if min_seconds is None else round(min_seconds * sample_rate)
        fn = functools.partial(decode_clip, sample_rate=int(sample_rate), n_samples=n_samples,
                               min_samples=min_samples, num_frames=int(num_frames),
                               frame_size=None if frame_size is None else tuple(frame_size))
        good: list[ClipSpec] = []
        audio: list[np.ndarray] = []
        lengths: list[int] = []
        frames: list[np.ndarray] = []
        for spec, (wave, n_valid, clip_frames) in decode_many(present, fn, workers=workers, timeout_s=timeout_s,
                                                              report=report):
            good.append(spec)
            audio.append(wave)
            lengths.append(n_valid)
            if num_frames:
                frames.append(clip_frames)
        skipped = tuple(report.skipped[n_skipped_before:])
        if skipped:
            logger.warning("%s", report.summary())
        if not good:
            raise RuntimeError(f"no clip of {len(self.clips)} could be decoded:\n{report.summary()}")
        frame_array = None
        if num_frames:
            shapes = {f.shape for f in frames}
            if len(shapes) > 1:
                raise ValueError(f"clips have frames of different sizes {sorted(shapes)}; "
                                 "pass frame_size=(width, height)")
            frame_array = np.stack(frames)
        return DecodedClips(tuple(good), np.stack(audio), np.asarray(lengths, np.int64), frame_array,
                            int(sample_rate), skipped, report)


def _audioset_name(s: AudioSetSegment) -> str:
    return f"Y{s.ytid}_{s.start_seconds:.3f}_{s.end_seconds:.3f}.wav"


@dataclass(frozen=True, eq=False)
class DecodedClips:
    """The result of :meth:`ClipIndex.decode`: the good clips only, in input order.

    Attributes:
        clips: The clips that decoded (row i of ``audio`` is ``clips[i]``).
        audio: (N, samples) float32.
        lengths: (N,) samples decoded before padding/cropping (at ``sample_rate``).
        frames: (N, num_frames, H, W, 3) uint8, or None for audio only.
        sample_rate: Rate of ``audio``.
        skipped: ``(clip, reason)`` of each clip this decode skipped, in failure order.
        report: The skip report (``report.summary()`` lists the skipped clips).
    """

    clips: tuple[ClipSpec, ...]
    audio: np.ndarray
    lengths: np.ndarray
    frames: np.ndarray | None
    sample_rate: int
    skipped: tuple[tuple[ClipSpec, str], ...]
    report: SkipReport

    def __len__(self) -> int:
        return len(self.clips)

    def summary(self) -> str:
        """The skip report's summary: a count line, then ``path: reason`` per skipped clip."""
        return self.report.summary()


# --------------------------------------------------------------------------------------------
# torch datasets


def _address(address) -> tuple[int, int]:
    """``(epoch, index)`` from an ``(epoch, index)`` tuple or a plain index (epoch 0)."""
    if isinstance(address, tuple):
        if len(address) != 2:
            raise TypeError(f"expected an (epoch, index) address or an int, found {address!r}")
        return int(address[0]), int(address[1])
    return 0, int(address)


class ClipDataset(Dataset):
    """A torch ``Dataset`` over decoded clips; item ``(epoch, index)`` or ``index``.

    Item i is clip i of ``clips`` (the i-th good clip); no clip is ever replaced by another.
    Augmentation (a random gain) is a pure function of ``(seed, epoch, index)``, so DataLoader
    workers, resumed and uninterrupted runs give the same batches.

    Args:
        clips: Decoded clips.
        classes: Class vocabulary; a label's target id is its position. Defaults to the
            sorted labels of the clips (pass the dataset's full class list to keep ids stable).
        target: ``"single"`` (each clip has exactly one label: an int64 class id),
            ``"multi"`` (float32 multi-hot over ``classes``) or ``"none"`` (unlabeled: no target).
        gain_db: Random gain within ±``gain_db`` per item when > 0 (training augmentation).
        seed: Seeds the augmentation.

    Items are dicts: ``audio`` (samples,) float32, ``length`` (samples decoded before padding,
    int64), ``index`` (int64), ``target`` (unless ``target="none"``) and ``frames``
    (num_frames, H, W, 3) uint8 when decoded.

    Raises:
        ValueError: A clip's labels do not fit ``target`` or ``classes``.
    """

    def __init__(self, clips: DecodedClips, classes: Sequence[str] | None = None, *, target: str = "single",
                 gain_db: float = 0.0, seed: int = 0):
        if target not in TARGET_KINDS:
            raise ValueError(f"target: expected one of {TARGET_KINDS}, found {target!r}")
        self.clips = clips
        if classes is None:
            classes = sorted({label for c in clips.clips for label in c.labels})
        self.classes = tuple(classes)
        self.target = target
        self.gain_db = float(gain_db)
        self.seed = int(seed)
        class_id = {name: i for i, name in enumerate(self.classes)}
        self._targets: list[torch.Tensor] = []
        for spec in clips.clips:
            unknown = [x for x in spec.labels if x not in class_id]
            if target != "none" and unknown:
                raise ValueError(f"{spec.path}: labels {unknown} are not among the {len(self.classes)} classes")
            if target == "single":
                if len(spec.labels) != 1:
                    raise ValueError(f"{spec.path}: target='single' needs exactly one label, found {spec.labels}")
                self._targets.append(torch.tensor(class_id[spec.labels[0]], dtype=torch.int64))
            elif target == "multi":
                hot = torch.zeros(len(self.classes), dtype=torch.float32)
                hot[[class_id[x] for x in spec.labels]] = 1.0
                self._targets.append(hot)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, address) -> dict:
        epoch, index = _address(address)
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range for {len(self)} clips")
        wave = np.array(self.clips.audio[index], dtype=np.float32)
        if self.gain_db > 0:
            rng = np.random.default_rng([self.seed, epoch, index])
            wave *= np.float32(10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0))
        item = {"audio": torch.from_numpy(wave), "length": torch.tensor(int(self.clips.lengths[index])),
                "index": torch.tensor(index)}
        if self.target != "none":
            item["target"] = self._targets[index]
        if self.clips.frames is not None:
            item["frames"] = torch.from_numpy(np.array(self.clips.frames[index]))
        return item


class EpicSegments(Dataset):
    """EPIC segments read from the one-file audio HDF5; item ``(epoch, index)`` or ``index``.

    A narration (:class:`~models.datasets.formats.EpicNarration`) covers samples
    ``round(start_timestamp · sr)`` to ``round(stop_timestamp · sr)``, as the auditory-slow-fast
    reference cuts it; an EPIC-SOUNDS segment covers its ``start_sample`` to ``stop_sample``
    (the authoritative positions, which differ from the timestamps by up to a sample). With
    ``seconds``, a longer segment is cut to ``round(seconds · sr)`` samples (a random window
    drawn from ``(seed, epoch, index)`` when ``train``, else its first samples, as the
    reference's single test clip) and a shorter one zero-padded at the end.

    Segments whose video is not in the file, that start past the end of its audio or are empty
    are skipped at construction: counted, warned about and listed in ``report`` (keyed by
    narration/annotation id). A segment running past the end of the audio is cut short there.

    Args:
        audio: The HDF5 file or an open :class:`~models.datasets.formats.EpicAudioHDF5`.
        segments: Narrations or EPIC-SOUNDS segments.
        seconds: Fixed item length, or None for whole segments (then batch them one at a time).
        train: Random windows (True) or the first window (False) of long segments.
        seed: Seeds the random windows.
        report: A :class:`SkipReport` to add to (a new one otherwise).

    Items are dicts: ``audio`` float32, ``length`` (valid samples before padding, int64),
    ``index``; for labelled narrations ``verb`` and ``noun`` (class ids), for labelled
    EPIC-SOUNDS segments ``target`` (``class_id``).
    """

    def __init__(self, audio: EpicAudioHDF5 | str | os.PathLike, segments: Iterable[EpicNarration | EpicSoundsSegment],
                 *, seconds: float | None = None, train: bool = False, seed: int = 0, report: SkipReport | None = None):
        self.audio = audio if isinstance(audio, EpicAudioHDF5) else EpicAudioHDF5(audio)
        self.sample_rate = self.audio.sample_rate
        self.n_samples = None if seconds is None else round(seconds * self.sample_rate)
        if self.n_samples is not None and self.n_samples <= 0:
            raise ValueError(f"seconds: expected > 0, found {seconds}")
        self.train = bool(train)
        self.seed = int(seed)
        self.report = report if report is not None else SkipReport()
        n_skipped_before = self.report.count
        self.segments: list[EpicNarration | EpicSoundsSegment] = []
        self._spans: list[tuple[int, int]] = []
        lengths: dict[str, int] = {}
        for seg in segments:
            if isinstance(seg, EpicNarration):
                key = seg.narration_id
                start, stop = seg.start_sample(self.sample_rate), seg.stop_sample(self.sample_rate)
            elif isinstance(seg, EpicSoundsSegment):
                key = seg.annotation_id
                start, stop = seg.start_sample, seg.stop_sample
            else:
                raise TypeError(f"EpicSegments: expected EpicNarration or EpicSoundsSegment, "
                                f"found {type(seg).__name__}")
            if seg.video_id not in lengths:
                lengths[seg.video_id] = self.audio.num_samples(seg.video_id) if seg.video_id in self.audio else -1
            total = lengths[seg.video_id]
            if total < 0:
                self.report.add(key, f"missing: no audio for video {seg.video_id!r} in {self.audio.path}")
            elif stop <= start:
                self.report.add(key, f"error: empty segment, samples [{start}, {stop})")
            elif start >= total:
                self.report.add(key, f"error: segment starts at sample {start}, past the end of the "
                                     f"{total}-sample audio of {seg.video_id!r}")
            else:
                self.segments.append(seg)
                self._spans.append((start, min(stop, total)))
                self.report.n_ok += 1
        self.audio.close()  # reopened on the first read, in whichever process reads
        self.skipped = tuple(self.report.skipped[n_skipped_before:])
        if self.skipped:
            logger.warning("%s", self.report.summary())

    def __len__(self) -> int:
        return len(self.segments)

    def span(self, index: int) -> tuple[int, int]:
        """Samples ``[start, stop)`` of segment ``index`` in its video's audio (cut at the audio's end)."""
        return self._spans[index]

    def __getitem__(self, address) -> dict:
        epoch, index = _address(address)
        if not 0 <= index < len(self):
            raise IndexError(f"segment index {index} out of range for {len(self)} segments")
        seg = self.segments[index]
        start, stop = self._spans[index]
        if self.n_samples is not None and stop - start > self.n_samples:
            offset = 0
            if self.train:
                rng = np.random.default_rng([self.seed, epoch, index])
                offset = int(rng.integers(stop - start - self.n_samples + 1))
            start += offset
            stop = start + self.n_samples
        wave = self.audio.samples(seg.video_id, start, stop)
        length = len(wave)
        if self.n_samples is not None:
            wave = fit_length(wave, self.n_samples)
        item = {"audio": torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
                "length": torch.tensor(length), "index": torch.tensor(index)}
        if isinstance(seg, EpicNarration):
            if seg.has_labels:
                item["verb"] = torch.tensor(seg.verb_class)
                item["noun"] = torch.tensor(seg.noun_class)
        elif seg.class_id is not None:
            item["target"] = torch.tensor(seg.class_id)
        return item
