"""The real dataset layouts on disk, written from the synthetic world.

Every reader in :mod:`models.datasets.formats` can be run end to end on data the project
generates: each writer here cuts clips (or long stretches) out of world scenes, renders their
audio (and picture), lays the files out as the real dataset does, writes the annotation files
with the format writers and returns what it wrote together with the exact ground truth.

=============================  ==========================================================
writer                         layout under ``out_dir``
=============================  ==========================================================
:func:`write_vggsound_world`   ``video/<ytid>_<start:06d>.mp4`` (picture + 16 kHz AAC),
                               ``vggsound.csv``, ``train.csv``, ``test.csv``, ``stat.csv``
:func:`write_epic_world`       ``EPIC_100_{train,validation}.csv``,
                               ``EPIC_100_test_timestamps.csv``, verb/noun class csvs,
                               ``EPIC_100_video_info.csv``, ``EPIC-KITCHENS-100_audio.hdf5``
                               (24 kHz), ``EPIC_Sounds_{train,validation}.csv``,
                               ``EPIC_Sounds_recognition_test_timestamps.csv``
:func:`write_epic_pictures`    ``<participant>/rgb_frames/<video_id>/frame_*.jpg`` or
                               ``<participant>/videos/<video_id>.MP4`` for those videos
:func:`write_esc50_world`      ``audio/<fold>-<src>-<take>-<target>.wav`` (44.1 kHz),
                               ``meta/esc50.csv`` (current header) or ``esc50.csv`` (older)
:func:`write_audioset_world`   ``balanced_train_segments.csv``, ``eval_segments.csv``,
                               ``class_labels_indices.csv``, ``audio/Y<ytid>_<s>_<e>.wav``
:func:`write_desed_world`      ``metadata/train/{weak,unlabel_in_domain}.tsv``,
                               ``metadata/validation/validation.tsv``,
                               ``metadata/eval/public.tsv``, ``audio/...`` wav clips
:func:`write_video_folder_world`  ``<split>/scene-<seed>/clip-<k>.mp4``
=============================  ==========================================================

Conventions shared by the writers:

* **Splits follow the seeds.** A scene's split (:func:`models.world.seed_split`) decides which
  file of a format its clips go to: train seeds to the training file, validation seeds to the
  validation file, test seeds to the test/evaluation file. A format without a file for that
  split refuses the seed (VGG-Sound and AudioSet have no validation list).
* **Ground truth is exact.** :class:`WorldClip` holds unrounded world times; the annotation
  files carry the format's own rounding (EPIC start/stop 2 decimals, EPIC-SOUNDS and DESED 3,
  VGG-Sound whole seconds).
* **A clip is a span of the scene.** Its audio is ``scene.render_audio(round(start·sr),
  round(seconds·sr), sr)`` and its video frame k is scene frame ``round(start·fps) + k``, so
  every file can be checked against the world sample for sample.
* **Synthetic YouTube ids** (:func:`synthetic_ytid`) are 11 characters of ``[A-Za-z0-9_-]``
  drawn from a hash; one in three starts with ``-`` and one in three holds ``_``, as real ids
  do often enough to break naive parsers.
* Output is deterministic: the same arguments give the same annotation files byte for byte
  (media files too, up to the encoder's own determinism).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import math
import os
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from models.core.events import LabeledEvent
from models.io.media import write_av_file
from models.world import CLASS_NAMES, CLOSE_PAIRS, SOUND_CLASSES, Scene, WorldConfig, WorldEvent, get_preset, seed_split
from models.world.evalsets import isolated_events
from models.world.presets import BENCH
from models.datasets.formats import (AudioSetClass, AudioSetSegment, EpicClass, EpicNarration, EpicSoundsSegment, EpicVideoInfo,
                      Esc50Clip, MediaFile, StrongLabels, VggSoundClass, VggSoundClip, WeakLabel,
                      write_audioset_class_labels, write_audioset_segments, write_dcase_strong, write_dcase_unlabeled,
                      write_dcase_weak, write_epic100_annotations, write_epic100_classes, write_epic100_video_info,
                      write_epic_audio_hdf5, write_epic_sounds, write_esc50, write_video_folder, write_vggsound_csv,
                      write_vggsound_split_csv, write_vggsound_stat)
from models.datasets.formats.epic import EPIC_AUDIO_SAMPLE_RATE, EPIC_RGB_FRAME, EPIC_VIDEO_FILE

logger = logging.getLogger(__name__)

__all__ = [
    "AudioSetWorld", "DesedWorld", "EpicWorld", "EpicWorldVideo", "Esc50World", "VggSoundWorld", "VideoFolderWorld",
    "WORLD_NOUNS", "WORLD_VERBS", "WorldClip", "audioset_wav_name", "clip_events", "single_event_clips",
    "synthetic_ytid", "world_mid", "write_audioset_world", "write_desed_world", "write_epic_pictures",
    "write_epic_world",
    "write_esc50_world", "write_vggsound_world", "write_video_folder_world", "write_wav",
]

#: The world's distinct EPIC verbs and nouns, in order of first appearance in SOUND_CLASSES;
#: a verb's (noun's) class id is its position here.
WORLD_VERBS: tuple[str, ...] = tuple(dict.fromkeys(c.verb for c in SOUND_CLASSES))
WORLD_NOUNS: tuple[str, ...] = tuple(dict.fromkeys(c.noun for c in SOUND_CLASSES))

#: A VGG-Sound super-category (one of the real file's) for each world class, for ``stat.csv``.
_VGGSOUND_CATEGORY = {
    "organ": "music", "chirp-up": "others", "chirp-down": "others", "siren": "vehicle", "engine-am4": "vehicle",
    "engine-am7": "vehicle", "knock": "home", "hiss": "home", "speech": "people", "bell": "music",
    "trill": "animals", "beep": "others",
}
#: ESC-10 is a 10-class subset of ESC-50; here: the world's classes less the second class of each
#: close pair.
_ESC10 = frozenset(CLASS_NAMES) - {b for _, b in CLOSE_PAIRS}
_AUDIOSET_CREATED = "Thu Jan  1 00:00:00 1970"  # fixed, so the segment lists are reproducible
_YTID_LAST = "AEIMQUYcgkosw048"  # a real id's last character encodes 4 bits only


# --------------------------------------------------------------------------------------------
# ground truth records


@dataclass(frozen=True)
class WorldClip:
    """Ground truth of one clip cut from a world scene.

    Attributes:
        path: The media file written.
        seed: The scene.
        start: Scene time of the clip's first sample and frame, seconds.
        seconds: Clip length.
        sample_rate: Audio rate of the file.
        fps: Video frame rate, or None for an audio-only file.
        events: Every event sounding in the clip, clip-relative and clipped to ``[0, seconds]``,
            exact (unrounded), sorted by onset; ``filename`` is the file's name.
        label: The clip's single label where the format has one (the event the clip was cut
            around), else None.
        split: The seed's split (``train``, ``val`` or ``test``).
    """

    path: Path
    seed: int
    start: float
    seconds: float
    sample_rate: int
    fps: float | None
    events: tuple[LabeledEvent, ...]
    label: str | None = None
    split: str = "train"

    @property
    def labels(self) -> tuple[str, ...]:
        """The distinct classes sounding in the clip, in class-index order."""
        return _class_order(e.label for e in self.events)

    @property
    def start_sample(self) -> int:
        """First scene sample of the clip at ``sample_rate``."""
        return round(self.start * self.sample_rate)

    @property
    def num_samples(self) -> int:
        """Samples in the clip's audio."""
        return round(self.seconds * self.sample_rate)

    def render_audio(self, config: WorldConfig | str) -> np.ndarray:
        """The clip's audio as the world renders it (what the file holds before encoding)."""
        return Scene(_config(config), self.seed).render_audio(self.start_sample, self.num_samples, self.sample_rate)


