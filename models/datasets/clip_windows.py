"""Windows of decoded clips for the clip recipes, and clip scores from window scores.

A clip recipe's network takes a short window (``baseline`` 2 s, ``slowfast-lite`` 1.27 s) and a
user's clips are longer (ESC-50 5 s, VGG-Sound 10 s). Training cuts one window per clip and
epoch, at an offset drawn from ``(seed, epoch, index)`` inside the clip's decoded audio;
evaluation scores a clip by the mean of its windows' probabilities, the windows ``hop`` apart
over the decoded audio (:func:`clip_probabilities`), as avlive's rolling labels see a sound.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from models.datasets.clips import DecodedClips, _address

__all__ = ["ClipWindows", "clip_probabilities", "multi_hot"]


def multi_hot(clips: DecodedClips, classes: Sequence[str]) -> np.ndarray:
    """(N, K) float32: 1 where clip n carries class k.

    Raises:
        ValueError: A clip's label is not among ``classes``.
    """
    index = {name: k for k, name in enumerate(classes)}
    out = np.zeros((len(clips), len(classes)), np.float32)
    for n, spec in enumerate(clips.clips):
        for label in spec.labels:
            if label not in index:
                raise ValueError(f"{spec.path}: label {label!r} is not among the {len(classes)} classes")
            out[n, index[label]] = 1.0
    return out


class ClipWindows(Dataset):
    """Training windows (``train=True``) or whole clips (``train=False``) of decoded clips.

    Args:
        clips: Decoded clips (all the same length).
        classes: Class names; target ids are positions.
        window_samples: The network's window.
        target: ``"index"`` (int64 class id: single-label sets) or ``"multi_hot"`` (float32 over
            ``classes``).
        train: Cut a window per item (else the whole clip, for :func:`clip_probabilities`).
        gain_db: Random gain within ±``gain_db`` (training only).
        seed: Seeds offsets and gains.

    Items: ``audio`` (window_samples,) or (clip samples,) float32, ``length`` (valid samples in
    ``audio``, int64), ``target``, ``index``.
    """

    def __init__(self, clips: DecodedClips, classes: Sequence[str], window_samples: int, *, target: str,
                 train: bool, gain_db: float = 0.0, seed: int = 0):
        if target not in ("index", "multi_hot"):
            raise ValueError(f"target: expected 'index' or 'multi_hot', found {target!r}")
        self.clips, self.classes, self.window = clips, tuple(classes), int(window_samples)
        self.train, self.gain_db, self.seed = bool(train), float(gain_db), int(seed)
        hot = multi_hot(clips, self.classes)
        if target == "index":
            several = np.flatnonzero(hot.sum(1) != 1)
            if len(several):
                spec = clips.clips[several[0]]
                raise ValueError(f"{spec.path}: a single-label recipe needs one label per clip, found {spec.labels}")
            self.targets = torch.from_numpy(hot.argmax(1).astype(np.int64))
        else:
            self.targets = torch.from_numpy(hot)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, address) -> dict:
        epoch, index = _address(address)
        audio = self.clips.audio[index]
        valid = int(min(self.clips.lengths[index], len(audio)))
        if not self.train:
            return {"audio": torch.from_numpy(np.array(audio, np.float32)), "length": torch.tensor(valid),
                    "target": self.targets[index], "index": torch.tensor(index)}
        rng = np.random.default_rng([self.seed, epoch, index])
        start = int(rng.integers(0, max(0, valid - self.window) + 1))
        wave = np.zeros(self.window, np.float32)
        piece = audio[start:start + self.window]
        wave[:len(piece)] = piece
        if self.gain_db > 0:
            wave *= np.float32(10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0))
        return {"audio": torch.from_numpy(wave), "length": torch.tensor(min(valid - start, self.window)),
                "target": self.targets[index], "index": torch.tensor(index)}


def clip_probabilities(probabilities: Callable[[torch.Tensor], torch.Tensor], audio: torch.Tensor, lengths: torch.Tensor,
                       window: int, hop: int) -> torch.Tensor:
    """Clip scores: the mean of the window probabilities over each clip's decoded audio.

    Args:
        probabilities: ``(M, window)`` waveforms → ``(M, K)`` probabilities.
        audio: (B, samples) whole clips (zero-padded).
        lengths: (B,) valid samples per clip.
        window, hop: In samples.

    Returns:
        (B, K): per clip, the mean over the windows starting at 0, hop, 2·hop ... that begin
        inside its valid audio (at least the first window).
    """
    if audio.shape[1] < window:
        audio = torch.nn.functional.pad(audio, (0, window - audio.shape[1]))
    windows = audio.unfold(1, window, hop)  # (B, W, window)
    b, w, _ = windows.shape
    probs = probabilities(windows.reshape(b * w, window)).reshape(b, w, -1)
    starts = torch.arange(w) * hop
    use = (starts[None, :] < lengths[:, None].clamp(min=1)).to(probs.dtype)
    use[:, 0] = 1.0
    return (probs * use[..., None]).sum(1) / use.sum(1, keepdim=True)
