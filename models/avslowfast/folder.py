"""A folder-per-class video dataset for AVSlowFast: ``ROOT/<class>/<video>``.

The classes are the folder names, sorted. With ``train/`` and ``val/`` subfolders those are the
splits (each holding class folders); otherwise every fifth video of a class (in sorted order)
is held out for validation. Each video is decoded once (the crash-contained decode pool): its
first ``max_seconds`` of audio at 16 kHz mono and its frames scaled to ``S x S`` with their
presentation times. An item is one clip of the video: a clip end drawn from ``(seed, epoch,
index)`` (fixed for validation), the frames nearest the clip's instants by their timestamps,
the audio window ending there (zeros before the video's start), and the class as a one-hot
target; a video shorter than a clip gives the clip ending at its last frame.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from models.avslowfast.data import AUDIO_FRONTEND, ClipSpec
from models.datasets.clip_decode import ClipSpec as VideoSpec
from models.datasets.formats import read_video_folder
from models.io.decode_pool import SkipReport, decode_many

logger = logging.getLogger(__name__)

__all__ = ["FolderClips", "folder_splits"]


def folder_splits(root: Path, labelled: bool = True
                  ) -> tuple[tuple[str, ...], list[tuple[Path, str, int]], list[tuple[Path, str, int]]]:
    """(class names, train videos, validation videos); each video is ``(path, key, class index)``.

    With ``labelled=False`` (self-supervised use) any video under ``root`` counts, in one class
    ``"video"``, and folders are only the split.

    Raises:
        FileNotFoundError: ``root`` is not a folder, or holds no class folder with videos.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder; expected ROOT/<class>/<video> "
                                f"(or ROOT/train/<class>/..., ROOT/val/<class>/...)")
    split_dirs = {"train": root / "train", "val": root / "val"}
    presplit = all(d.is_dir() for d in split_dirs.values())
    listed = {name: read_video_folder(d) for name, d in split_dirs.items()} if presplit else {"all": read_video_folder(root)}
    if labelled:
        classes = sorted({f.relpath.split("/")[0] for files in listed.values() for f in files if "/" in f.relpath})
        if not classes:
            raise FileNotFoundError(f"--data {root}: no videos in class folders; expected ROOT/<class>/<video>")
    else:
        classes = ["video"]
        if not any(listed.values()):
            raise FileNotFoundError(f"--data {root}: no videos found")
    index = {c: i for i, c in enumerate(classes)}

    def rows(files) -> list[tuple[Path, str, int]]:
        if not labelled:
            return [(f.path, f.relpath, 0) for f in files]
        return [(f.path, f.relpath, index[f.relpath.split("/")[0]]) for f in files if "/" in f.relpath]

    if presplit:
        return tuple(classes), rows(listed["train"]), rows(listed["val"])
    train, val, seen = [], [], dict.fromkeys(classes, 0)
    for row in rows(listed["all"]):
        name = classes[row[2]]
        (val if seen[name] % 5 == 4 else train).append(row)
        seen[name] += 1
    return tuple(classes), train, val


def _decode(spec, *, image_size: int, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worker side: (audio (n,) float32 at 16 kHz, frames (m, S, S, 3) uint8, times (m,) float64)."""
    from models.io.media import MediaDecodeError, read_audio, read_video_frames

    audio, _ = read_audio(spec.path, sample_rate=AUDIO_FRONTEND.sample_rate, mono=True, stop=seconds)
    frames, times = read_video_frames(spec.path, stop=seconds, size=(image_size, image_size))
    if len(frames) == 0:
        raise MediaDecodeError(spec.path, "no video frames")
    return audio.astype(np.float32), frames, np.asarray(times, np.float64)


class FolderClips(Dataset):
    """Clips of decoded videos, one per video per epoch.

    Args:
        videos: ``(path, key, class index)`` rows (:func:`folder_splits`).
        num_classes: the length of the one-hot targets.
        spec: the clip.
        seed: draws each item's clip end.
        fixed: the same clip every epoch (validation).
        max_seconds: only the first seconds of each video are decoded.
        workers: decoder processes (0: decode here, without crash containment).

    Item ``(epoch, index)`` -> dict like :class:`models.avslowfast.data.WorldClips` (``hard_audio``
    is the audio window at least 0.5 s away in the same video when it is long enough, else another
    part of it).
    """

    def __init__(self, videos, num_classes: int, spec: ClipSpec, seed: int = 0, fixed: bool = False,
                 max_seconds: float = 30.0, workers: int = 2) -> None:
        self.spec, self.seed, self.fixed, self.num_classes = spec, seed, fixed, num_classes
        labels = {key: c for _, key, c in videos}
        specs = [VideoSpec(Path(path), key=key) for path, key, _ in videos]
        report = SkipReport()
        fn = functools.partial(_decode, image_size=spec.image_size, seconds=float(max_seconds))
        self.items = []
        for clip, (audio, frames, times) in self._decoded(specs, fn, workers, report):
            self.items.append((audio, frames, times, labels[clip.key]))
        if not self.items:
            raise ValueError(f"FolderClips: none of the {len(videos)} videos decoded (see the warnings)")

    @staticmethod
    def _decoded(specs, fn, workers: int, report: SkipReport):
        """``(spec, result)`` of each video that decodes: in crash-contained worker processes, or
        with ``workers=0`` in this process (a few small files; a failure is skipped and reported)."""
        if workers > 0:
            yield from decode_many(specs, fn, workers=workers, report=report)
            return
        for spec in specs:
            try:
                yield spec, fn(spec)
            except Exception as e:  # noqa: BLE001 - any decoder error skips the file, as the pool does
                report.add(spec, f"error: {e}")

    def __len__(self) -> int:
        return len(self.items)

    def _window(self, audio: np.ndarray, end: float) -> np.ndarray:
        n = self.spec.audio_samples
        stop = round(end * AUDIO_FRONTEND.sample_rate)
        out = np.zeros(n, np.float32)
        part = audio[max(0, stop - n):max(0, stop)]
        out[n - len(part):] = part
        return out

    def __getitem__(self, address):
        epoch, index = address if isinstance(address, tuple) else (0, address)
        audio, frames, times, label = self.items[index]
        rng = np.random.default_rng([self.seed, 0 if self.fixed else epoch, index])
        duration = min(len(audio) / AUDIO_FRONTEND.sample_rate, float(times[-1]))
        earliest = min(duration, max(self.spec.audio_seconds, (self.spec.frames - 1) / self.spec.frame_rate))
        end = float(rng.uniform(earliest, duration)) if duration > earliest else duration
        instants = self.spec.frame_times(end)
        picks = np.abs(times[None, :] - instants[:, None]).argmin(axis=1)  # nearest by timestamp
        clip = frames[picks].transpose(3, 0, 1, 2).astype(np.float32) / 127.5 - 1.0
        other = end + 0.5 + self.spec.audio_seconds if end + 0.5 + self.spec.audio_seconds <= duration else (
            max(0.0, end - 0.5 - self.spec.audio_seconds))
        target = np.zeros(self.num_classes, np.float32)
        target[label] = 1.0
        return {"frames": torch.from_numpy(clip), "audio": torch.from_numpy(self._window(audio, end)),
                "hard_audio": torch.from_numpy(self._window(audio, other)), "target": torch.from_numpy(target),
                "epoch": torch.tensor(epoch)}
