"""What every embedding extractor is: the clip it reads, the time grid it answers on, the base classes.

An extractor turns one clip into a sequence of embeddings on a regular time grid: at ``rate_hz``
embeddings per second, embedding ``k`` belongs to the instant ``(k + 0.5) / rate_hz`` seconds
after the clip's start (the centre of the k-th ``1 / rate_hz`` step), for ``k < T`` with
``T = max(1, floor(seconds · rate_hz))`` (whole steps only: a last partial step gets none). Every extractor at the same rate answers on the same
grid, whatever its window length or the video's frame rate, so a consumer can stack them.

* **Auditory** extractors (:class:`WindowedAudioExtractor`) cut one window of their own length
  centred on each grid time (the samples ``[c − W//2, c − W//2 + W)`` with ``c = round(t · sr)``,
  the L³ alignment rule) from the clip's audio at their own sample rate. Real audio around the
  clip (``ClipAudio.before`` samples before its start, whatever follows its end) is used when the
  clip carries it; where a window still runs past the audio there is, the audio is mirrored at
  its ends (``numpy.pad(mode="reflect")``, repeated for pads longer than the clip), so an edge
  window holds sound of the clip's own spectrum rather than digital silence, which the networks
  never saw in training (L³ maps it to an outlier, see models/l3/network.py).
* **Visual** extractors (:class:`FrameExtractor`) embed, for each grid time, the clip's frame
  nearest to it (ties go to the earlier frame); the embedding is reported at the grid time, at
  most half a frame interval away from the frame's own time.

Clip inputs come from :mod:`models.embeddings.inputs` (world scenes, audio files with or
without a matching video).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["AUDITORY", "VISUAL", "KINDS", "ClipAudio", "Clip", "Embeddings", "Extractor", "EmbeddingInputError",
           "MissingExtraError", "FrameExtractor", "WindowedAudioExtractor", "grid_times", "audio_windows",
           "nearest_indices"]

AUDITORY = "auditory"
VISUAL = "visual"
KINDS = (AUDITORY, VISUAL)


class EmbeddingInputError(ValueError):
    """A clip that lacks what an extractor reads (no frames, no audio at its rate); one line."""


class MissingExtraError(ImportError):
    """An optional package an extractor needs is not installed; the message gives the pip command."""


@dataclass(frozen=True)
class ClipAudio:
    """A clip's audio at one sample rate.

    Attributes:
        samples: ``(N,)`` float32; ``samples[before]`` is the clip's first sample.
        sample_rate: Hz.
        before: real samples included before the clip's start (context for edge windows).
    """

    samples: np.ndarray
    sample_rate: int
    before: int = 0

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples)
        if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
            raise EmbeddingInputError(f"ClipAudio.samples: expected float (N,) mono audio, found {samples.dtype} {samples.shape}")
        if int(self.sample_rate) <= 0 or not 0 <= int(self.before) <= len(samples):
            raise EmbeddingInputError(f"ClipAudio: expected sample_rate > 0 and 0 <= before <= {len(samples)}, "
                                      f"found sample_rate={self.sample_rate}, before={self.before}")
        object.__setattr__(self, "samples", samples.astype(np.float32, copy=False))
        object.__setattr__(self, "sample_rate", int(self.sample_rate))
        object.__setattr__(self, "before", int(self.before))


@dataclass(frozen=True)
class Clip:
    """What extractors read from one clip.

    Attributes:
        seconds: the clip's length (the grid covers ``[0, seconds)``).
        audio: the clip's audio, one :class:`ClipAudio` per sample rate (may be empty).
        frames: ``(F, H, W, 3)`` uint8 RGB, or None when the clip has no video.
        frame_times: ``(F,)`` seconds from the clip's start, increasing (None with ``frames``).
        source: what the clip is, for error messages (``"world bench:200000 at 30.0 s"``).
    """

    seconds: float
    audio: tuple[ClipAudio, ...] = ()
    frames: np.ndarray | None = None
    frame_times: np.ndarray | None = None
    source: str = "clip"
    _by_rate: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.seconds > 0 or not math.isfinite(self.seconds):
            raise EmbeddingInputError(f"Clip.seconds: expected a positive length, found {self.seconds!r}")
        object.__setattr__(self, "audio", tuple(self.audio))
        for a in self.audio:
            if a.sample_rate in self._by_rate:
                raise EmbeddingInputError(f"Clip: two audio tracks at {a.sample_rate} Hz")
            self._by_rate[a.sample_rate] = a
        if (self.frames is None) != (self.frame_times is None):
            raise EmbeddingInputError("Clip: expected frames and frame_times together (or neither)")
        if self.frames is not None:
            frames, times = np.asarray(self.frames), np.asarray(self.frame_times, np.float64)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
                raise EmbeddingInputError(f"Clip.frames: expected uint8 RGB (F, H, W, 3) with F >= 1, "
                                          f"found {frames.dtype} {frames.shape}")
            if times.shape != (len(frames),) or np.any(np.diff(times) <= 0):
                raise EmbeddingInputError(f"Clip.frame_times: expected ({len(frames)},) increasing seconds, "
                                          f"found shape {times.shape}")
            object.__setattr__(self, "frames", frames)
            object.__setattr__(self, "frame_times", times)

    @property
    def sample_rates(self) -> tuple[int, ...]:
        return tuple(sorted(self._by_rate))

    def audio_at(self, sample_rate: int, who: str) -> ClipAudio:
        """The audio at ``sample_rate``; ``who`` (the extractor's name) goes into the error.

        Raises:
            EmbeddingInputError: the clip has no audio at that rate.
        """
        if sample_rate not in self._by_rate:
            have = ", ".join(f"{r} Hz" for r in self.sample_rates) or "none"
            raise EmbeddingInputError(f"{who} reads audio at {sample_rate} Hz; {self.source} has audio at: {have}")
        return self._by_rate[sample_rate]


class Embeddings(NamedTuple):
    """An extractor's answer for one clip: ``values (T, dim)`` float32 at ``times (T,)`` seconds."""

    values: np.ndarray
    times: np.ndarray


def grid_times(seconds: float, rate_hz: float) -> np.ndarray:
    """The grid of a clip: ``(T,)`` float64, ``(k + 0.5) / rate_hz`` for ``k < max(1, floor(seconds · rate_hz))``."""
    n = max(1, math.floor(seconds * rate_hz + 1e-9))
    return (np.arange(n) + 0.5) / rate_hz


def nearest_indices(stamps: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query time, the index of the nearest of the increasing ``stamps`` (ties to the
    earlier one): ``(len(queries),)`` int64."""
    if len(stamps) < 2:
        return np.zeros(len(queries), np.int64)
    right = np.clip(np.searchsorted(stamps, queries), 1, len(stamps) - 1)
    left = right - 1
    return np.where(queries - stamps[left] <= stamps[right] - queries, left, right)


def audio_windows(audio: ClipAudio, times: np.ndarray, window: int) -> np.ndarray:
    """Windows of ``window`` samples centred on ``times`` (seconds from the clip's start).

    Returns:
        ``(len(times), window)`` float32, mirrored past the ends of the audio (module docstring).
    """
    samples = audio.samples
    if len(samples) < 2:
        raise EmbeddingInputError(f"audio at {audio.sample_rate} Hz: expected at least 2 samples, found {len(samples)}")
    starts = audio.before + np.round(np.asarray(times) * audio.sample_rate).astype(np.int64) - window // 2
    lo, hi = int(max(0, -starts.min())), int(max(0, starts.max() + window - len(samples)))
    if lo or hi:
        samples = np.pad(samples, (lo, hi), mode="reflect")
    idx = (starts + lo)[:, None] + np.arange(window)[None, :]
    return samples[idx]


class Extractor(ABC):
    """One pretrained network's embeddings of a clip.

    Attributes:
        name: stable short name (a cache-key field): ``"l3-audio"``, ``"efficientnet-lite0"`` ...
        kind: ``"auditory"`` or ``"visual"``.
        dim: size of one embedding.
        rate_hz: embeddings per second (the grid of :func:`grid_times`).
        fingerprint: sha256 (hex) of the weights (the file they came from, or the tensors of an
            in-memory network), a cache-key field: other weights, other cache entries.
        weights: where the weights came from, for reports.
    """

    name: str
    kind: str
    dim: int
    rate_hz: float
    fingerprint: str
    weights: str

    @abstractmethod
    def __call__(self, clip: Clip) -> Embeddings:
        """``clip`` → :class:`Embeddings` ``(T, dim)`` float32 at ``(T,)`` grid times."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, rate_hz={self.rate_hz}, "
                f"weights={self.weights!r}, fingerprint={self.fingerprint[:12]}...)")


class WindowedAudioExtractor(Extractor):
    """An auditory extractor that embeds one window of ``window_samples`` at ``sample_rate`` per grid time.

    Subclasses set ``sample_rate``, ``window_samples`` and implement :meth:`embed_windows`.
    """

    kind = AUDITORY
    sample_rate: int
    window_samples: int
    batch_size: int = 32

    @abstractmethod
    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """``(B, window_samples)`` float32 → ``(B, dim)`` float32."""

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate

    def __call__(self, clip: Clip) -> Embeddings:
        audio = clip.audio_at(self.sample_rate, self.name)
        times = grid_times(clip.seconds, self.rate_hz)
        out = np.empty((len(times), self.dim), np.float32)
        for i in range(0, len(times), self.batch_size):
            out[i:i + self.batch_size] = self.embed_windows(audio_windows(audio, times[i:i + self.batch_size],
                                                                          self.window_samples))
        return Embeddings(out, times)


class FrameExtractor(Extractor):
    """A visual extractor that embeds the frame nearest each grid time; subclasses implement :meth:`embed_frames`."""

    kind = VISUAL
    batch_size: int = 16

    @abstractmethod
    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """``(B, H, W, 3)`` uint8 RGB → ``(B, dim)`` float32."""

    def __call__(self, clip: Clip) -> Embeddings:
        if clip.frames is None:
            raise EmbeddingInputError(f"{self.name} is a visual extractor and {clip.source} has no video frames "
                                      f"(audio-only clips, as in DESED, feed auditory extractors only)")
        times = grid_times(clip.seconds, self.rate_hz)
        nearest = nearest_indices(clip.frame_times, times)
        out = np.empty((len(times), self.dim), np.float32)
        for i in range(0, len(times), self.batch_size):
            out[i:i + self.batch_size] = self.embed_frames(clip.frames[nearest[i:i + self.batch_size]])
        return Embeddings(out, times)


def run_tap_or_module(session, module, forward, batch: np.ndarray) -> np.ndarray:
    """The embeddings of ``batch``: through the ONNX tap ``session`` when there is one, else
    ``forward(tensor)`` of the torch ``module`` on its device, in inference mode (float32 numpy)."""
    if session is not None:
        return session(batch)
    device = next(module.parameters()).device
    with torch.inference_mode():
        return forward(torch.from_numpy(batch).to(device)).float().cpu().numpy()