@dataclass(frozen=True)
class VggSoundWorld:
    """What :func:`write_vggsound_world` wrote.

    Attributes:
        root: ``out_dir``.
        csv: ``vggsound.csv`` (every clip with its split).
        train_csv: ``train.csv``.
        test_csv: ``test.csv``.
        stat_csv: ``stat.csv`` (the 12 world classes).
        video_dir: Folder of the ``<ytid>_<start:06d>.mp4`` clips.
        clips: The records written, in ``vggsound.csv`` order.
        truth: Ground truth per clip, index-aligned with ``clips``.
        classes: The ``stat.csv`` rows.
    """

    root: Path
    csv: Path
    train_csv: Path
    test_csv: Path
    stat_csv: Path
    video_dir: Path
    clips: tuple[VggSoundClip, ...]
    truth: tuple[WorldClip, ...]
    classes: tuple[VggSoundClass, ...]


@dataclass(frozen=True)
class EpicWorldVideo:
    """One EPIC "video": the first ``seconds`` of a scene.

    Attributes:
        video_id: e.g. ``P01_01`` (the dataset name in the audio HDF5).
        participant_id: e.g. ``P01``.
        seed: The scene.
        split: ``train``, ``val`` or ``test``.
        seconds: Duration.
        fps: Frame rate the frame numbers refer to.
    """

    video_id: str
    participant_id: str
    seed: int
    split: str
    seconds: float
    fps: int


@dataclass(frozen=True)
class EpicWorld:
    """What :func:`write_epic_world` wrote.

    Attributes:
        root: ``out_dir``.
        annotations: ``train`` / ``validation`` / ``test`` -> EPIC-KITCHENS-100 csv (the test
            one in the 8-column timestamps layout). All three are written; a split without
            videos has a header only.
        verb_classes: ``EPIC_100_verb_classes.csv``.
        noun_classes: ``EPIC_100_noun_classes.csv``.
        video_info: ``EPIC_100_video_info.csv``.
        audio_hdf5: The one HDF5 file, one 24 kHz dataset per video.
        sounds: ``train`` / ``validation`` / ``test`` -> EPIC-SOUNDS csv (the test one in the
            recognition-test-timestamps layout).
        videos: The videos, in ``seeds`` order.
        narrations: Every narration with its labels (also those of test videos, whose file
            has none), ordered as the files hold them (split by split, by ``narration_id``).
        events: The exact world event behind each narration, index-aligned with
            ``narrations`` (``filename`` = video id, offset clipped to the video's end).
        sound_segments: Every EPIC-SOUNDS segment with its class, in file order.
        verbs: The verb classes written.
        nouns: The noun classes written.
    """

    root: Path
    annotations: dict[str, Path]
    verb_classes: Path
    noun_classes: Path
    video_info: Path
    audio_hdf5: Path
    sounds: dict[str, Path]
    videos: tuple[EpicWorldVideo, ...]
    narrations: tuple[EpicNarration, ...]
    events: tuple[LabeledEvent, ...]
    sound_segments: tuple[EpicSoundsSegment, ...]
    verbs: tuple[EpicClass, ...]
    nouns: tuple[EpicClass, ...]


@dataclass(frozen=True)
class Esc50World:
    """What :func:`write_esc50_world` wrote.

    Attributes:
        root: ``out_dir``.
        csv: The metadata csv (``meta/esc50.csv``, or ``esc50.csv`` in the older layout).
        audio_dir: Folder of the wav clips.
        clips: The records written.
        truth: Ground truth per clip, index-aligned with ``clips``.
    """

    root: Path
    csv: Path
    audio_dir: Path
    clips: tuple[Esc50Clip, ...]
    truth: tuple[WorldClip, ...]


@dataclass(frozen=True)
class AudioSetWorld:
    """What :func:`write_audioset_world` wrote.

    Attributes:
        root: ``out_dir``.
        segment_lists: ``train`` -> ``balanced_train_segments.csv``, ``test`` ->
            ``eval_segments.csv`` (both always written).
        class_labels: ``class_labels_indices.csv`` (12 rows).
        audio_dir: Folder of the wav clips (:func:`audioset_wav_name`).
        segments: The records written, train list first.
        truth: Ground truth per segment, index-aligned with ``segments``.
        classes: The class table written.
    """

    root: Path
    segment_lists: dict[str, Path]
    class_labels: Path
    audio_dir: Path
    segments: tuple[AudioSetSegment, ...]
    truth: tuple[WorldClip, ...]
    classes: tuple[AudioSetClass, ...]


