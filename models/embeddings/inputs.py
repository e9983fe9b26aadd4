"""Clip inputs for the extractors: from a world scene, or from an audio file (and a matching video).

* :func:`world_clip_inputs`: a span of a :class:`models.world.Scene`, rendered at every sample
  rate the extractors read, with real context around the span (the scene goes on before and
  after it; nothing before t = 0), and the scene frames nearest the 2-per-second grid.
* :func:`file_clip_inputs`: a clip of an audio file, e.g. DESED's ``audio/<split>/<name>.wav``
  (decoded and resampled with models.io.media), with frames only when a video of the same stem
  exists (looked for beside the audio and in the same place under ``video/`` instead of
  ``audio/``). DESED ships audio only, so its clips feed the auditory extractors, and a visual
  extractor says so in one line.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from models.embeddings.base import AUDITORY, VISUAL, Clip, ClipAudio, Extractor, grid_times
from models.io.media import probe, read_audio, read_video_frames
from models.world import Scene

__all__ = ["DEFAULT_SAMPLE_RATES", "DEFAULT_FRAME_RATE", "CONTEXT_SECONDS", "VIDEO_SUFFIXES", "needs",
           "world_clip_inputs", "file_clip_inputs", "find_video"]

#: L³ (48 kHz) and slowfast-lite (16 kHz).
DEFAULT_SAMPLE_RATES = (48_000, 16_000)
#: The visual extractors' rate.
DEFAULT_FRAME_RATE = 2.0
#: Real audio kept around a clip: more than half the longest window (slowfast-lite's 1.27 s).
CONTEXT_SECONDS = 1.0
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def needs(extractors: Iterable[Extractor]) -> tuple[tuple[int, ...], float | None]:
    """What a set of extractors reads: ``(sample rates, frame rate or None)``."""
    rates, frame_rate = set(), None
    for e in extractors:
        if e.kind == AUDITORY:
            rates.add(int(e.sample_rate))
        elif e.kind == VISUAL:
            frame_rate = max(frame_rate or 0.0, float(e.rate_hz))
    return tuple(sorted(rates)), frame_rate


def _resolve(extractors, sample_rates, frame_rate) -> tuple[tuple[int, ...], float | None]:
    if extractors is not None:
        return needs(extractors)
    return tuple(sample_rates), frame_rate


def world_clip_inputs(scene: Scene, start: float, seconds: float, *, extractors: Sequence[Extractor] | None = None,
                      sample_rates: Sequence[int] = DEFAULT_SAMPLE_RATES, frame_rate: float | None = DEFAULT_FRAME_RATE,
                      context_seconds: float = CONTEXT_SECONDS) -> Clip:
    """The inputs of the span ``[start, start + seconds)`` of a world scene.

    Args:
        scene: the scene.
        start, seconds: the span, in seconds of the scene.
        extractors: when given, their sample rates and frame rate replace the next two arguments.
        sample_rates: audio rendered at each (with ``context_seconds`` of real context each side).
        frame_rate: frames rendered: for each point of the clip's grid at this rate, the scene
            frame nearest it; None: no frames.

    Returns:
        A :class:`Clip` (``source`` names the scene and span).
    """
    if start < 0 or not seconds > 0:
        raise ValueError(f"world_clip_inputs: expected start >= 0 and seconds > 0, found {start}, {seconds}")
    rates, frame_rate = _resolve(extractors, sample_rates, frame_rate)
    audio = []
    for rate in rates:
        first = int(round(start * rate))
        before = min(first, int(math.ceil(context_seconds * rate)))
        n = before + int(round(seconds * rate)) + int(math.ceil(context_seconds * rate))
        audio.append(ClipAudio(scene.render_audio(first - before, n, rate), rate, before))
    frames = times = None
    if frame_rate:
        fps = scene.config.fps
        # the nearest frame, ties to the earlier one (as FrameExtractor picks among given frames)
        index = np.unique(np.ceil((start + grid_times(seconds, frame_rate)) * fps - 0.5 - 1e-6).astype(np.int64))
        frames = np.stack([scene.render_frame(int(i))[0] for i in index])
        times = index / fps - start
    return Clip(seconds=float(seconds), audio=tuple(audio), frames=frames, frame_times=times,
                source=f"world scene {scene.seed} at {start:g}-{start + seconds:g} s")


def find_video(audio_path: str | os.PathLike) -> Path | None:
    """A video with the audio file's stem: beside it, or where ``audio/`` is replaced by ``video/`` in its path."""
    audio_path = Path(audio_path)
    folders = [audio_path.parent]
    parts = audio_path.parent.parts
    if "audio" in parts:
        i = len(parts) - 1 - parts[::-1].index("audio")
        folders.append(Path(*parts[:i], "video", *parts[i + 1:]))
    for folder in folders:
        for suffix in VIDEO_SUFFIXES:
            candidate = folder / (audio_path.stem + suffix)
            if candidate.is_file() and candidate != audio_path:
                return candidate
    return None


def file_clip_inputs(audio_path: str | os.PathLike, *, start: float = 0.0, seconds: float | None = None,
                     extractors: Sequence[Extractor] | None = None, sample_rates: Sequence[int] = DEFAULT_SAMPLE_RATES,
                     frame_rate: float | None = DEFAULT_FRAME_RATE, video: str | os.PathLike | None = None,
                     context_seconds: float = CONTEXT_SECONDS) -> Clip:
    """The inputs of a clip of a media file (a DESED wav, a video's soundtrack).

    Args:
        audio_path: the file whose first audio stream is the clip's audio.
        start, seconds: the span (None: to the end of the file).
        extractors, sample_rates, frame_rate: as :func:`world_clip_inputs`.
        video: the video to take frames from; None: :func:`find_video` (the audio file itself
            when it has a video stream). No video: the clip has no frames.

    Raises:
        FileNotFoundError, models.io.media.MediaDecodeError: the file is missing or unreadable.
    """
    audio_path = Path(audio_path)
    rates, frame_rate = _resolve(extractors, sample_rates, frame_rate)
    info = probe(audio_path)
    if seconds is None:
        seconds = (info.duration or 0.0) - start
    if not seconds > 0:
        raise ValueError(f"file_clip_inputs: expected a positive clip length, found {seconds} s for {audio_path}")
    audio = []
    for rate in rates:
        first = max(0.0, start - context_seconds)
        samples, _ = read_audio(audio_path, sample_rate=rate, start=first, stop=start + seconds + context_seconds)
        audio.append(ClipAudio(samples, rate, min(len(samples), int(round((start - first) * rate)))))
    frames = times = None
    if frame_rate:
        if video is None:
            video = audio_path if info.has_video else find_video(audio_path)
        if video is not None:
            frames, stamps = read_video_frames(video, start=start, stop=start + seconds)
            grid = grid_times(seconds, frame_rate)
            keep = np.unique(np.abs(stamps[None, :] - start - grid[:, None]).argmin(axis=1))
            frames, times = frames[keep], stamps[keep] - start
    return Clip(seconds=float(seconds), audio=tuple(audio), frames=frames, frame_times=times,
                source=f"{audio_path.name} at {start:g}-{start + seconds:g} s")
