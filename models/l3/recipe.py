"""The ``l3`` training recipe: audio-visual correspondence (AVC) on the world or a folder of videos.

    python -m models.train --recipe l3-lite --out runs/l3-lite              # the demo localizer's run
    python -m models.train --recipe l3 --out runs/l3 size=lite              # the world, plain L³ defaults
    python -m models.train --recipe l3 --out runs/l3-vid --data DIR         # any folder of videos
    python -m apps.eval_l3 runs/l3-lite --write-threshold                   # threshold, then test figures

**Pairs** (:class:`AVCPairs`, after L³, REFERENCE.md §2.1). Every item is a frame and one second
of 48 kHz audio. A *positive* is a frame and the second centred on it from the same
video/scene (the alignment rule of :func:`models.l3.audio_window_for_frame`: frame ``k`` at
``t_k`` goes with samples ``[round(t_k·48000) − 24000, round(t_k·48000) + 24000)``). A
*negative* is the same kind of frame with a second taken from another video/scene; with
``same_video_negatives = p`` a fraction ``p`` of the negatives take their second from the same
video/scene instead, at least ``same_video_min_gap`` seconds away (where a source has no such
second the negative falls back to another source). Even indices are positives, odd ones
negatives, so every epoch is balanced 50/50 exactly and the shuffled batches nearly so.

Both sides of every pair are drawn from the same pool: frames whose centred second passes the
energy floor. A positive's frame and a negative's frame therefore come from the same
distribution, and so do their seconds of audio: loudness says nothing about the label, only
the correspondence does.

**Energy floor** (:class:`EnergyFloor`, computed from the audio alone, so it works on real
videos). Per source (a world scene or a video), the *background estimate* is the 10th
percentile of the level (dBFS) of its 100 ms frames. A second centred on a frame is used only
when its RMS level is at least ``max(background + 6 dB, −60 dBFS)``: 6 dB above the quiet
stretches of its own recording (an event at the world's lowest SNR, 0 dB, lifts a second only
3 dB), and never digital silence. Measured with the world's ground truth on 4 validation
scenes × 180 s (seconds every 0.25 s): the rule keeps 77 % of the seconds; 93.6 % of those kept
hold ≥ 0.25 s of an event and 1.6 % hold no event at all (against 13.2 % of all seconds); it
rejects 91 % of the event-free seconds and keeps 90 % of the seconds with an event. A local
background (10th percentile within ±3, ±5 or ±10 s) separated no better. ``apps.eval_l3``
prints the same figures on the test scenes (3 × 600 s: keeps 74 %; 91 % of those kept hold an
event, 2.5 % none against 16 % overall; rejects 89 % of event-free seconds, keeps 90 % of
seconds with an event).

**Augmentation** (training only; a pure function of ``(seed, epoch, index)``): a random square
crop of side 80–100 % of the frame's shorter side, resized to the input size; a horizontal flip
(p = 0.5; the world's looks are symmetric left-right, triangles point up or down); small colour
jitter (brightness, contrast and saturation each × U(0.9, 1.1)); and the paper's ±10 % audio
volume (× U(0.9, 1.1)). No hue change: colour is what tells some of the world's objects apart.

**Loss and head** (two decisions, both overridable). ``batch_negatives=true`` (default): a
batch's two subnets run once, and the AVC head scores *every* (frame, audio) combination of the
batch (:func:`pair_logits`); the diagonal is the dataset's pairs, and every off-diagonal
combination whose audio comes from another video/scene is one more negative of exactly the kind
above (a frame with a second from another source). Binary cross-entropy with positives and
negatives each carrying half the loss keeps the 50/50 balance. The extra negatives cost only the
head (B² small products) and cut the variance of the correspondence gradient, which is what
keeps AVC on a plateau at first. In 5-minute CPU trials with the tiny network (lr 1e-3, 32
pairs a batch), plain pairs stayed at chance for 800–1000 steps, on 16 scenes × 60 s as on
200 × 12 s; with batch negatives on 16 × 60 s scenes this recipe (avol head, its default lr)
reached validation AUC 0.63 and accuracy 0.61 after 600 steps (800 steps took 173 s; on the
test scenes that model is still near chance, AUC 0.54: a plateau left, not a trained model).
Long scenes matter as much: on 200 × 12 s scenes batch negatives did not help within 900
steps; objects and sounds that recur within a scene seem to be what gets the correspondence
started, hence ``train_scenes=64`` × ``scene_seconds=120``. ``batch_negatives=false`` is the
paper's loss.

**The scene shortcut, and same-scene groups.** Every world scene has its own backdrop gradient
and its own background-noise colour. With cross-scene negatives only, a network can tell a
positive from a negative by matching a frame's backdrop to the noise under the sound (64
training scenes are easily memorised) and never look at an object. The runs before
``scene_groups`` did exactly that: the best of them (``avol_cosine=true contrastive=1.0
positives_only=true lr=1e-3 warmup_steps=50 epochs=10``, 1280 steps, 38 minutes) reached
validation AUC 0.68 with a heatmap whose peak hit the sounding object no more often than chance
(pointing 23.5 % on the test scenes, chance 24.1 %), after ~700 steps at chance. With
``scene_groups=G`` a batch is ``batch_size / G`` scenes × ``G`` frames at least
``same_video_min_gap`` seconds apart, and those same-scene pairs are negatives too (of the
binary term and of InfoNCE): backdrop and noise are then shared by both sides of a negative, so
only the objects and the sound can tell it from a positive. Pointing on 93 hops of two
validation scenes then rose from chance to 0.31 after 256 steps, 0.77 after 896 and 0.62 after
1280 (a noisy gauge: the hops come from about 30 events), and validation AUC reached 0.77 by
step 1408, whose checkpoint is the demo localizer (``--recipe l3-lite``; its test figures are in
models/demo/README.md). The other options
were tried first against the long initial plateau and are kept because the demo run uses them:
``contrastive=W`` adds a symmetric InfoNCE term over the batch's positives
(:func:`contrastive_loss`); ``positives_only`` makes every training item a positive, the
batch's other pairs being the negatives; ``avol_cosine`` compares batch-normalised unit
projections (models/l3.py; the pooled audio features of two different seconds start with
cosine ≈ 0.97, 0.31 after the normalised projection).

``fusion="avol"`` (default; ``"concat"`` is the L³ paper's head applied per cell): the
AVOL-Net head (models/l3.py) makes the heatmap the head itself, the AVC probability being the
best cell's (multiple-instance learning), so the live peak score *is* the correspondence
confidence the threshold is set on.

**Optimisation**: Adam (L2 weight decay 1e-5 on conv and linear weights, as the paper), lr
5e-4 after 100 warm-up steps, cosine decay to 5 % of it. Evaluation after each epoch on a fixed
set of validation pairs: AVC accuracy (the primary figure), its per-kind split, and the AUC of
the AVC probability and of the heatmap's peak cell between positives and negatives.

**Data**: the world's train seeds (``train_scenes`` scenes, their first ``scene_seconds``),
audio rendered once at 48 kHz into the world cache (``$AVLIVE_CACHE``, memory-mapped), frames
rendered on demand; validation pairs from the validation seeds. With ``--data DIR``: every
video under ``DIR`` (:func:`~models.datasets.formats.read_video_folder`), decoded in
crash-contained worker processes (:func:`~models.io.decode_pool.decode_many`; a broken file costs
that file, listed in the log) to 48 kHz mono audio and ``video_fps`` frames per second at the
input size, the first ``video_seconds`` of each. Videos under a top-level ``val/`` (or
``validation/``) folder validate and those under ``test/`` are left out; without such folders
a fixed ``val_fraction`` of the files (by a hash of their relative path) validates. Audio
sample 0 is taken to be at time 0 of the video's timeline, as for files muxed from time 0.

**Threshold**: the trainer's loop writes metadata once, before training, so the localizer's
"no source" threshold is chosen afterwards on validation scenes:
``python -m apps.eval_l3 RUN --write-threshold`` (:func:`models.l3.evaluation.choose_threshold`,
:func:`models.l3.evaluation.write_threshold`). Until then ``extra["threshold"]`` is the live
default 0.5 with ``extra["threshold_source"] == "default"``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from models.core.atomic import atomic_path
from models.l3.network import (L3_LITE, L3_PAPER, L3_TINY, SAMPLE_RATE, WINDOW_SAMPLES, L3Config, L3Export, L3Net,
                 preprocess_frames)
from models.core.live import FRAME_AT_CENTRE
from models.l3.live import LABELS, HeatmapExport, example_inputs, heatmap_metadata
from models.core.metadata import ModelMetadata, TensorSpec
from models.evaluation.metrics import roc_auc_per_class
from models.core.train_config import TrainConfig
from models.core.recipe import Recipe
from models.world import Scene, WorldConfig, get_preset, split_seed
from models.world.cache import WORLD_CODE_VERSION, cache_dir
from models.world.presets import config_fingerprint

logger = logging.getLogger(__name__)

__all__ = [
    "SIZES",
    "LABELS",
    "KIND_POSITIVE",
    "KIND_OTHER_SOURCE",
    "KIND_SAME_SOURCE",
    "EnergyFloor",
    "FrameAugment",
    "AVSource",
    "WorldSource",
    "VideoSource",
    "AVCPairs",
    "L3TrainConfig",
    "L3Recipe",
    "L3LiteTrainConfig",
    "L3LiteRecipe",
    "contrastive_loss",
    "l3_config_for",
    "scene_audio",
    "world_sources",
    "video_sources",
    "augment_frame",
    "pair_logits",
    "HeatmapExport",
]

#: The network sizes the recipe trains (``size=...``).
SIZES: dict[str, L3Config] = {"paper": L3_PAPER, "lite": L3_LITE, "tiny": L3_TINY}
#: The AVC head's two classes, in logit order.
#: ``kind`` of an item: a positive, a negative from another source, a negative from the same source.
KIND_POSITIVE, KIND_OTHER_SOURCE, KIND_SAME_SOURCE = 0, 1, 2
_HALF = WINDOW_SAMPLES // 2


# --------------------------------------------------------------------------- energy floor


@dataclass(frozen=True)
class EnergyFloor:
    """Which seconds are loud enough to be a positive: RMS ≥ max(background + margin, absolute).

    Attributes:
        margin_db: dB above the source's background estimate.
        absolute_db: dBFS below which a second is never used (digital silence, near-silence).
        percentile: the background estimate is this percentile of the 100 ms frame levels.
        frame_seconds: length of the frames the background percentile is taken over.

    Raises:
        ValueError: a field out of range (named in the message).
    """

    margin_db: float = 6.0
    absolute_db: float = -60.0
    percentile: float = 10.0
    frame_seconds: float = 0.1

    def __post_init__(self) -> None:
        for name in ("margin_db", "absolute_db"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"EnergyFloor.{name}: expected a finite number of dB, found {getattr(self, name)!r}")
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f"EnergyFloor.percentile: expected 0..100, found {self.percentile!r}")
        if not self.frame_seconds > 0:
            raise ValueError(f"EnergyFloor.frame_seconds: expected > 0, found {self.frame_seconds!r}")

    def background_db(self, audio: np.ndarray, sample_rate: int) -> float:
        """The source's background level: the ``percentile`` of its frame levels, dBFS.

        Args:
            audio: ``(n,)`` samples (any float dtype; a memory map is read in chunks).
            sample_rate: Hz.
        """
        frame = max(1, int(round(self.frame_seconds * sample_rate)))
        n_frames = len(audio) // frame
        if n_frames == 0:
            raise ValueError(f"EnergyFloor: expected at least {frame} samples, found {len(audio)}")
        energies = np.empty(n_frames)
        step = max(1, (1 << 22) // frame)  # frames per chunk
        for i in range(0, n_frames, step):
            j = min(n_frames, i + step)
            block = np.asarray(audio[i * frame : j * frame], dtype=np.float64).reshape(j - i, frame)
            energies[i:j] = np.mean(block * block, axis=1)
        return float(np.percentile(10.0 * np.log10(energies + 1e-20), self.percentile))

    def floor_db(self, background_db: float) -> float:
        """The level a second must reach, dBFS."""
        return max(background_db + self.margin_db, self.absolute_db)

    @staticmethod
    def window_levels_db(audio: np.ndarray, starts: np.ndarray, length: int = WINDOW_SAMPLES) -> np.ndarray:
        """Exact RMS level (dBFS) of ``audio[s : s + length]`` for every ``s`` in ``starts``.

        Args:
            audio: ``(n,)`` samples.
            starts: ``(m,)`` int start samples, each with ``0 <= s`` and ``s + length <= n``.
            length: window length in samples.

        Returns:
            ``(m,)`` float64 dBFS (``10·log10(mean square + 1e-20)``).
        """
        starts = np.asarray(starts, dtype=np.int64)
        if len(starts) and (starts.min() < 0 or starts.max() + length > len(audio)):
            raise ValueError(f"window_levels_db: windows must lie inside the {len(audio)} samples, found starts "
                             f"{starts.min()}..{starts.max()} of length {length}")
        cum = np.empty(len(audio) + 1)
        cum[0] = 0.0
        step = 1 << 22
        total = 0.0
        for i in range(0, len(audio), step):
            block = np.asarray(audio[i : i + step], dtype=np.float64)
            c = np.cumsum(block * block) + total
            cum[i + 1 : i + 1 + len(block)] = c
            total = c[-1]
        energy = (cum[starts + length] - cum[starts]) / length
        return 10.0 * np.log10(np.maximum(energy, 0.0) + 1e-20)


# --------------------------------------------------------------------------- sources


class AVSource:
    """A video or a world scene: frames at known times and the audio under them, at 48 kHz.

    Subclasses fill ``name``, ``frame_times`` and ``audio`` and implement :meth:`frame`;
    :meth:`_finish` then computes every frame's centred-second level and eligibility.

    Attributes:
        name: a stable id (``synthetic:SEED`` or the video's relative path).
        frame_times: ``(n,)`` float64 seconds of the frames that can be used: those whose
            centred second lies inside the audio.
        audio: ``(samples,)`` float32 at 48 kHz (a memory map for world scenes).
        levels_db: ``(n,)`` RMS level of each frame's centred second, dBFS.
        background_db: the energy floor's background estimate for this source.
        floor_db: the level a second must reach to be used.
        eligible: ``(n,)`` int64 indices of the frames whose second passes the floor.
    """

    name: str
    frame_times: np.ndarray
    audio: np.ndarray

    def _finish(self, floor: EnergyFloor) -> None:
        centres = np.round(self.frame_times * SAMPLE_RATE).astype(np.int64)
        inside = (centres - _HALF >= 0) & (centres + _HALF <= len(self.audio))
        if not inside.all():
            raise ValueError(f"{self.name}: every usable frame needs its centred second inside the audio")
        self.background_db = floor.background_db(self.audio, SAMPLE_RATE)
        self.floor_db = floor.floor_db(self.background_db)
        self.levels_db = EnergyFloor.window_levels_db(self.audio, centres - _HALF)
        self.eligible = np.flatnonzero(self.levels_db >= self.floor_db)

    def __len__(self) -> int:
        return len(self.frame_times)

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (of ``frame_times``) as ``(H, W, 3)`` uint8 RGB."""
        raise NotImplementedError

    def centre_sample(self, i: int) -> int:
        """The 48 kHz sample at frame ``i``'s time (the centre of its second)."""
        return int(round(float(self.frame_times[i]) * SAMPLE_RATE))

    def window(self, i: int) -> np.ndarray:
        """The second centred on frame ``i``: ``(48000,)`` float32 (the alignment rule)."""
        c = self.centre_sample(i)
        return np.array(self.audio[c - _HALF : c + _HALF], dtype=np.float32)


class WorldSource(AVSource):
    """One world scene over ``[0, seconds)``: audio pre-rendered (:func:`scene_audio`), frames on demand.

    Frame ``i`` of the source is scene frame ``first_frame + i``.

    Attributes:
        scene: the :class:`~models.world.Scene`.
        seed: its seed.
        first_frame: scene frame index of source frame 0.
    """

    def __init__(self, config: WorldConfig, seed: int, audio: np.ndarray, floor: EnergyFloor = EnergyFloor()):
        """Args:
            config: the world preset.
            seed: the scene seed.
            audio: ``(round(seconds·48000),)`` float32, the scene's first ``seconds`` at 48 kHz.
            floor: the energy floor.
        """
        self.config, self.seed, self.audio = config, int(seed), audio
        self.scene = Scene(config, self.seed, event_cache=8)
        self.name = f"synthetic:{self.seed}"
        fps = config.fps
        first = math.ceil(0.5 * fps)  # t_k ≥ 0.5 s
        last = math.floor((len(audio) / SAMPLE_RATE - 0.5) * fps)  # t_k + 0.5 s ≤ the end
        while first <= last and round(last / fps * SAMPLE_RATE) + _HALF > len(audio):
            last -= 1
        if last < first:
            raise ValueError(f"{self.name}: expected at least 1 s of audio, found {len(audio) / SAMPLE_RATE:.3f} s")
        self.first_frame = first
        self.frame_times = np.arange(first, last + 1) / fps
        self._finish(floor)

    def scene_frame(self, i: int) -> int:
        """The scene's frame index of source frame ``i``."""
        return self.first_frame + int(i)

    def frame(self, i: int) -> np.ndarray:
        return self.scene.render_frame(self.scene_frame(i))[0]

    def __getstate__(self) -> dict:  # the scene's caches stay behind; it is rebuilt on arrival
        state = dict(self.__dict__)
        state.pop("scene")
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.scene = Scene(self.config, self.seed, event_cache=8)


class VideoSource(AVSource):
    """One decoded video: frames sampled at a fixed rate and their audio, all in memory."""

    def __init__(self, name: str, audio: np.ndarray, frames: np.ndarray, times: np.ndarray,
                 floor: EnergyFloor = EnergyFloor()):
        """Args:
            name: the video's relative path.
            audio: ``(samples,)`` float32 mono at 48 kHz, sample 0 at time 0.
            frames: ``(n, H, W, 3)`` uint8 RGB.
            times: ``(n,)`` seconds of the frames.
            floor: the energy floor.

        Raises:
            ValueError: no frame has a full centred second of audio.
        """
        times = np.asarray(times, dtype=np.float64)
        centres = np.round(times * SAMPLE_RATE).astype(np.int64)
        keep = (centres - _HALF >= 0) & (centres + _HALF <= len(audio))
        if not keep.any():
            raise ValueError(f"{name}: no frame has a full second of audio centred on it "
                             f"({len(audio) / SAMPLE_RATE:.2f} s of audio, {len(times)} frames)")
        self.name = name
        self.audio = np.ascontiguousarray(audio, dtype=np.float32)
        self.frames = np.ascontiguousarray(frames[keep])
        self.frame_times = times[keep]
        self._finish(floor)

    def frame(self, i: int) -> np.ndarray:
        return self.frames[i]


def _scene_audio_path(config: WorldConfig, seed: int, seconds: float) -> Path:
    key = hashlib.sha256(f"{config_fingerprint(config)}:{WORLD_CODE_VERSION}".encode()).hexdigest()[:16]
    return cache_dir() / "world" / f"scene-{key}-{seed}-{int(round(seconds * 1000))}ms-{SAMPLE_RATE}.npy"


def _render_scene_audio(args: tuple[WorldConfig, int, float]) -> str:
    """Render a scene's first ``seconds`` at 48 kHz into the cache, in 10 s chunks (worker side)."""
    config, seed, seconds = args
    path = _scene_audio_path(config, seed, seconds)
    if path.exists():
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * SAMPLE_RATE))
    scene = Scene(config, seed, event_cache=8)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n,))
        chunk = 10 * SAMPLE_RATE  # chunked rendering equals one-shot rendering bit for bit
        for start in range(0, n, chunk):
            out[start : min(n, start + chunk)] = scene.render_audio(start, min(chunk, n - start), SAMPLE_RATE)
        out.flush()
        del out
    return str(path)


