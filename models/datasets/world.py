"""Training data drawn from the synthetic world, in the shape the trainer's samplers expect.

Items are addressed by ``(epoch, index)`` so that any augmentation is a pure function of the
address: a DataLoader worker, a resumed run and an uninterrupted run all produce the same batch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..world.evalsets import EventWindow


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
