"""What AVSlowFast eats: the audio front end, frame preprocessing, and clips of the world.

**Audio** (the authors' ``decoder.gen_logmel``, ``shared/REFERENCE.md`` section 4): 16 kHz, a
512-sample Hann window and FFT, 256-sample hop, no centring, 80 HTK mel bands of the power
spectrum, ``log(S + 1e-8)``, then ``(x + 7.03) / 4.66``. The mel normalisation is librosa's
default (``slaney``): the reference names only ``htk``. ``T`` log-mel frames take
``(T - 1) * 256 + 512`` samples (128 frames: 33 024 samples, 2.06 s).

**Frames**: RGB uint8 resized to ``S x S`` (area interpolation when shrinking, aspect not
kept), ``x / 127.5 - 1``, as ``(3, T, S, S)``; the same function serves training and live.

**A clip** is ``frames`` pictures ``1 / frame_rate`` apart whose last one is at the clip's end,
and the audio window that ends there (the live protocol's ``WindowSpec(frames=N,
frame_rate=..., frame_at="end")``). World pictures are the frames nearest those instants at the
world's own rate.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from models.audio.frontend import FrontEnd, FrontEndConfig
from models.core.atomic import atomic_path
from models.datasets.world import EndActiveWindows, end_active_targets
from models.world import WorldConfig
from models.world.cache import WORLD_CODE_VERSION, cache_dir, cached_window_audio
from models.world.evalsets import WindowSpan
from models.world.presets import config_fingerprint

__all__ = [
    "AUDIO_FRONTEND",
    "HARD_NEGATIVE_GAP_S",
    "LOGMEL_SCALE",
    "LOGMEL_SHIFT",
    "ClipSpec",
    "LogMel",
    "WorldClips",
    "preprocess_clip",
]

#: The authors' audio features (16 kHz, 512/256, 80 HTK mels of the power spectrum, log(S + 1e-8)).
AUDIO_FRONTEND = FrontEndConfig(sample_rate=16000, n_fft=512, win_length=512, hop_length=256, center=False,
                                power=2.0, n_mels=80, mel_scale="htk", mel_norm="slaney", log_offset=1e-8)
#: Their normalisation of the log-mel: ``(x + 7.03) / 4.66``.
LOGMEL_SHIFT, LOGMEL_SCALE = 7.03, 4.66
#: Hard negatives are taken at least this far (seconds) from the clip's own audio.
HARD_NEGATIVE_GAP_S = 0.5


class LogMel(nn.Module):
    """Waveform ``(N, samples)`` -> normalised log-mel ``(N, 1, T, F)`` (:data:`AUDIO_FRONTEND`)."""

    def __init__(self, config: FrontEndConfig = AUDIO_FRONTEND) -> None:
        super().__init__()
        self.frontend = FrontEnd(config)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return ((self.frontend(wave) + LOGMEL_SHIFT) / LOGMEL_SCALE).unsqueeze(1)


@dataclass(frozen=True)
class ClipSpec:
    """The clip a network takes.

    Attributes:
        frames: pictures per clip (the Fast pathway's ``T_f``).
        frame_rate: Hz between the pictures.
        image_size: side of the square pictures.
        audio_frames: log-mel frames; the audio window is the samples that give exactly these.
    """

    frames: int
    frame_rate: float
    image_size: int
    audio_frames: int

    def __post_init__(self) -> None:
        if self.frames < 1 or self.image_size < 1 or self.audio_frames < 1 or not self.frame_rate > 0:
            raise ValueError(f"ClipSpec: expected positive frames, frame_rate, image_size, audio_frames, found {self}")

    @property
    def audio_samples(self) -> int:
        c = AUDIO_FRONTEND
        return (self.audio_frames - 1) * c.hop_length + c.n_fft

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / AUDIO_FRONTEND.sample_rate

    def frame_times(self, end: float) -> np.ndarray:
        """``(frames,)`` seconds of the pictures of a clip ending at ``end``, oldest first."""
        return end - np.arange(self.frames - 1, -1, -1, dtype=np.float64) / self.frame_rate


def preprocess_clip(frames: np.ndarray, image_size: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB -> ``(3, T, S, S)`` float32 in [-1, 1] (area-resized when shrinking)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"preprocess_clip: expected (T, H, W, 3) uint8 RGB, found {frames.dtype} {frames.shape}")
    return resize_clip(frames, image_size).transpose(3, 0, 1, 2).astype(np.float32) / 127.5 - 1.0


def resize_clip(frames: np.ndarray, image_size: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 -> ``(T, S, S, 3)`` uint8."""
    h, w = frames.shape[1:3]
    if (h, w) == (image_size, image_size):
        return frames
    interp = cv2.INTER_AREA if h > image_size or w > image_size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (image_size, image_size), interpolation=interp) for f in frames])