def scene_audio(config: WorldConfig, seeds: Sequence[int], seconds: float, workers: int = 0) -> list[np.ndarray]:
    """Each scene's first ``seconds`` at 48 kHz, from the world cache or rendered into it.

    Args:
        config: world preset.
        seeds: scene seeds.
        seconds: how much of each scene.
        workers: processes to render missing scenes with (0: in this process).

    Returns:
        One read-only memory map ``(round(seconds·48000),)`` float32 per seed.
    """
    jobs = [(config, int(s), float(seconds)) for s in seeds if not _scene_audio_path(config, int(s), seconds).exists()]
    if jobs and workers > 0 and len(jobs) > 1:
        # spawn, not fork: the parent may hold torch's thread pools
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_render_scene_audio, jobs))
    else:
        for job in jobs:
            _render_scene_audio(job)
    return [np.load(_scene_audio_path(config, int(s), seconds), mmap_mode="r") for s in seeds]


def world_sources(config: WorldConfig, seeds: Sequence[int], seconds: float, floor: EnergyFloor = EnergyFloor(),
                  workers: int = 0) -> list[WorldSource]:
    """:class:`WorldSource` of each seed over its first ``seconds`` (audio from the cache)."""
    return [WorldSource(config, s, a, floor) for s, a in zip(seeds, scene_audio(config, seeds, seconds, workers))]


