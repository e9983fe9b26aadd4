"""Training data drawn from the synthetic world, in the shape the trainer's samplers expect.

Items are addressed by ``(epoch, index)`` so that any augmentation is a pure function of the
address: a DataLoader worker, a resumed run and an uninterrupted run all produce the same batch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from models.world import CLASS_NAMES, Scene, WorldConfig
from models.world.cache import cached_window_audio
from models.world.evalsets import EventWindow, WindowSpan


class SingleEventWindows(Dataset):
    """Single-event windows with their class, from pre-rendered audio.

    Args:
        windows: the windows (models.world.evalsets.single_event_windows).
        audio: (N, samples) float32, row i = window i (e.g. a cache memory map).
        gain_db: random gain ±gain_db per item when > 0 (training augmentation).
        seed: seeds the augmentation together with the item's (epoch, index).

    Item ``(epoch, index)`` → dict with ``audio`` (samples,) float32 tensor, ``target`` int64
    class index and ``snr_db`` float.
    """

    def __init__(self, windows: tuple[EventWindow, ...], audio: np.ndarray, gain_db: float = 0.0, seed: int = 0):
        if len(windows) != len(audio):
            raise ValueError(f"SingleEventWindows: expected one audio row per window ({len(windows)}), found {len(audio)}")
        self.windows = windows
        self.audio = audio
        self.gain_db = gain_db
        self.seed = seed

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, address):
        epoch, index = address if isinstance(address, tuple) else (0, address)
        wave = np.array(self.audio[index], dtype=np.float32)  # copy out of the memory map
        if self.gain_db > 0:
            rng = np.random.default_rng([self.seed, epoch, index])
            wave *= np.float32(10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0))
        w = self.windows[index]
        return {"audio": torch.from_numpy(wave), "target": torch.tensor(w.class_index), "snr_db": torch.tensor(w.snr_db)}


def end_active_targets(scene: Scene, end: float, tail_seconds: float) -> np.ndarray:
    """Multi-hot (num_classes,) float32: classes sounding for at least half of [end − tail, end)."""
    target = np.zeros(len(CLASS_NAMES), np.float32)
    start = end - tail_seconds
    for e in scene.events_between(start, end):
        if min(e.offset, end) - max(e.onset, start) >= tail_seconds / 2:
            target[e.class_index] = 1.0
    return target


class EndActiveWindows(Dataset):
    """Windows cut anywhere in world scenes, labelled with the classes active at their end.

    This is what a live labeler sees: overlapping events, silence, onsets and offsets mid-window.
    Targets say which classes sound during the window's last ``tail_seconds`` (at least half of
    it), so a model trained on them starts and stops its labels with the sounds instead of
    lingering for a window length.

    Args:
        config: world preset.
        seeds: the scenes to draw from.
        size: items per epoch.
        window_seconds, sample_rate: the audio each item holds.
        tail_seconds: the end span the targets describe.
        scene_seconds: window ends are drawn in [window_seconds, scene_seconds).
        seed: with the item's (epoch, index), picks the scene and the end time. A dataset built
            for evaluation ignores the epoch (its items never change).

    Item → dict: ``audio`` (samples,) float32, ``target`` (num_classes,) float32 multi-hot.
    """

    def __init__(self, config: WorldConfig, seeds: tuple[int, ...], size: int, window_seconds: float, sample_rate: int,
                 tail_seconds: float = 0.2, scene_seconds: float = 600.0, seed: int = 0, fixed: bool = False):
        self.config, self.seeds, self.size = config, tuple(seeds), size
        self.window_seconds, self.sample_rate, self.tail_seconds = window_seconds, sample_rate, tail_seconds
        self.scene_seconds, self.seed, self.fixed = scene_seconds, seed, fixed
        self._scenes: dict[int, Scene] = {}

    def __len__(self) -> int:
        return self.size

    def _scene(self, seed: int) -> Scene:
        if seed not in self._scenes:
            if len(self._scenes) >= 64:
                self._scenes.pop(next(iter(self._scenes)))
            self._scenes[seed] = Scene(self.config, seed, event_cache=8)
        return self._scenes[seed]

    def address(self, epoch: int, index: int) -> tuple[int, float]:
        """(scene seed, window end in seconds) of an item."""
        rng = np.random.default_rng([self.seed, 0 if self.fixed else epoch, index])
        seed = self.seeds[int(rng.integers(len(self.seeds)))]
        n = int(round(self.window_seconds * self.sample_rate))
        end_sample = int(rng.integers(n, int(self.scene_seconds * self.sample_rate)))
        return seed, end_sample / self.sample_rate

    def __getitem__(self, address):
        epoch, index = address if isinstance(address, tuple) else (0, address)
        seed, end = self.address(epoch, index)
        scene = self._scene(seed)
        n = int(round(self.window_seconds * self.sample_rate))
        end_sample = int(round(end * self.sample_rate))
        audio = scene.render_audio(end_sample - n, n, self.sample_rate)
        return {"audio": torch.from_numpy(audio), "target": torch.from_numpy(end_active_targets(scene, end, self.tail_seconds))}


class PooledWindows(Dataset):
    """A fixed pool of end-active windows, rendered once into the disk cache.

    Training on freshly rendered windows costs more CPU in the loader than the model does on
    2 cores; a pool drawn once from an ``EndActiveWindows`` (its epoch-0 addresses) and cached
    keeps the loader nearly free. Each epoch re-draws a random gain per item (±gain_db).

    Item → dict: ``audio`` (samples,) float32, ``target`` (num_classes,) float32 multi-hot.
    """

    def __init__(self, source: EndActiveWindows, gain_db: float = 0.0, seed: int = 0, desc: str = "rendering window pool"):
        spans, targets = [], []
        for i in range(len(source)):
            scene_seed, end = source.address(0, i)
            spans.append(WindowSpan(scene_seed, end, source.window_seconds))
            targets.append(end_active_targets(source._scene(scene_seed), end, source.tail_seconds))
        self.audio = cached_window_audio(spans, source.sample_rate, source.config, desc=desc)
        self.targets = np.stack(targets)
        self.gain_db, self.seed = gain_db, seed

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, address):
        epoch, index = address if isinstance(address, tuple) else (0, address)
        wave = np.array(self.audio[index], dtype=np.float32)
        if self.gain_db > 0:
            rng = np.random.default_rng([self.seed, epoch, index])
            wave *= np.float32(10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0))
        return {"audio": torch.from_numpy(wave), "target": torch.from_numpy(self.targets[index])}
