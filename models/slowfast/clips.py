"""Clips for the Slow-Fast recipes: where in a recording a clip starts (training: random; test:
evenly spaced views), its log-mel, and the datasets that decode recordings into clips."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from models.audio.frontend import FrontEnd
from models.audio.specaugment import SpecAugmentConfig, spec_augment
from models.datasets.clips import EpicSegments
from models.slowfast.network import ClipSpec, pad_frames_edge


def clip_start(n_samples: int, clip: ClipSpec, *, rng: np.random.Generator | None = None, view: int = 0,
               views: int = 1) -> int:
    """First sample of a clip in a file/segment of ``n_samples``, as the reference picks it.

    ``delta = max(n - (clip_samples + 1), 0)`` (the reference's clip size is ``CLIP_SECS * sr``,
    one more than the samples it slices); with ``rng`` the start is ``int(rng.uniform(0, delta))``
    (training and validation), else ``int(linspace(0, delta, views)[view])`` (test view ``view``).

    Args:
        n_samples: Length of the file or segment.
        clip: The clip definition.
        rng: Random source for a training clip; None for a test view.
        view: Test view index, ``0 <= view < views``.
        views: Test views per item.

    Returns:
        The start offset (0 for input shorter than a clip, which is used whole).
    """
    delta = max(int(n_samples) - (clip.clip_samples + 1), 0)
    if rng is not None:
        return int(rng.uniform(0.0, delta))
    if not 0 <= view < views:
        raise ValueError(f"clip_start: expected 0 <= view < views, found view {view}, views {views}")
    return int(np.linspace(0.0, delta, views)[view])


def clip_logmel(wave: np.ndarray, clip: ClipSpec, frontend: FrontEnd) -> torch.Tensor:
    """Log-mel ``(1, num_frames, F)`` of one clip's samples (``clip_samples`` of them, or a whole
    shorter file/segment, edge-padded to ``num_frames`` as the reference pads it)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"clip_logmel: expected (n,) samples with n >= 1, found shape {wave.shape}")
    with torch.no_grad():
        feats = frontend(torch.from_numpy(np.ascontiguousarray(wave[: clip.clip_samples]))[None])  # (1, T, F)
    return pad_frames_edge(feats, clip.num_frames)


class WaveSource:
    """Where a clip dataset's audio comes from: item ``i`` is a file or segment of
    ``num_samples(i)`` samples whose span ``[start, stop)`` :meth:`read` returns."""

    def __len__(self) -> int:
        raise NotImplementedError

    def num_samples(self, index: int) -> int:
        raise NotImplementedError

    def read(self, index: int, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError


class DecodedWaves(WaveSource):
    """Decoded files in memory: row ``i`` of ``audio`` holds ``lengths[i]`` valid samples.

    Args:
        audio: ``(N, samples)`` float32 (zero-padded rows).
        lengths: ``(N,)`` samples decoded per file (capped at the row length).
    """

    def __init__(self, audio: np.ndarray, lengths: np.ndarray):
        self.audio = audio
        self.lengths = np.minimum(np.asarray(lengths, dtype=np.int64), audio.shape[1])

    def __len__(self) -> int:
        return len(self.audio)

    def num_samples(self, index: int) -> int:
        return int(self.lengths[index])

    def read(self, index: int, start: int, stop: int) -> np.ndarray:
        return self.audio[index, start:min(stop, self.num_samples(index))]


class EpicWaves(WaveSource):
    """EPIC segments read from the audio HDF5 on demand (whole-segment spans of an
    :class:`~models.datasets.clips.EpicSegments`, which did the skipping and reporting)."""

    def __init__(self, segments: EpicSegments):
        self.segments = segments

    def __len__(self) -> int:
        return len(self.segments)

    def num_samples(self, index: int) -> int:
        start, stop = self.segments.span(index)
        return stop - start

    def read(self, index: int, start: int, stop: int) -> np.ndarray:
        first, last = self.segments.span(index)
        seg = self.segments.segments[index]
        return self.segments.audio.samples(seg.video_id, first + start, min(first + stop, last))


class SlowFastClips(Dataset):
    """Log-mel clips of a :class:`WaveSource`, addressed by ``(epoch, index)`` or ``index``.

    Training (``views=0``): one clip per item at a random start drawn from
    ``(seed, epoch, index)``, with SpecAugment when ``augment`` is given; ``spec`` is
    ``(1, T, F)``. Test (``views=V >= 1``): ``V`` clips at the reference's evenly spaced starts;
    ``spec`` is ``(V, 1, T, F)``.

    Args:
        source: The audio.
        targets: Name -> ``(N,)`` int64 class ids (``target``, or ``verb`` and ``noun``).
        clip: Clip and front end.
        views: 0 for training clips, else test views per item.
        augment: SpecAugment settings for training clips, or None.
        seed: Seeds the clip starts and the augmentation.

    Items are dicts: ``spec`` float32, ``index`` int64 and each target.
    """

    def __init__(self, source: WaveSource, targets: dict[str, np.ndarray], clip: ClipSpec, *, views: int = 0,
                 augment: SpecAugmentConfig | None = None, seed: int = 0):
        if views < 0:
            raise ValueError(f"views: expected >= 0 (0 = training clips), found {views}")
        for name, values in targets.items():
            if len(values) != len(source):
                raise ValueError(f"target {name!r}: expected {len(source)} values, found {len(values)}")
        self.source = source
        self.targets = {k: np.asarray(v, dtype=np.int64) for k, v in targets.items()}
        self.clip = clip
        self.views = int(views)
        self.augment = augment
        self.seed = int(seed)
        self.frontend = FrontEnd(clip.frontend)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, address) -> dict:
        epoch, index = (int(address[0]), int(address[1])) if isinstance(address, tuple) else (0, int(address))
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range for {len(self)} items")
        n = self.source.num_samples(index)
        size = self.clip.clip_samples
        if self.views == 0:
            rng = np.random.default_rng([self.seed, epoch, index])
            start = clip_start(n, self.clip, rng=rng)
            spec = clip_logmel(self.source.read(index, start, start + size), self.clip, self.frontend)
            if self.augment is not None:
                spec = spec_augment(spec, rng, self.augment)
        else:
            starts = [clip_start(n, self.clip, view=k, views=self.views) for k in range(self.views)]
            cache: dict[int, torch.Tensor] = {}  # short input: every view is the same clip
            specs = []
            for s in starts:
                if s not in cache:
                    cache[s] = clip_logmel(self.source.read(index, s, s + size), self.clip, self.frontend)
                specs.append(cache[s])
            spec = torch.stack(specs)  # (V, 1, T, F)
        item = {"spec": spec.float().contiguous(), "index": torch.tensor(index)}
        for name, values in self.targets.items():
            item[name] = torch.tensor(values[index])
        return item