def _decode_video(spec, *, image_size: int, fps: float, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worker side of :func:`video_sources`: (audio 48 kHz, frames (n, S, S, 3), times (n,))."""
    from models.io.media import MediaDecodeError, read_audio, read_video_frames

    audio, _ = read_audio(spec.path, sample_rate=SAMPLE_RATE, mono=True, stop=seconds)
    frames, times = read_video_frames(spec.path, stop=seconds, size=(image_size, image_size))
    if len(frames) == 0:
        raise MediaDecodeError(spec.path, "no video frames")
    # keep the decoded frame nearest to each point of a fps grid (each frame at most once)
    grid = np.arange(0.5, times[-1] + 1e-9, 1.0 / fps) if times[-1] >= 0.5 else times[:1]
    picks = np.unique(np.abs(times[None, :] - grid[:, None]).argmin(axis=1))
    return audio, frames[picks], times[picks]


def video_sources(files, image_size: int, fps: float, seconds: float, floor: EnergyFloor = EnergyFloor(),
                  workers: int = 2, timeout_s: float = 120.0) -> list[VideoSource]:
    """Decode videos into :class:`VideoSource` s through the crash-contained decode pool.

    Args:
        files: :class:`~models.datasets.formats.MediaFile` records (a folder's videos).
        image_size: frames are scaled (squashed) to this square size, as the network's input.
        fps: frames kept per second of video.
        seconds: only the first ``seconds`` of each video are read.
        floor: the energy floor.
        workers: decoder processes.
        timeout_s: seconds one video may take.

    Returns:
        The sources that decoded and hold at least one usable frame, in input order; the others
        are skipped with a warning (missing, undecodable, crashing, too short).
    """
    from models.datasets.clips import ClipIndex
    from models.io.decode_pool import SkipReport, decode_many

    index = ClipIndex.from_media_files(files)
    report = SkipReport()
    fn = functools.partial(_decode_video, image_size=int(image_size), fps=float(fps), seconds=float(seconds))
    out = []
    for spec, (audio, frames, times) in decode_many(list(index.clips), fn, workers=workers, timeout_s=timeout_s,
                                                    report=report):
        try:
            out.append(VideoSource(spec.key, audio, frames, times, floor))
        except ValueError as e:
            report.add(spec, f"error: {e}")
    if report.count:
        logger.warning("%s", report.summary())
    return out


# --------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class FrameAugment:
    """Training-time frame augmentation.

    Attributes:
        crop_min: smallest side of the random square crop, as a fraction of the shorter side
            (1.0: no crop).
        flip: random horizontal flip with p = 0.5.
        jitter: brightness, contrast and saturation each scaled by U(1 − jitter, 1 + jitter).
    """

    crop_min: float = 0.8
    flip: bool = True
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.crop_min <= 1.0:
            raise ValueError(f"FrameAugment.crop_min: expected in (0, 1], found {self.crop_min!r}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"FrameAugment.jitter: expected in [0, 1), found {self.jitter!r}")


def augment_frame(frame: np.ndarray, image_size: int, aug: FrameAugment | None,
                  rng: np.random.Generator | None) -> torch.Tensor:
    """A frame as the vision input, augmented when ``aug`` is given.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        image_size: side ``S`` of the input.
        aug: the augmentation, or None for the plain :func:`~models.l3.preprocess_frames`.
        rng: the item's generator (needed with ``aug``).

    Returns:
        ``(3, S, S)`` float32 in [-1, 1].
    """
    if aug is None:
        return preprocess_frames(frame, image_size)[0]
    h, w = frame.shape[:2]
    side = min(h, w)
    crop = max(1, int(round(side * rng.uniform(aug.crop_min, 1.0))))
    y0 = int(rng.integers(0, h - crop + 1))
    x0 = int(rng.integers(0, w - crop + 1))
    patch = frame[y0 : y0 + crop, x0 : x0 + crop]
    if aug.flip and rng.random() < 0.5:
        patch = patch[:, ::-1]
    patch = np.ascontiguousarray(patch)
    interp = cv2.INTER_AREA if crop > image_size else cv2.INTER_LINEAR
    x = cv2.resize(patch, (image_size, image_size), interpolation=interp).astype(np.float32)
    b, c, s = (float(v) for v in rng.uniform(1.0 - aug.jitter, 1.0 + aug.jitter, 3))
    x *= b  # brightness
    x = x.mean() + (x - x.mean()) * c  # contrast
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * s  # saturation
    x = np.clip(x, 0.0, 255.0) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))


# --------------------------------------------------------------------------- pairs


class AVCPairs(Dataset):
    """Positive and negative (frame, second of audio) pairs, items addressed by ``(epoch, index)``.

    Item ``(epoch, index)`` is a pure function of ``(seed, epoch, index)`` (of ``(seed, index)``
    when ``fixed``): even indices are positives, odd ones negatives.

    Args:
        sources: at least two sources with eligible frames.
        size: items per epoch.
        image_size: side of the vision input.
        seed: seeds every draw.
        same_video_negatives: fraction of negatives whose audio comes from the frame's own source.
        same_video_min_gap: seconds between the frame and such a negative's centre, at least.
        augment: frame augmentation, or None.
        gain: audio volume × U(1 − gain, 1 + gain) when > 0.
        fixed: ignore the epoch (evaluation sets).
        positives_only: every item is a positive (with ``batch_negatives`` the batch's cross-source
            combinations are the negatives, so the dataset's own negatives add nothing).
        group_size: with ``positives_only``, consecutive runs of ``group_size`` indices (index //
            group_size) share one source and take frames at least ``same_video_min_gap`` seconds
            apart (as far as the source allows), so that a batch cut in index order holds
            same-source pairs at different times: the recipe's ``scene_groups`` negatives.

    Items are dicts: ``frames (3, S, S)`` float32, ``audio (48000,)`` float32, ``label`` int64
    (1 = corresponds), ``kind`` int64 (:data:`KIND_POSITIVE`, :data:`KIND_OTHER_SOURCE`,
    :data:`KIND_SAME_SOURCE`), and the addresses ``frame_source``, ``frame_index``,
    ``audio_source``, ``audio_index`` (int64; source index and frame index within it: the
    audio is the second centred on that frame), ``frame_time`` (float64 seconds of the frame in
    its source).

    Raises:
        ValueError: fewer than two sources with eligible frames, or a bad argument.
    """

    def __init__(self, sources: Sequence[AVSource], size: int, image_size: int, seed: int = 0, *,
                 same_video_negatives: float = 0.0, same_video_min_gap: float = 2.0,
                 augment: FrameAugment | None = None, gain: float = 0.0, fixed: bool = False,
                 positives_only: bool = False, group_size: int = 1):
        if size < 1:
            raise ValueError(f"AVCPairs.size: expected >= 1, found {size}")
        if not 0.0 <= same_video_negatives <= 1.0:
            raise ValueError(f"same_video_negatives: expected a fraction in [0, 1], found {same_video_negatives!r}")
        if not 0.0 <= gain < 1.0:
            raise ValueError(f"gain: expected in [0, 1), found {gain!r}")
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1 \
                or (group_size > 1 and not positives_only):
            raise ValueError(f"group_size: expected a positive int, and 1 unless positives_only, found {group_size!r} "
                             f"(positives_only={positives_only})")
        self.group_size = group_size
        self.sources = list(sources)
        self.pool = [i for i, s in enumerate(self.sources) if len(s.eligible)]
        if len(self.pool) < 2:
            raise ValueError(f"AVCPairs: expected at least 2 sources with seconds above the energy floor, found "
                             f"{len(self.pool)} of {len(self.sources)}")
        self.size, self.image_size, self.seed = int(size), int(image_size), int(seed)
        self.same_video_negatives, self.same_video_min_gap = float(same_video_negatives), float(same_video_min_gap)
        self.augment, self.gain, self.fixed = augment, float(gain), bool(fixed)
        self.positives_only = bool(positives_only)

    def __len__(self) -> int:
        return self.size

    def address(self, epoch: int, index: int) -> tuple[int, int, int, int, int, np.random.Generator]:
        """``(kind, frame_source, frame_index, audio_source, audio_index, rng)`` of an item; the
        generator continues with the augmentation draws."""
        rng = np.random.default_rng([self.seed, 0 if self.fixed else int(epoch), int(index)])
        if self.group_size > 1:
            a, frames = self._group(epoch, index // self.group_size)
            k = frames[index % self.group_size]
            return KIND_POSITIVE, a, k, a, k, rng
        a = self.pool[int(rng.integers(len(self.pool)))]
        src = self.sources[a]
        k = int(src.eligible[int(rng.integers(len(src.eligible)))])
        if index % 2 == 0 or self.positives_only:
            return KIND_POSITIVE, a, k, a, k, rng
        if rng.random() < self.same_video_negatives:
            far = np.abs(src.frame_times[src.eligible] - src.frame_times[k]) >= self.same_video_min_gap
            choices = src.eligible[far]
            if len(choices):
                return KIND_SAME_SOURCE, a, k, a, int(choices[int(rng.integers(len(choices)))]), rng
        b = self.pool[int(rng.integers(len(self.pool) - 1))]
        b = b if b != a else self.pool[-1]  # uniform over the other sources
        other = self.sources[b]
        return KIND_OTHER_SOURCE, a, k, b, int(other.eligible[int(rng.integers(len(other.eligible)))]), rng

    def _group(self, epoch: int, group: int) -> tuple[int, list[int]]:
        """The source of a group and its ``group_size`` frame indices, spread ``same_video_min_gap`` apart
        where the source allows (a frame that cannot be placed after 32 draws is taken anyway)."""
        rng = np.random.default_rng([self.seed, 0 if self.fixed else int(epoch), int(group), 1])
        a = self.pool[int(rng.integers(len(self.pool)))]
        src = self.sources[a]
        chosen: list[int] = []
        for _ in range(self.group_size):
            for _attempt in range(32):
                k = int(src.eligible[int(rng.integers(len(src.eligible)))])
                if all(abs(src.frame_times[k] - src.frame_times[c]) >= self.same_video_min_gap for c in chosen):
                    break
            chosen.append(k)
        return a, chosen

    def __getitem__(self, address) -> dict[str, torch.Tensor]:
        epoch, index = address if isinstance(address, tuple) else (0, address)
        if not 0 <= index < self.size:
            raise IndexError(f"AVCPairs: index {index} out of range for {self.size} items")
        kind, a, k, b, j, rng = self.address(epoch, index)
        frames = augment_frame(self.sources[a].frame(k), self.image_size, self.augment, rng)
        audio = self.sources[b].window(j)
        if self.gain > 0:
            audio *= np.float32(rng.uniform(1.0 - self.gain, 1.0 + self.gain))
        return {
            "frames": frames, "audio": torch.from_numpy(audio),
            "label": torch.tensor(int(kind == KIND_POSITIVE)), "kind": torch.tensor(kind),
            "frame_source": torch.tensor(a), "frame_index": torch.tensor(k),
            "audio_source": torch.tensor(b), "audio_index": torch.tensor(j),
            "frame_time": torch.tensor(float(self.sources[a].frame_times[k]), dtype=torch.float64),
        }


def pair_logits(model: L3Net, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """The correspondence logit of every (frame, audio) combination of a batch, one pass per subnet.

    Args:
        model: the network (concat or avol head).
        frames: ``(B, 3, S, S)`` preprocessed frames.
        audio: ``(B, 48000)``.

    Returns:
        ``(B, B)``: entry ``[i, j]`` is ``logit_yes − logit_no`` of frame ``i`` with audio ``j``;
        the diagonal equals the AVC logits of :meth:`~models.l3.L3Net.forward` (so its sigmoid
        is the AVC probability).
    """
    vision_map = model.vision_map(frames)  # (B, Cv, h, w)
    a = model.embed_audio(audio)  # (B, Ca)
    head = model.fusion
    if model.config.fusion == "concat":
        v = vision_map.amax(dim=(2, 3))  # (B, Cv)
        w_v, w_a = head.fc1.weight[:, : head.vision_dim], head.fc1.weight[:, head.vision_dim :]
        hidden = F.relu((v @ w_v.T)[:, None, :] + (a @ w_a.T + head.fc1.bias)[None, :, :])  # (B, B, hidden)
        logits = hidden @ head.fc2.weight.T + head.fc2.bias  # (B, B, 2)
        return logits[..., 1] - logits[..., 0]
    pv, pa = head.project(vision_map, a)  # (B, D, h, w), (B, D)
    z = head.scale * torch.einsum("idhw,jd->ijhw", pv, pa) + head.bias  # (B, B, h, w)
    return z.flatten(2).amax(dim=2)


def contrastive_loss(z: torch.Tensor, label: torch.Tensor, frame_source: torch.Tensor,
                     may_correspond: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a batch's positive pairs: each positive frame must pick its own
    audio among the batch's positive audios, and each audio its own frame.

    A softmax over the batch gives every positive a gradient against all of the batch's other
    sources at once, which breaks the binary AVC loss's long initial plateau on the world
    (loss at chance for hundreds of steps). Pairs of two positives from the same source (which
    may well correspond) are left out of the softmax.

    Args:
        z: ``(B, B)`` pair logits (:func:`pair_logits`).
        label: ``(B,)`` bool, the items that are positive pairs.
        frame_source: ``(B,)`` int64 source of each item's frame.
        may_correspond: ``(B, B)`` bool, off-diagonal pairs to leave out instead of every
            same-source pair (the recipe's ``scene_groups`` keeps same-source pairs far apart in time).

    Returns:
        A scalar; 0 (with a gradient path) with fewer than two positives.
    """
    pos = torch.nonzero(label).squeeze(1)
    if len(pos) < 2:
        return z.sum() * 0
    zz = z[pos][:, pos]  # (P, P): positive frames × positive audios
    if may_correspond is None:
        src = frame_source[pos]
        same = src[:, None] == src[None, :]
    else:
        same = may_correspond[pos][:, pos]
    same = same & ~torch.eye(len(pos), dtype=torch.bool, device=z.device)
    zz = zz.masked_fill(same, float("-inf"))
    target = torch.arange(len(pos), device=z.device)
    return 0.5 * (F.cross_entropy(zz, target) + F.cross_entropy(zz.T, target))


# --------------------------------------------------------------------------- recipe


@dataclass(frozen=True)
class L3TrainConfig(TrainConfig):
    """The ``l3`` recipe's settings (``key=value`` on the command line)."""

    epochs: int = 12
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-5  # Adam's L2 term on conv/linear weights (the paper's)
    warmup_steps: int = 100
    lr_min_factor: float = 0.05
    size: str = "lite"  # "lite", "paper" or "tiny" (models/l3.py presets)
    fusion: str = "avol"  # "avol" (AVOL-Net: the map is the head) or "concat" (the L³ head, applied per cell)
    avol_cosine: bool = False  # avol: cosine similarity of the projections with a learned scale (models/l3.py)
    world: str = "bench"  # world preset (ignored with --data)
    train_scenes: int = 64  # train seeds, the first scene_seconds of each
    scene_seconds: float = 120.0
    items_per_epoch: int = 4096
    val_scenes: int = 8
    val_scene_seconds: float = 60.0
    val_items: int = 512
    same_video_negatives: float = 0.0  # fraction of negatives from the frame's own video/scene
    same_video_min_gap: float = 2.0  # seconds between such a negative's second and the frame
    floor_margin_db: float = 6.0  # energy floor: ≥ background + this ...
    floor_absolute_db: float = -60.0  # ... and ≥ this dBFS
    floor_percentile: float = 10.0  # background = this percentile of 100 ms frame levels
    crop_min: float = 0.8  # random square crop, side ≥ this fraction of the shorter side
    flip: bool = True
    jitter: float = 0.1  # brightness/contrast/saturation × U(1 ± jitter)
    gain: float = 0.1  # audio volume × U(1 ± gain) (the paper's ±10 %)
    batch_negatives: bool = True  # also every cross-source (frame, audio) combination of a batch, 50/50 weighted
    contrastive: float = 0.0  # weight of a symmetric InfoNCE term over the batch's positive pairs (needs batch_negatives)
    positives_only: bool = False  # training items all positives; negatives = the batch's cross-source pairs (needs batch_negatives)
    scene_groups: int = 1  # > 1 (needs positives_only): a batch is batch_size / scene_groups sources × scene_groups frames
    # ≥ same_video_min_gap apart, and those same-source pairs are negatives too (see the module docstring)
    video_fps: float = 2.0  # --data: frames kept per second of video
    video_seconds: float = 10.0  # --data: seconds read per video
    val_fraction: float = 0.1  # --data without val/ folder: fraction of videos that validate
    render_workers: int = 2  # processes rendering world audio into the cache (0: in-process)

    def validate(self) -> None:
        super().validate()
        if self.size not in SIZES:
            raise ValueError(f"size: expected one of {sorted(SIZES)}, found {self.size!r}")
        if self.fusion not in ("concat", "avol"):
            raise ValueError(f"fusion: expected 'concat' or 'avol', found {self.fusion!r}")
        get_preset(self.world)
        for name in ("train_scenes", "val_scenes", "items_per_epoch", "val_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, found {getattr(self, name)}")
        if self.train_scenes < 2 or self.val_scenes < 2:
            raise ValueError(f"train_scenes and val_scenes: expected >= 2 (negatives come from another scene), "
                             f"found {self.train_scenes} and {self.val_scenes}")
        for name in ("scene_seconds", "val_scene_seconds", "video_seconds"):
            if getattr(self, name) < 2.0:
                raise ValueError(f"{name}: expected >= 2 s, found {getattr(self, name)}")
        if not 0.0 <= self.same_video_negatives <= 1.0:
            raise ValueError(f"same_video_negatives: expected a fraction in [0, 1], found {self.same_video_negatives}")
        if not 0.0 <= self.gain < 1.0:
            raise ValueError(f"gain: expected in [0, 1), found {self.gain}")
        if self.positives_only and not self.batch_negatives:
            raise ValueError("positives_only: expected batch_negatives=true (the batch's cross pairs are then the only negatives)")
        if self.scene_groups < 1 or self.batch_size % self.scene_groups or (self.scene_groups > 1 and not self.positives_only):
            raise ValueError(f"scene_groups: expected a divisor of batch_size ({self.batch_size}), and 1 unless "
                             f"positives_only, found {self.scene_groups} (positives_only={self.positives_only})")
        if self.contrastive < 0 or (self.contrastive > 0 and not self.batch_negatives):
            raise ValueError(f"contrastive: expected >= 0, and 0 without batch_negatives, found {self.contrastive} "
                             f"(batch_negatives={self.batch_negatives})")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected in (0, 1), found {self.val_fraction}")
        if self.video_fps <= 0:
            raise ValueError(f"video_fps: expected > 0, found {self.video_fps}")
        self.energy_floor()
        self.frame_augment()

    def energy_floor(self) -> EnergyFloor:
        return EnergyFloor(self.floor_margin_db, self.floor_absolute_db, self.floor_percentile)

    def frame_augment(self) -> FrameAugment:
        return FrameAugment(self.crop_min, self.flip, self.jitter)


def l3_config_for(size: str, fusion: str = "concat") -> L3Config:
    """The network config of a recipe size (:data:`SIZES`) with the chosen fusion head."""
    if size not in SIZES:
        raise ValueError(f"size: expected one of {sorted(SIZES)}, found {size!r}")
    return dataclasses.replace(SIZES[size], fusion=fusion)


def _split_of(relpath: str, val_fraction: float) -> str:
    """'train', 'val' or 'test' for a file of a video folder (see the module docstring)."""
    top = relpath.split("/", 1)[0].lower() if "/" in relpath else ""
    if top in ("train", "training"):
        return "train"
    if top in ("val", "valid", "validation"):
        return "val"
    if top in ("test", "eval"):
        return "test"
    h = int(hashlib.sha256(relpath.encode()).hexdigest()[:8], 16) / 16**8
    return "val" if h < val_fraction else "train"


def _binary_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_per_class(scores[:, None], labels[:, None].astype(np.float64))[0])


class L3Recipe(Recipe):
    """L³-Net AVC training (see the module docstring)."""

    name = "l3"
    description = "L3-Net audio-visual correspondence (1 s at 48 kHz + the frame at its centre): the sound-source heatmap"
    config_class = L3TrainConfig
    primary_metric = "avc_acc"
    data_help = "optional: a folder of videos (any layout; val/ and test/ top folders are honoured)"

    @property
    def shuffle_train(self) -> bool:
        """``scene_groups`` needs batches cut in index order (items are random functions of the index anyway)."""
        return self.config.scene_groups == 1

    @property
    def network_config(self) -> L3Config:
        return dataclasses.replace(l3_config_for(self.config.size, self.config.fusion), avol_cosine=self.config.avol_cosine)

    def build_model(self) -> nn.Module:
        return L3Net(self.network_config)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Adam; L2 weight decay on conv and linear weights only (not BN, biases, calibration)."""
        return torch.optim.Adam(self.param_groups(model), lr=self.config.lr)

    def sources(self, data: Path | None) -> tuple[list[AVSource], list[AVSource]]:
        """(train, validation) sources: world scenes, or the videos of ``data``."""
        c = self.config
        floor = c.energy_floor()
        if data is None:
            world = get_preset(c.world)
            train = world_sources(world, [split_seed("train", i) for i in range(c.train_scenes)], c.scene_seconds,
                                  floor, c.render_workers)
            val = world_sources(world, [split_seed("val", i) for i in range(c.val_scenes)], c.val_scene_seconds,
                                floor, c.render_workers)
            return train, val
        from models.datasets.formats import read_video_folder

        files = [f for f in read_video_folder(data) if f.kind == "video"]
        split = {f.relpath: _split_of(f.relpath, c.val_fraction) for f in files}
        train_files = [f for f in files if split[f.relpath] == "train"]
        val_files = [f for f in files if split[f.relpath] == "val"]
        if len(train_files) < 2 or len(val_files) < 2:
            raise ValueError(f"{data}: expected at least 2 training and 2 validation videos, found {len(train_files)} "
                             f"and {len(val_files)} of {len(files)} (add videos, a val/ folder or raise val_fraction)")
        size = self.network_config.image_size
        workers = max(1, c.num_workers)
        train = video_sources(train_files, size, c.video_fps, c.video_seconds, floor, workers)
        val = video_sources(val_files, size, c.video_fps, c.video_seconds, floor, workers)
        return train, val

    def build_datasets(self, data: Path | None) -> tuple[Dataset, Dataset]:
        c = self.config
        train_sources, val_sources = self.sources(data)
        size = self.network_config.image_size
        train = AVCPairs(train_sources, c.items_per_epoch, size, c.seed, positives_only=c.positives_only,
                         group_size=c.scene_groups,
                         same_video_negatives=c.same_video_negatives,
                         same_video_min_gap=c.same_video_min_gap, augment=c.frame_augment(), gain=c.gain)
        val = AVCPairs(val_sources, c.val_items, size, 12_345, same_video_negatives=c.same_video_negatives,
                       same_video_min_gap=c.same_video_min_gap, fixed=True)
        return train, val

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        """Mean loss of a batch: cross-entropy of the AVC decision; with ``batch_negatives`` every cross combination of a
        frame and another source's audio in the batch is a negative too, and positives and
        negatives each carry half the loss (:func:`pair_logits`)."""
        if not self.config.batch_negatives:
            return F.cross_entropy(model(batch["frames"], batch["audio"]), batch["label"])
        if isinstance(model, nn.parallel.DistributedDataParallel):
            raise ValueError("batch_negatives: expected a single process (the pairwise term bypasses DDP's forward); "
                             "pass batch_negatives=false under torchrun")
        z = pair_logits(model, batch["frames"], batch["audio"])  # (B, B)
        label = batch["label"].bool()
        positive = torch.diag(label)
        negative = batch["frame_source"][:, None] != batch["audio_source"][None, :]  # includes the dataset's negatives
        negative |= torch.diag(~label)
        may_correspond = None
        if self.config.scene_groups > 1:  # same source, far apart in time: a negative as well
            apart = (batch["frame_time"][:, None] - batch["frame_time"][None, :]).abs() >= self.config.same_video_min_gap
            negative |= apart
            may_correspond = ~negative
        loss_pos = F.binary_cross_entropy_with_logits(z[positive], torch.ones_like(z[positive])) if positive.any() else z.sum() * 0
        loss_neg = F.binary_cross_entropy_with_logits(z[negative], torch.zeros_like(z[negative])) if negative.any() else z.sum() * 0
        loss = 0.5 * (loss_pos + loss_neg)
        if self.config.contrastive > 0:
            loss = loss + self.config.contrastive * contrastive_loss(z, label, batch["frame_source"], may_correspond)
        return loss

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        probs, peaks, labels, kinds, losses = [], [], [], [], []
        for b in loader:
            logits, cells = model.forward_all(b["frames"], b["audio"])
            losses.append(F.cross_entropy(logits, b["label"], reduction="sum").item())
            probs.append(logits.softmax(1)[:, 1].cpu())
            peaks.append(cells.flatten(1).amax(1).cpu())
            labels.append(b["label"].cpu())
            kinds.append(b["kind"].cpu())
        p, peak = torch.cat(probs).numpy(), torch.cat(peaks).numpy()
        y, kind = torch.cat(labels).numpy(), torch.cat(kinds).numpy()
        correct = (p >= 0.5) == (y == 1)
        figures = {
            "avc_acc": float(correct.mean()), "avc_loss": float(sum(losses) / len(y)),
            "pos_acc": float(correct[y == 1].mean()) if (y == 1).any() else float("nan"),
            "neg_acc": float(correct[y == 0].mean()) if (y == 0).any() else float("nan"),
            "avc_auc": _binary_auc(p, y), "peak_auc": _binary_auc(peak, y), "n": float(len(y)),
        }
        if (kind == KIND_SAME_SOURCE).any():
            figures["same_video_neg_acc"] = float(correct[kind == KIND_SAME_SOURCE].mean())
        return figures

    def metadata(self, model: nn.Module) -> ModelMetadata:
        c = self.config
        return heatmap_metadata(self.network_config, {"size": c.size, "fusion": c.fusion, "world": c.world,
                                                      "energy_floor": dataclasses.asdict(c.energy_floor())})

    def export_module(self, model: nn.Module):
        """The heatmap path: ``frames (B, 3, S, S)``, ``audio (B, 48000)`` → ``avc_logits``, ``cell_probs``."""
        return HeatmapExport(model.eval()).eval(), example_inputs(model.config.image_size), {"frames": {0: "batch"}, "audio": {0: "batch"}}

    def real_inputs(self) -> dict[str, torch.Tensor]:
        """Four validation pairs of world frames and audio, for checking exports on real input."""
        c = self.config
        sources = world_sources(get_preset(c.world), [split_seed("val", i) for i in range(2)], 4.0, c.energy_floor())
        pairs = AVCPairs(sources, 4, self.network_config.image_size, 0, fixed=True)
        items = [pairs[i] for i in range(4)]
        return {"frames": torch.stack([x["frames"] for x in items]), "audio": torch.stack([x["audio"] for x in items])}


@dataclass(frozen=True)
class L3LiteTrainConfig(L3TrainConfig):
    """The demo localizer's settings (``--recipe l3-lite``): the ``l3`` recipe at ``size=lite`` with
    batches of 8 scenes × 4 frames ≥ 2 s apart (``scene_groups``), every item a positive, the
    cosine AVOL head and an InfoNCE term, at lr 1e-3 for 16 epochs of 128 steps (see the module
    docstring for why each is there), with a 60-minute training limit (on the 2-core machine it
    was made on, 16 epochs took 58.5 and 61.5 min in two runs; the best validation checkpoint came
    after 40 and 43 min)."""

    epochs: int = 16
    time_limit_min: float = 60.0
    lr: float = 1e-3
    warmup_steps: int = 50
    checkpoint_every: int = 100
    avol_cosine: bool = True
    contrastive: float = 1.0
    positives_only: bool = True
    scene_groups: int = 4


class L3LiteRecipe(L3Recipe):
    """:class:`L3Recipe` with the demo localizer's defaults (:class:`L3LiteTrainConfig`)."""

    name = "l3-lite"
    description = "L3-Net lite as the demo localizer is trained: same-scene groups, cosine AVOL head, InfoNCE (l3 with other defaults)"
    config_class = L3LiteTrainConfig
