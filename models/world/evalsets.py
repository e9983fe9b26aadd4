"""The ``bench`` evaluation sets, defined once for every issue.

* **Single-event windows**: windows of W seconds (2 s; 1 s for L³) whose last 0.5 s is covered
  by exactly one event that overlaps no other event anywhere. Each window's end lies inside its
  event, at a point drawn from the event's own seed, and is tagged with the event's SNR bin.
  A split's set takes whole scenes of ``scene_seconds`` from the split's seeds, in order, until
  it holds at least ``min_count`` windows.
* **Reference events**: any scene's ground truth as DCASE strong-label rows whose filename is the
  source name ``synthetic:SEED``, so live outputs can be scored against it with sed_eval.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from tqdm.auto import tqdm

from models.core.events import LabeledEvent
from models.world.presets import BENCH, split_seed
from models.world.scene import Scene, WorldConfig, WorldEvent, _rng

TAIL_SECONDS = 0.5  # the part of the window that must lie inside the event
SNR_BINS: tuple[tuple[float, float], ...] = ((0.0, 5.0), (5.0, 10.0), (10.0, 15.0), (15.0, 20.0))
_WINDOW_STREAM = 97


def snr_bin(snr_db: float) -> str:
    """The label of the SNR bin, e.g. '0-5' (the last bin includes its upper edge)."""
    for lo, hi in SNR_BINS:
        if lo <= snr_db < hi or (hi == SNR_BINS[-1][1] and snr_db == hi):
            return f"{lo:g}-{hi:g}"
    raise ValueError(f"snr {snr_db} dB lies outside the bins {SNR_BINS}")


@dataclass(frozen=True)
class WindowSpan:
    """A window of a scene: [end − seconds, end) of scene ``seed``."""

    seed: int
    end: float
    seconds: float

    def sample_span(self, sample_rate: int) -> tuple[int, int]:
        """(start, n) in samples at ``sample_rate``: the window ends at round(end × rate)."""
        n = int(round(self.seconds * sample_rate))
        return int(round(self.end * sample_rate)) - n, n


@dataclass(frozen=True)
class EventWindow(WindowSpan):
    """A window of audio (and the frame at its end) ending inside one isolated event.

    Attributes:
        seed: the scene.
        end: window end, seconds; the window is [end − seconds, end).
        seconds: window length.
        event_uid, class_index, label, snr_db: the event the window is about.
    """

    event_uid: int
    class_index: int
    label: str
    snr_db: float

    @property
    def snr_bin(self) -> str:
        return snr_bin(self.snr_db)


def isolated_events(events: list[WorldEvent], min_duration: float = TAIL_SECONDS) -> list[WorldEvent]:
    """Events at least ``min_duration`` long that overlap no other event."""
    out = []
    for i, e in enumerate(events):
        if e.offset - e.onset < min_duration:
            continue
        if any(o.onset < e.offset and o.offset > e.onset for j, o in enumerate(events) if j != i):
            continue
        out.append(e)
    return out


def scene_windows(scene: Scene, scene_seconds: float, seconds: float) -> list[EventWindow]:
    """Single-event windows of one scene, over [0, scene_seconds)."""
    # Look past both ends so neighbours just outside the span still count as overlaps.
    events = scene.events_between(0.0, scene_seconds + scene.config.max_event_duration)
    windows = []
    for e in isolated_events(events):
        if e.offset > scene_seconds:
            continue
        u = _rng(scene.seed, _WINDOW_STREAM, e.uid).uniform()
        end = e.onset + TAIL_SECONDS + u * (e.offset - e.onset - TAIL_SECONDS)
        if end - seconds < 0:
            continue
        windows.append(EventWindow(scene.seed, float(end), seconds, e.uid, e.class_index, e.label, e.snr_db))
    return windows


@lru_cache(maxsize=16)
def single_event_windows(split: str, seconds: float = 2.0, min_count: int = 2000, scene_seconds: float = 600.0, config: WorldConfig = BENCH) -> tuple[EventWindow, ...]:
    """The split's single-event windows: whole scenes in seed order until ``min_count`` is reached."""
    windows: list[EventWindow] = []
    index = 0
    while len(windows) < min_count:
        windows.extend(scene_windows(Scene(config, split_seed(split, index)), scene_seconds, seconds))
        index += 1
    return tuple(windows)


def render_windows(windows, sample_rate: int, config: WorldConfig = BENCH, progress: str | None = None) -> np.ndarray:
    """Audio of each window, (N, round(seconds × sample_rate)) float32, scene by scene.

    Args:
        progress: a tqdm description to show a progress bar with, or None for none.
    """
    if not windows:
        return np.zeros((0, 0), np.float32)
    n = windows[0].sample_span(sample_rate)[1]
    out = np.empty((len(windows), n), np.float32)
    scenes: dict[int, Scene] = {}
    for i, w in enumerate(tqdm(windows, desc=progress, unit="window", disable=progress is None, leave=False)):
        scene = scenes.setdefault(w.seed, Scene(config, w.seed))
        start, length = w.sample_span(sample_rate)
        if length != n:
            raise ValueError(f"render_windows: windows must share one length; expected {n} samples, found {length}")
        out[i] = scene.render_audio(start, n, sample_rate)
    return out


def source_name(seed: int) -> str:
    """The source name a synthetic scene goes by in event TSVs and the live pipeline."""
    return f"synthetic:{seed}"


def reference_events(scene: Scene, duration: float) -> list[LabeledEvent]:
    """Ground truth of [0, duration) as DCASE strong-label events (offsets clipped to ``duration``)."""
    return [
        LabeledEvent(source_name(scene.seed), round(e.onset, 3), round(min(e.offset, duration), 3), e.label)
        for e in scene.events_between(0.0, duration)
        if e.onset < duration
    ]
