"""A disk cache of rendered window audio, so training does not re-synthesise the world every epoch.

Rendering is deterministic, so a cache entry is keyed by what determines its content: the world
config's fingerprint, ``WORLD_CODE_VERSION`` (bump it whenever a generator changes), the sample
rate (and the rate rendered at, when the audio is resampled) and the list of windows. Entries
are ``.npy`` files opened as read-only memory maps (shared by DataLoader workers without
copies), written atomically. The folder is ``$AVLIVE_CACHE`` or ``~/.cache/avlive``.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from models.core.atomic import atomic_path
from models.world.evalsets import EventWindow, render_windows
from models.world.presets import BENCH, config_fingerprint
from models.world.scene import WorldConfig

# Bump when a sound generator, the background or the picture changes while configs stay equal.
WORLD_CODE_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("AVLIVE_CACHE", Path.home() / ".cache" / "avlive"))


#: soxr quality of :func:`cached_window_audio`'s resampling: the live scheduler's
#: (``realtime.scheduler.SchedulerConfig.resample_quality``; a test holds them equal).
RESAMPLE_QUALITY = "HQ"


def _key(windows: tuple[EventWindow, ...], sample_rate: int, config: WorldConfig, render_rate: int) -> str:
    spec = [(w.seed, round(w.end, 9), w.seconds) for w in windows]
    rates = sample_rate if render_rate == sample_rate else [sample_rate, render_rate, RESAMPLE_QUALITY]
    blob = json.dumps([config_fingerprint(config), WORLD_CODE_VERSION, rates, spec]).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def render_resampled(windows, sample_rate: int, render_rate: int, config: WorldConfig = BENCH) -> np.ndarray:
    """(N, samples at ``sample_rate``) float32: each window rendered at ``render_rate`` and
    resampled to ``sample_rate`` with soxr, as live audio reaches a model whose rate differs from
    the capture's (the world's sounds rendered at one rate are not the band-limited version of
    those rendered at another: at 16 kHz a hiss has 24 dB less in its top half-kilohertz)."""
    audio = render_windows(windows, render_rate, config)
    if render_rate == sample_rate:
        return audio
    import soxr

    n = windows[0].sample_span(sample_rate)[1] if windows else 0
    out = np.empty((len(audio), n), np.float32)
    for i, row in enumerate(audio):
        resampled = soxr.resample(row, render_rate, sample_rate, quality=RESAMPLE_QUALITY)
        out[i] = resampled[:n] if len(resampled) >= n else np.pad(resampled, (0, n - len(resampled)))
    return out


def _render_part(args) -> np.ndarray:
    windows, sample_rate, render_rate, config = args
    return render_resampled(windows, sample_rate, render_rate, config)


def cached_window_audio(windows, sample_rate: int, config: WorldConfig = BENCH, *, render_rate: int | None = None,
                        workers: int | None = None, desc: str = "rendering windows") -> np.ndarray:
    """Audio of each window, (N, samples) float32, from the cache or rendered (in parallel) into it;
    with ``render_rate``, rendered at that rate and resampled to ``sample_rate``
    (:func:`render_resampled`)."""
    windows = tuple(windows)
    render_rate = int(render_rate or sample_rate)
    suffix = f"{sample_rate}" if render_rate == sample_rate else f"{sample_rate}-from-{render_rate}"
    path = cache_dir() / "world" / f"windows-{_key(windows, sample_rate, config, render_rate)}-{suffix}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    path.parent.mkdir(parents=True, exist_ok=True)
    workers = workers or min(os.cpu_count() or 1, 4)
    # Chunks of whole scenes keep each worker's scene cache warm.
    chunk = 64
    parts = [windows[i : i + chunk] for i in range(0, len(windows), chunk)]
    # spawn, not fork: the parent may hold torch's thread pools.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        rendered = list(tqdm(pool.map(_render_part, [(p, sample_rate, render_rate, config) for p in parts]), total=len(parts), desc=desc, unit="chunk", leave=False))
    audio = np.concatenate(rendered) if rendered else np.zeros((0, 0), np.float32)
    with atomic_path(path) as tmp:
        np.save(tmp, audio)
    return np.load(path, mmap_mode="r")