@dataclass(frozen=True)
class DesedWorld:
    """What :func:`write_desed_world` wrote.

    Attributes:
        root: ``out_dir``.
        weak_tsv: ``metadata/train/weak.tsv``.
        unlabeled_tsv: ``metadata/train/unlabel_in_domain.tsv``.
        strong_tsvs: ``validation`` -> ``metadata/validation/validation.tsv``, ``public`` ->
            ``metadata/eval/public.tsv`` (both always written), and ``synthetic`` ->
            ``metadata/train/synthetic21_train/soundscapes.tsv`` when strong training clips
            were asked for.
        audio_dirs: The same keys plus ``weak`` and ``unlabel_in_domain`` -> wav folders.
        weak: The weak rows written.
        unlabeled: The unlabeled file names written.
        strong: ``validation`` / ``public`` (/ ``synthetic``) -> the strong labels written (clips
            without events included).
        truth: Ground truth of every clip: weak ones, then unlabeled, then validation, then
            public, then synthetic.
    """

    root: Path
    weak_tsv: Path
    unlabeled_tsv: Path
    strong_tsvs: dict[str, Path]
    audio_dirs: dict[str, Path]
    weak: tuple[WeakLabel, ...]
    unlabeled: tuple[str, ...]
    strong: dict[str, StrongLabels]
    truth: tuple[WorldClip, ...]


@dataclass(frozen=True)
class VideoFolderWorld:
    """What :func:`write_video_folder_world` wrote.

    Attributes:
        root: ``out_dir``.
        files: The files, sorted as :func:`~models.datasets.formats.read_video_folder` lists them.
        truth: Ground truth per file, index-aligned with ``files``.
    """

    root: Path
    files: tuple[MediaFile, ...]
    truth: tuple[WorldClip, ...]


# --------------------------------------------------------------------------------------------
# building blocks


def _config(preset: WorldConfig | str) -> WorldConfig:
    return get_preset(preset) if isinstance(preset, str) else preset


def _class_order(labels: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(labels), key=CLASS_NAMES.index))


def _split_file(seed: int, files: dict[str, str], what: str) -> str:
    """The file key a seed's split maps to in ``files`` (split -> key)."""
    split = seed_split(seed)
    if split not in files:
        raise ValueError(f"seed {seed} is a {split!r} seed, but {what} has files for the splits "
                         f"{sorted(files)} only; pass seeds from those splits (models.world.split_seed)")
    return files[split]


def synthetic_ytid(key: str, style: int = 0) -> str:
    """A YouTube-like id: 11 characters of ``[A-Za-z0-9_-]`` hashed from ``key``.

    Args:
        key: Anything that identifies the clip (e.g. ``"vggsound:17:0"``).
        style: 0 leaves the hash as it is; 1 makes the first character ``-``; 2 puts a ``_``
            in the middle (position 5). The last character stays one a real id can end with.

    Returns:
        The id.
    """
    digest = hashlib.sha256(key.encode()).digest()
    text = base64.urlsafe_b64encode(digest[:8]).decode()[:11]  # 64 bits, like a real id
    chars = list(text)
    if style == 1:
        chars[0] = "-"
    elif style == 2:
        chars[5] = "_"
    elif style != 0:
        raise ValueError(f"style: expected 0, 1 or 2, found {style}")
    assert chars[-1] in _YTID_LAST
    return "".join(chars)


def world_mid(class_name: str) -> str:
    """The pseudo AudioSet ontology id of a world class, e.g. ``/m/avlive_chirp-up``."""
    if class_name not in CLASS_NAMES:
        raise ValueError(f"unknown world class {class_name!r}; expected one of {CLASS_NAMES}")
    return f"/m/avlive_{class_name}"


