"""Where L3 training pairs come from: world scenes or a folder of videos, and the energy floor that
keeps silent windows out of the positives."""
from __future__ import annotations

import functools
import hashlib
import logging
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from models.core.atomic import atomic_path
from models.l3.network import SAMPLE_RATE, WINDOW_SAMPLES
from models.world import Scene, WorldConfig
from models.world.cache import WORLD_CODE_VERSION, cache_dir
from models.world.presets import config_fingerprint

logger = logging.getLogger(__name__)


_HALF = WINDOW_SAMPLES // 2


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