def _hard_negative_end(rng: np.random.Generator, end: float, seconds: float, scene_seconds: float) -> float:
    """An end time at least :data:`HARD_NEGATIVE_GAP_S` from ``end`` (within 2 s), inside the scene."""
    for _ in range(16):
        offset = rng.uniform(HARD_NEGATIVE_GAP_S, 2.0) * (1 if rng.random() < 0.5 else -1)
        other = end + offset
        if seconds <= other <= scene_seconds:
            return other
    return end - HARD_NEGATIVE_GAP_S - 1.0 if end - HARD_NEGATIVE_GAP_S - 1.0 >= seconds else end + HARD_NEGATIVE_GAP_S + 1.0


class WorldClips(Dataset):
    """A fixed pool of world clips (pictures + audio + a hard-negative audio window), rendered
    once into the world cache, labelled multi-label at the clip's end like ``slowfast-lite``.

    Args:
        config: world preset.
        seeds: scenes to draw from.
        size: clips in the pool.
        spec: the clip.
        tail_seconds: a class is a target when it sounds for at least half of the clip's last
            ``tail_seconds`` (:func:`models.datasets.world.end_active_targets`).
        seed: draws the clips (scene and end time) and the hard negatives.
        gain_db: random gain per item and epoch, applied to both audio windows.
        scene_seconds: clip ends are drawn in ``[audio_seconds, scene_seconds)``.
        desc: progress-bar text while rendering.

    Item ``(epoch, index)`` -> dict: ``frames (3, T_f, S, S)`` float32, ``audio (samples,)``,
    ``hard_audio (samples,)`` float32, ``target (12,)`` float32 multi-hot, ``epoch`` int64.
    """

    def __init__(self, config: WorldConfig, seeds: tuple[int, ...], size: int, spec: ClipSpec,
                 tail_seconds: float = 0.2, seed: int = 0, gain_db: float = 0.0, scene_seconds: float = 600.0,
                 desc: str = "rendering clips") -> None:
        sr = AUDIO_FRONTEND.sample_rate
        seconds = spec.audio_samples / sr
        draws = EndActiveWindows(config, seeds, size, seconds, sr, tail_seconds, scene_seconds, seed=seed, fixed=True)
        rng = np.random.default_rng([seed, 7])
        spans, hard, targets, times = [], [], [], []
        for i in range(size):
            scene_seed, end = draws.address(0, i)
            spans.append(WindowSpan(scene_seed, end, seconds))
            hard.append(WindowSpan(scene_seed, _hard_negative_end(rng, end, seconds, scene_seconds), seconds))
            targets.append(end_active_targets(draws._scene(scene_seed), end, tail_seconds))
            times.append(spec.frame_times(end))
        self.spec, self.gain_db, self.seed = spec, gain_db, seed
        self.spans = tuple(spans)
        self.hard_spans = tuple(hard)
        self.targets = np.stack(targets)
        both = cached_window_audio(spans + hard, sr, config, desc=desc, workers=2)
        self.audio, self.hard_audio = both[:size], both[size:]
        self.frames = _cached_frames(config, spans, times, spec.image_size, draws, desc)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, address):
        epoch, index = address if isinstance(address, tuple) else (0, address)
        wave = np.array(self.audio[index], dtype=np.float32)
        hard = np.array(self.hard_audio[index], dtype=np.float32)
        if self.gain_db > 0:
            rng = np.random.default_rng([self.seed, epoch, index])
            gain = np.float32(10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0))
            wave *= gain
            hard *= gain
        frames = np.asarray(self.frames[index]).transpose(3, 0, 1, 2).astype(np.float32) / 127.5 - 1.0
        return {"frames": torch.from_numpy(frames), "audio": torch.from_numpy(wave), "hard_audio": torch.from_numpy(hard),
                "target": torch.from_numpy(self.targets[index]), "epoch": torch.tensor(epoch)}


def _cached_frames(config: WorldConfig, spans, times, image_size: int, draws: EndActiveWindows, desc: str) -> np.ndarray:
    """``(N, T, S, S, 3)`` uint8 pictures of each clip, from the world cache or rendered into it."""
    blob = json.dumps([config_fingerprint(config), WORLD_CODE_VERSION, image_size,
                       [(s.seed, round(s.end, 9)) for s in spans], [np.round(t, 9).tolist() for t in times]]).encode()
    path = cache_dir() / "world" / f"clip-frames-{hashlib.sha256(blob).hexdigest()[:24]}-{image_size}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = np.zeros((len(spans), len(times[0]) if times else 0, image_size, image_size, 3), np.uint8)
    for i, (span, ts) in enumerate(tqdm(list(zip(spans, times)), desc=f"{desc} (pictures)", leave=False)):
        scene = draws._scene(span.seed)
        indices = np.rint(np.maximum(ts, 0.0) * config.fps).astype(int)  # the world frames nearest the instants
        out[i] = resize_clip(np.stack([scene.render_frame(int(k))[0] for k in indices]), image_size)
    with atomic_path(path) as tmp:
        np.save(tmp, out)
    return np.load(path, mmap_mode="r")