def audioset_wav_name(ytid: str, start: float, end: float) -> str:
    """``Y<ytid>_<start:.3f>_<end:.3f>.wav``: how DESED (built from AudioSet) names a segment's clip."""
    return f"Y{ytid}_{start:.3f}_{end:.3f}.wav"


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono 16-bit PCM WAV with the stdlib ``wave`` module, atomically.

    Samples are scaled by 32768 and rounded (clipped to the int16 range), so a decoder that
    divides by 32768 (FFmpeg) gives back ``round(x · 32768) / 32768``.

    Args:
        path: Output file.
        audio: float (samples,) in [-1, 1].
        sample_rate: Rate in Hz.

    Returns:
        The path written.

    Raises:
        ValueError: If ``audio`` is not 1-D.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"write_wav: expected mono audio (samples,), found shape {audio.shape}")
    scaled = np.round(audio.astype(np.float64) * 32768.0)
    n_clipped = int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
    if n_clipped:
        logger.warning("%s: %d sample(s) outside [-1, 1) clipped", os.fspath(path), n_clipped)
    pcm = np.clip(scaled, -32768, 32767).astype("<i2")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with wave.open(os.fspath(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)
    return path


def clip_events(scene: Scene, start: float, seconds: float, filename: str) -> tuple[LabeledEvent, ...]:
    """The scene's events in ``[start, start + seconds)``, clip-relative and clipped, exact.

    Args:
        scene: The scene.
        start: Clip start in scene seconds.
        seconds: Clip length.
        filename: The ``filename`` of the records.

    Returns:
        Events sorted by onset (then label).
    """
    start, seconds = float(start), float(seconds)
    out = []
    for e in scene.events_between(start, start + seconds):
        out.append(LabeledEvent(filename, max(e.onset - start, 0.0), min(e.offset - start, seconds), e.label))
    return tuple(sorted(out))


def single_event_clips(scene: Scene, count: int, clip_seconds: float, *, search_seconds: float = 3600.0,
                       exclusive: bool = True, whole_seconds: bool = False) -> list[tuple[float, WorldEvent]]:
    """Clip starts around isolated events of a scene, in time order.

    A candidate is an event that overlaps no other event and fits in the clip; the clip is
    centred on it (start on a whole second, or on a 10 ms grid) and shifted as little as needed
    to hold the whole event. Clips do not overlap each other.

    Args:
        scene: The scene.
        count: Clips wanted.
        clip_seconds: Clip length.
        search_seconds: Look for events in ``[0, search_seconds)`` only.
        exclusive: Also require that no other event sounds anywhere in the clip (a true
            single-event clip). Rare for long clips: the world has about 0.2 exclusive 10 s
            clips per 300 s.
        whole_seconds: Start clips on whole seconds (VGG-Sound names clips by whole seconds).

    Returns:
        ``(start, event)`` pairs.

    Raises:
        ValueError: If fewer than ``count`` clips are found; the message says how to find more.
    """
    if count < 0 or clip_seconds <= 0:
        raise ValueError(f"expected count >= 0 and clip_seconds > 0, found {count} and {clip_seconds}")
    grid = 1 if whole_seconds else 100  # starts are multiples of 1 / grid seconds
    events = scene.events_between(0.0, search_seconds + scene.config.max_event_duration)
    found: list[tuple[float, WorldEvent]] = []
    clip_end = 0.0
    for e in isolated_events(events, min_duration=0.0):
        if len(found) == count:
            break
        if e.offset > search_seconds or e.offset - e.onset > clip_seconds:
            continue
        centre = (e.onset + e.offset) / 2
        units = round((centre - clip_seconds / 2) * grid)
        units = min(units, math.floor(e.onset * grid))  # holds the onset
        units = max(units, math.ceil((e.offset - clip_seconds) * grid), 0)  # and the offset
        start = units / grid
        if start > e.onset or start + clip_seconds < e.offset or start < clip_end:
            continue
        if exclusive and any(o is not e and o.onset < start + clip_seconds and o.offset > start for o in events):
            continue
        found.append((start, e))
        clip_end = start + clip_seconds
    if len(found) < count:
        kind = "single-event" if exclusive else "isolated-event"
        raise ValueError(f"seed {scene.seed}: found {len(found)} of {count} {kind} clips of {clip_seconds:g} s in "
                         f"the first {search_seconds:g} s; raise search_seconds, shorten the clips"
                         + (" or pass exclusive=False" if exclusive else ""))
    return found


def _clip_frames(scene: Scene, start: float, seconds: float):
    fps = scene.config.fps
    first = round(start * fps)
    for k in range(round(seconds * fps)):
        yield scene.render_frame(first + k)[0]


def _write_av_clip(path: Path, scene: Scene, start: float, seconds: float, sample_rate: int) -> None:
    audio = scene.render_audio(round(start * sample_rate), round(seconds * sample_rate), sample_rate)
    write_av_file(path, _clip_frames(scene, start, seconds), audio, scene.config.fps, sample_rate)


def _write_wav_clip(path: Path, scene: Scene, start: float, seconds: float, sample_rate: int) -> None:
    write_wav(path, scene.render_audio(round(start * sample_rate), round(seconds * sample_rate), sample_rate),
              sample_rate)


def _truth(path: Path, scene: Scene, start: float, seconds: float, sample_rate: int, fps: float | None,
           label: str | None = None) -> WorldClip:
    return WorldClip(path, scene.seed, float(start), float(seconds), int(sample_rate), fps,
                     clip_events(scene, start, seconds, path.name), label, seed_split(scene.seed))


def _seed_list(seeds: Iterable[int]) -> list[int]:
    """The seeds as a list; a repeated seed would write its clips twice under the same names."""
    seeds = [int(s) for s in seeds]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds: expected each scene once, found {repeated} more than once")
    return seeds


# --------------------------------------------------------------------------------------------
# VGG-Sound


def write_vggsound_world(out_dir: str | os.PathLike, seeds: Iterable[int], *, clips_per_seed: int = 1,
                         clip_seconds: int = 10, preset: WorldConfig | str = BENCH, sample_rate: int = 16_000,
                         exclusive: bool = False, search_seconds: float = 3600.0) -> VggSoundWorld:
    """Write a VGG-Sound-style dataset: one labelled clip per isolated world event.

    Each clip is ``clip_seconds`` of picture (the preset's frame size and rate) and audio
    (AAC at ``sample_rate``) around an isolated event, named ``<ytid>_<start:06d>.mp4`` with a
    synthetic id per clip; its label is the event's class. Train seeds go to ``train.csv``,
    test seeds to ``test.csv``; ``vggsound.csv`` lists all with their split and ``stat.csv``
    the world's 12 classes with their clip counts.

    Args:
        out_dir: Folder to write into (created).
        seeds: Scene seeds, from the train and test splits.
        clips_per_seed: Clips cut from each scene.
        clip_seconds: Clip length, whole seconds (VGG-Sound: 10).
        preset: World preset (or its name).
        sample_rate: Audio rate of the mp4 files (16 kHz, as VGG-Sound models read them).
        exclusive: Only clips in which no other event sounds (see :func:`single_event_clips`).
        search_seconds: How far into each scene to look for events.

    Returns:
        The files, records and ground truth.

    Raises:
        ValueError: A validation seed, or too few isolated events in a scene.
    """
    if int(clip_seconds) != clip_seconds or clip_seconds < 1:
        raise ValueError(f"clip_seconds: expected a whole number of seconds >= 1, found {clip_seconds}")
    config = _config(preset)
    root = Path(out_dir)
    video_dir = root / "video"
    video_dir.mkdir(parents=True, exist_ok=True)
    clips: list[VggSoundClip] = []
    truth: list[WorldClip] = []
    for seed in _seed_list(seeds):
        split = _split_file(seed, {"train": "train", "test": "test"}, "VGG-Sound")
        scene = Scene(config, seed)
        for k, (start, event) in enumerate(single_event_clips(scene, clips_per_seed, clip_seconds,
                                                              search_seconds=search_seconds, exclusive=exclusive,
                                                              whole_seconds=True)):
            ytid = synthetic_ytid(f"vggsound:{seed}:{k}", style=len(clips) % 3)
            record = VggSoundClip(ytid, int(start), event.label, split)
            path = video_dir / record.filename
            _write_av_clip(path, scene, start, clip_seconds, sample_rate)
            clips.append(record)
            truth.append(_truth(path, scene, start, clip_seconds, sample_rate, config.fps, event.label))
    counts = {name: 0 for name in CLASS_NAMES}
    for c in clips:
        counts[c.label] += 1
    classes = tuple(VggSoundClass(name, counts[name], _VGGSOUND_CATEGORY[name]) for name in CLASS_NAMES)
    paths = {name: root / name for name in ("vggsound.csv", "train.csv", "test.csv", "stat.csv")}
    write_vggsound_csv(paths["vggsound.csv"], clips)
    write_vggsound_split_csv(paths["train.csv"], [c for c in clips if c.split == "train"])
    write_vggsound_split_csv(paths["test.csv"], [c for c in clips if c.split == "test"])
    write_vggsound_stat(paths["stat.csv"], classes)
    return VggSoundWorld(root, paths["vggsound.csv"], paths["train.csv"], paths["test.csv"], paths["stat.csv"],
                         video_dir, tuple(clips), tuple(truth), classes)


# --------------------------------------------------------------------------------------------
# EPIC-KITCHENS-100 and EPIC-SOUNDS

_EPIC_SPLIT_FILES = {"train": "train", "val": "validation", "test": "test"}


def _epic_frame(units: int, decimals: int, fps: int) -> int:
    """The EPIC frame number of a timestamp ``units / 10**decimals`` s: ``floor(t · fps)``, at least 1.

    The real files number frames this way (e.g. 1.56 s -> 93 at 60 fps; 0 s -> frame 1).
    Computed on integers, so 0.29 s at 100 fps is frame 29, not 28.
    """
    return max(1, units * fps // 10**decimals)


def write_epic_world(out_dir: str | os.PathLike, seeds: Iterable[int], *, video_seconds: float = 600.0,
                     preset: WorldConfig | str = BENCH, videos_per_participant: int = 2) -> EpicWorld:
    """Write an EPIC-KITCHENS-100 + EPIC-SOUNDS style dataset from long scene stretches.

    Each seed is one video: the first ``video_seconds`` of its scene. Every event starting in
    it becomes a narration ``<verb> <noun>`` (its class's pair; class ids from the verb and
    noun csvs written here, listing the world's distinct verbs and nouns) and an EPIC-SOUNDS
    segment of its class. Start/stop timestamps have 2 decimals (narration 3; EPIC-SOUNDS 3,
    with ``start_sample = round(t · 24000)``); an event running past the video's end stops at
    the end. Frame numbers are ``floor(t · fps)`` (at least 1) at the preset's rate. All audio
    goes into ONE HDF5 file, one 24 kHz dataset per video id. Videos ``P01_01``, ``P01_02``,
    ``P02_01``... are numbered in ``seeds`` order.

    Args:
        out_dir: Folder to write into (created).
        seeds: Scene seeds: train seeds go to the train csvs, validation seeds to the
            validation csvs, test seeds to the test-timestamp csvs (no labels).
        video_seconds: Length of each video.
        preset: World preset (its fps numbers the frames; its frame size is the resolution).
        videos_per_participant: Videos per participant id.

    Returns:
        The files, records and ground truth.
    """
    config = _config(preset)
    if video_seconds <= 0 or videos_per_participant < 1:
        raise ValueError(f"expected video_seconds > 0 and videos_per_participant >= 1, found {video_seconds} "
                         f"and {videos_per_participant}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    sr = EPIC_AUDIO_SAMPLE_RATE
    verb_id = {v: i for i, v in enumerate(WORLD_VERBS)}
    noun_id = {n: i for i, n in enumerate(WORLD_NOUNS)}
    verbs = tuple(EpicClass(i, v, (v,), "sound") for v, i in verb_id.items())
    noun_source = {c.noun: c.name for c in SOUND_CLASSES}
    nouns = tuple(EpicClass(i, n, (n,), noun_source[n]) for n, i in noun_id.items())

    videos: list[EpicWorldVideo] = []
    waves: dict[str, np.ndarray] = {}
    by_split: dict[str, list[tuple[EpicNarration, LabeledEvent, EpicSoundsSegment]]] = {
        s: [] for s in _EPIC_SPLIT_FILES.values()}
    for i, seed in enumerate(_seed_list(seeds)):
        split_file = _split_file(seed, _EPIC_SPLIT_FILES, "EPIC-KITCHENS-100")
        participant = f"P{i // videos_per_participant + 1:02d}"
        video_id = f"{participant}_{i % videos_per_participant + 1:02d}"
        scene = Scene(config, seed)
        videos.append(EpicWorldVideo(video_id, participant, seed, seed_split(seed), float(video_seconds), config.fps))
        waves[video_id] = scene.render_audio(0, round(video_seconds * sr), sr)
        events = [e for e in scene.events_between(0.0, video_seconds) if e.onset < video_seconds]
        for n, e in enumerate(events):
            cls = SOUND_CLASSES[e.class_index]
            stop = min(e.offset, video_seconds)
            on2, off2, on3, off3 = (round(t * 10**d) for t, d in ((e.onset, 2), (stop, 2), (e.onset, 3), (stop, 3)))
            narration = EpicNarration(
                f"{video_id}_{n}", participant, video_id, on3 / 1000, on2 / 100, off2 / 100,
                _epic_frame(on2, 2, config.fps), _epic_frame(off2, 2, config.fps), f"{cls.verb} {cls.noun}",
                cls.verb, verb_id[cls.verb], cls.noun, noun_id[cls.noun], (cls.noun,), (noun_id[cls.noun],))
            sound = EpicSoundsSegment(f"{video_id}_{n}", participant, video_id, on3 / 1000, off3 / 1000,
                                      on3 * sr // 1000, off3 * sr // 1000, f"{cls.noun} {cls.verb}", cls.name,
                                      e.class_index)
            by_split[split_file].append((narration, LabeledEvent(video_id, e.onset, stop, e.label), sound))

    annotations = {"train": root / "EPIC_100_train.csv", "validation": root / "EPIC_100_validation.csv",
                   "test": root / "EPIC_100_test_timestamps.csv"}
    sounds = {"train": root / "EPIC_Sounds_train.csv", "validation": root / "EPIC_Sounds_validation.csv",
              "test": root / "EPIC_Sounds_recognition_test_timestamps.csv"}
    narrations: list[EpicNarration] = []
    events_out: list[LabeledEvent] = []
    segments: list[EpicSoundsSegment] = []
    for split, rows in by_split.items():
        # EPIC-KITCHENS-100 files are sorted by narration_id as text (P01_11_1, P01_11_10, P01_11_100,
        # P01_11_11...); EPIC-SOUNDS files are in time order.
        rows_by_id = sorted(rows, key=lambda r: r[0].narration_id)
        write_epic100_annotations(annotations[split], [r[0] for r in rows_by_id], with_labels=split != "test")
        write_epic_sounds(sounds[split], [r[2] for r in rows],
                          layout="test_timestamps" if split == "test" else "annotations")
        narrations += [r[0] for r in rows_by_id]
        events_out += [r[1] for r in rows_by_id]
        segments += [r[2] for r in rows]
    paths = {name: root / f"EPIC_100_{name}.csv" for name in ("verb_classes", "noun_classes", "video_info")}
    write_epic100_classes(paths["verb_classes"], verbs)
    write_epic100_classes(paths["noun_classes"], nouns)
    write_epic100_video_info(paths["video_info"], [
        EpicVideoInfo(v.video_id, v.seconds, float(v.fps), f"{config.frame_width}x{config.frame_height}")
        for v in videos])
    audio_hdf5 = root / "EPIC-KITCHENS-100_audio.hdf5"
    write_epic_audio_hdf5(audio_hdf5, waves)
    return EpicWorld(root, annotations, paths["verb_classes"], paths["noun_classes"], paths["video_info"], audio_hdf5,
                     sounds, tuple(videos), tuple(narrations), tuple(events_out), tuple(segments), verbs, nouns)


def write_epic_pictures(world: EpicWorld, *, layout: str = "rgb_frames", preset: WorldConfig | str = BENCH,
                        jpeg_quality: int = 90) -> list[Path]:
    """Add the pictures to a :func:`write_epic_world` folder, in the official EPIC layout.

    Frame ``n`` (1-based) of a video is scene frame ``n - 1`` (at ``(n - 1) / fps`` s), so the
    csvs' ``start_frame``/``stop_frame`` index these files; a video of ``seconds`` has
    ``floor(seconds · fps)`` frames at the preset's size (its ``video_info`` resolution).

    Args:
        world: What :func:`write_epic_world` wrote.
        layout: ``"rgb_frames"``: ``<root>/<participant>/rgb_frames/<video_id>/frame_0000000001.jpg``
            ...; ``"videos"``: ``<root>/<participant>/videos/<video_id>.MP4`` (picture only; the
            audio stays in the HDF5).
        preset: The preset ``world`` was written with (its frame rate must be the videos').
        jpeg_quality: JPEG quality of the frames (0-100).

    Returns:
        The files written (jpgs in frame order, or one MP4 per video).
    """
    import cv2

    config = _config(preset)
    if layout not in ("rgb_frames", "videos"):
        raise ValueError(f"layout: expected 'rgb_frames' or 'videos', found {layout!r}")
    written: list[Path] = []
    for video in world.videos:
        if video.fps != config.fps:
            raise ValueError(f"preset: expected the preset {video.video_id} was written with ({video.fps} fps), "
                             f"found one at {config.fps} fps")
        scene = Scene(config, video.seed)
        count = math.floor(video.seconds * config.fps)
        names = dict(participant=video.participant_id, video_id=video.video_id)
        if layout == "videos":
            path = world.root / EPIC_VIDEO_FILE.format(**names)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_av_file(path, (scene.render_frame(k)[0] for k in range(count)), None, config.fps, None)
            written.append(path)
            continue
        for k in range(count):
            path = world.root / EPIC_RGB_FRAME.format(number=k + 1, **names)
            if k == 0:
                path.parent.mkdir(parents=True, exist_ok=True)
            rgb = scene.render_frame(k)[0]
            if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
                raise OSError(f"{path}: cv2 could not write the jpg")
            written.append(path)
    return written


# --------------------------------------------------------------------------------------------
# ESC-50


def write_esc50_world(out_dir: str | os.PathLike, seeds: Iterable[int], *, clips_per_seed: int = 1,
                      clip_seconds: float = 5.0, sample_rate: int = 44_100, preset: WorldConfig | str = BENCH,
                      layout: str = "current", exclusive: bool = True, search_seconds: float = 3600.0) -> Esc50World:
    """Write an ESC-50-style dataset: single-event clips as 16-bit wav, five folds by scene.

    A seed's clips all go to fold ``seed % 5 + 1`` (ESC-50 keeps clips of one source file in one
    fold) and are named ``<fold>-<seed>-<take>-<target>.wav`` (takes ``A``, ``B``, ...; target =
    class index, category = class name; ``esc10`` marks 10 of the 12 classes).

    Args:
        out_dir: Folder to write into (created).
        seeds: Scene seeds (any split).
        clips_per_seed: Clips per scene (at most 26).
        clip_seconds: Clip length (ESC-50: 5 s).
        sample_rate: Rate of the wav files (ESC-50: 44.1 kHz).
        preset: World preset (or its name).
        layout: ``"current"`` (``meta/esc50.csv``, ``target,category``) or ``"older"``
            (``esc50.csv`` at the root, ``category,category_name``).
        exclusive: Only clips in which no other event sounds.
        search_seconds: How far into each scene to look for events.

    Returns:
        The files, records and ground truth.
    """
    if not 0 <= clips_per_seed <= 26:
        raise ValueError(f"clips_per_seed: expected 0..26 (takes A..Z), found {clips_per_seed}")
    if layout not in ("current", "older"):
        raise ValueError(f"layout: expected 'current' or 'older', found {layout!r}")
    config = _config(preset)
    root = Path(out_dir)
    audio_dir = root / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    clips: list[Esc50Clip] = []
    truth: list[WorldClip] = []
    for seed in _seed_list(seeds):
        scene = Scene(config, seed)
        fold = seed % 5 + 1
        for k, (start, event) in enumerate(single_event_clips(scene, clips_per_seed, clip_seconds,
                                                              search_seconds=search_seconds, exclusive=exclusive)):
            take = chr(ord("A") + k)
            record = Esc50Clip(f"{fold}-{seed}-{take}-{event.class_index}.wav", fold, event.class_index, event.label,
                               event.label in _ESC10, str(seed), take)
            path = audio_dir / record.filename
            _write_wav_clip(path, scene, start, clip_seconds, sample_rate)
            clips.append(record)
            truth.append(_truth(path, scene, start, clip_seconds, sample_rate, None, event.label))
    if layout == "current":
        (root / "meta").mkdir(exist_ok=True)
        csv_path = root / "meta" / "esc50.csv"
    else:
        csv_path = root / "esc50.csv"
    write_esc50(csv_path, clips, layout=layout)
    return Esc50World(root, csv_path, audio_dir, tuple(clips), tuple(truth))


# --------------------------------------------------------------------------------------------
# AudioSet


def write_audioset_world(out_dir: str | os.PathLike, seeds: Iterable[int], *, segments_per_seed: int = 1,
                         segment_seconds: float = 10.0, sample_rate: int = 16_000, preset: WorldConfig | str = BENCH,
                         layout: str = "original", search_seconds: float = 600.0) -> AudioSetWorld:
    """Write an AudioSet-style dataset: multi-label segments with their wav clips.

    Each seed is one "YouTube video" (one synthetic id); its segments are consecutive
    ``segment_seconds`` windows from 0 s, skipping windows where nothing sounds (every AudioSet
    segment has a label). A segment's positive labels are the classes of every event
    overlapping it, as pseudo ontology ids ``/m/avlive_<class>`` (:func:`world_mid`), listed in
    ``class_labels_indices.csv`` with the class index as ``index``.

    Args:
        out_dir: Folder to write into (created).
        seeds: Scene seeds: train seeds go to ``balanced_train_segments.csv``, test seeds to
            ``eval_segments.csv``.
        segments_per_seed: Segments per scene.
        segment_seconds: Segment length (AudioSet: 10 s).
        sample_rate: Rate of the wav files.
        preset: World preset (or its name).
        layout: ``"original"`` (3 ``#`` lines, ``", "``) or ``"plain"`` (header line, ``","``).
        search_seconds: How far into each scene segments may lie.

    Returns:
        The files, records and ground truth.
    """
    config = _config(preset)
    root = Path(out_dir)
    audio_dir = root / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    files = {"train": "balanced_train_segments.csv", "test": "eval_segments.csv"}
    per_split: dict[str, list[tuple[AudioSetSegment, WorldClip]]] = {s: [] for s in files}
    for i, seed in enumerate(_seed_list(seeds)):
        split = _split_file(seed, {"train": "train", "test": "test"}, "AudioSet")
        scene = Scene(config, seed)
        ytid = synthetic_ytid(f"audioset:{seed}", style=i % 3)
        found, j = 0, 0
        while found < segments_per_seed:
            start = float(j * segment_seconds)
            j += 1
            if start + segment_seconds > search_seconds:
                raise ValueError(f"seed {seed}: found {found} of {segments_per_seed} segments with a sounding event "
                                 f"in the first {search_seconds:g} s; raise search_seconds")
            labels = _class_order(e.label for e in scene.events_between(start, start + segment_seconds))
            if not labels:
                continue
            segment = AudioSetSegment(ytid, start, start + segment_seconds, tuple(world_mid(x) for x in labels))
            path = audio_dir / audioset_wav_name(ytid, start, start + segment_seconds)
            _write_wav_clip(path, scene, start, segment_seconds, sample_rate)
            per_split[split].append((segment, _truth(path, scene, start, segment_seconds, sample_rate, None)))
            found += 1
    classes = tuple(AudioSetClass(i, world_mid(name), name) for i, name in enumerate(CLASS_NAMES))
    lists = {split: root / name for split, name in files.items()}
    for split, rows in per_split.items():
        write_audioset_segments(lists[split], [s for s, _ in rows], layout=layout, created=_AUDIOSET_CREATED)
    class_labels = root / "class_labels_indices.csv"
    write_audioset_class_labels(class_labels, classes)
    rows = [r for split in files for r in per_split[split]]
    return AudioSetWorld(root, lists, class_labels, audio_dir, tuple(s for s, _ in rows), tuple(t for _, t in rows),
                         classes)


# --------------------------------------------------------------------------------------------
# DESED / DCASE task 4


def write_desed_world(out_dir: str | os.PathLike, seeds: Iterable[int], *, clips_per_seed: int = 2,
                      clip_seconds: float = 10.0, sample_rate: int = 16_000, preset: WorldConfig | str = BENCH,
                      empty_clips_per_seed: int = 0, strong_decimals: int | None = 3,
                      search_seconds: float = 600.0, strong_train_clips_per_seed: int = 0) -> DesedWorld:
    """Write a DESED-style dataset: weak, unlabeled and strongly labelled wav clips.

    Clips are ``clip_seconds`` windows of a scene on a grid from 0 s, named
    ``Y<ytid>_<start>_<end>.wav`` with one synthetic id per scene.

    * Train seeds give ``clips_per_seed`` weak clips (labels = the classes sounding in the
      clip; windows where nothing sounds are passed over, as every weak clip has a label) and
      ``clips_per_seed`` unlabeled clips, taking grid windows in turn.
    * With ``strong_train_clips_per_seed``, train seeds also give that many strongly labelled
      clips (DESED's synthetic soundscapes: ``metadata/train/synthetic21_train/soundscapes.tsv``,
      wavs in ``audio/train/synthetic21_train/soundscapes/``), the grid windows after the weak and
      unlabeled ones.
    * Validation seeds (``metadata/validation/validation.tsv``) and test seeds
      (``metadata/eval/public.tsv``) give the first ``clips_per_seed`` grid windows with their
      events clipped to the clip (a window without events is a row with empty onset, offset and
      label), plus ``empty_clips_per_seed`` event-free windows found after them.

    Args:
        out_dir: Folder to write into (created).
        seeds: Scene seeds (any split).
        clips_per_seed: Clips per scene (per role for train seeds).
        clip_seconds: Clip length (DESED: 10 s).
        sample_rate: Rate of the wav files.
        preset: World preset (or its name).
        empty_clips_per_seed: Extra event-free clips per strong scene. Ten silent seconds are
            rare in the world; ask for them with short clips.
        strong_decimals: Fraction digits of strong onsets/offsets (None: full precision, as
            DESED's ``synthetic.tsv``).
        search_seconds: How far into each scene clips may lie.
        strong_train_clips_per_seed: Strongly labelled training clips per train seed (0: none,
            as before; DESED 2021 has 10 000 synthetic ones).

    Returns:
        The files, records and ground truth.
    """
    config = _config(preset)
    root = Path(out_dir)
    meta = {"weak": root / "metadata" / "train" / "weak.tsv",
            "unlabel_in_domain": root / "metadata" / "train" / "unlabel_in_domain.tsv",
            "validation": root / "metadata" / "validation" / "validation.tsv",
            "public": root / "metadata" / "eval" / "public.tsv"}
    audio_dirs = {"weak": root / "audio" / "train" / "weak",
                  "unlabel_in_domain": root / "audio" / "train" / "unlabel_in_domain",
                  "validation": root / "audio" / "validation", "public": root / "audio" / "eval" / "public"}
    if strong_train_clips_per_seed:
        meta["synthetic"] = root / "metadata" / "train" / "synthetic21_train" / "soundscapes.tsv"
        audio_dirs["synthetic"] = root / "audio" / "train" / "synthetic21_train" / "soundscapes"
    for p in [*meta.values(), *(d / "x" for d in audio_dirs.values())]:
        p.parent.mkdir(parents=True, exist_ok=True)
    clips: dict[str, list[WorldClip]] = {role: [] for role in meta}

    def window(scene: Scene, ytid: str, start: float, role: str) -> WorldClip:
        path = audio_dirs[role] / audioset_wav_name(ytid, start, start + clip_seconds)
        return _truth(path, scene, start, clip_seconds, sample_rate, None)

    def keep(scene: Scene, clip: WorldClip, role: str) -> None:
        _write_wav_clip(clip.path, scene, clip.start, clip.seconds, sample_rate)
        clips[role].append(clip)

    def too_far(seed: int, start: float, what: str) -> None:
        if start + clip_seconds > search_seconds:
            raise ValueError(f"seed {seed}: not enough {what} windows of {clip_seconds:g} s in the first "
                             f"{search_seconds:g} s; raise search_seconds or shorten the clips")

    for i, seed in enumerate(_seed_list(seeds)):
        scene = Scene(config, seed)
        ytid = synthetic_ytid(f"desed:{seed}", style=i % 3)
        split = seed_split(seed)
        if split == "train":
            n_weak = n_unlabeled = j = 0
            while n_weak < clips_per_seed or n_unlabeled < clips_per_seed:
                start = j * clip_seconds
                j += 1
                too_far(seed, start, "training")
                role = "weak" if n_weak < clips_per_seed and (n_weak <= n_unlabeled or n_unlabeled >= clips_per_seed) \
                    else "unlabel_in_domain"
                clip = window(scene, ytid, start, role)
                if role == "weak":
                    if not clip.events:
                        continue
                    n_weak += 1
                else:
                    n_unlabeled += 1
                keep(scene, clip, role)
            for k in range(strong_train_clips_per_seed):
                start = (j + k) * clip_seconds
                too_far(seed, start, "strong training")
                keep(scene, window(scene, ytid, start, "synthetic"), "synthetic")
        else:
            role = "validation" if split == "val" else "public"
            for j in range(clips_per_seed):
                too_far(seed, j * clip_seconds, "strong")
                keep(scene, window(scene, ytid, j * clip_seconds, role), role)
            start, n_empty = clips_per_seed * clip_seconds, 0
            while n_empty < empty_clips_per_seed:
                too_far(seed, start, "event-free")
                if not scene.events_between(start, start + clip_seconds):
                    keep(scene, window(scene, ytid, start, role), role)
                    n_empty += 1
                    start += clip_seconds
                else:
                    start += 0.5

    weak = tuple(WeakLabel(c.path.name, c.labels) for c in clips["weak"])
    unlabeled = tuple(c.path.name for c in clips["unlabel_in_domain"])
    strong = {role: StrongLabels.from_events([e for c in clips[role] for e in c.events],
                                             files=[c.path.name for c in clips[role]])
              for role in ("validation", "public", "synthetic") if role in meta}
    write_dcase_weak(meta["weak"], weak)
    write_dcase_unlabeled(meta["unlabel_in_domain"], unlabeled)
    for role, labels in strong.items():
        write_dcase_strong(meta[role], labels, decimals=strong_decimals)
    truth = tuple(c for role in meta for c in clips[role])
    return DesedWorld(root, meta["weak"], meta["unlabel_in_domain"],
                      {role: meta[role] for role in strong}, audio_dirs, weak, unlabeled, strong, truth)


# --------------------------------------------------------------------------------------------
# a plain folder of videos


def write_video_folder_world(out_dir: str | os.PathLike, seeds: Iterable[int], *, clips_per_seed: int = 1,
                             clip_seconds: float = 4.0, preset: WorldConfig | str = BENCH,
                             sample_rate: int = 16_000) -> VideoFolderWorld:
    """Write a folder of unlabeled mp4 clips (picture + AAC), nested by split and scene.

    Files are ``<split>/scene-<seed:06d>/clip-<k:03d>.mp4``, clip k covering
    ``[k · clip_seconds, (k + 1) · clip_seconds)`` of the scene; they are laid out with
    :func:`~models.datasets.formats.write_video_folder`.

    Args:
        out_dir: Folder to write into (created).
        seeds: Scene seeds (any split).
        clips_per_seed: Clips per scene.
        clip_seconds: Clip length.
        preset: World preset (frame size and rate).
        sample_rate: Audio rate.

    Returns:
        The files and the ground truth of each.
    """
    config = _config(preset)
    root = Path(out_dir)
    contents: dict[str, bytes] = {}
    truth_by_rel: dict[str, WorldClip] = {}
    with tempfile.TemporaryDirectory(prefix="avlive-video-folder-") as tmp:
        for seed in _seed_list(seeds):
            scene = Scene(config, seed)
            for k in range(clips_per_seed):
                rel = f"{seed_split(seed)}/scene-{seed:06d}/clip-{k:03d}.mp4"
                if rel in contents:
                    raise ValueError(f"video folder: seed {seed} given twice")
                start = k * clip_seconds
                tmp_path = Path(tmp) / "clip.mp4"
                _write_av_clip(tmp_path, scene, start, clip_seconds, sample_rate)
                contents[rel] = tmp_path.read_bytes()
                truth_by_rel[rel] = _truth(root / rel, scene, start, clip_seconds, sample_rate, config.fps)
    files = write_video_folder(root, contents)
    return VideoFolderWorld(root, tuple(files), tuple(truth_by_rel[f.relpath] for f in files))
