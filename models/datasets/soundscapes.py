"""Strongly labelled soundscapes of a DESED-layout folder joined into one stream, for scoring a
live labeler on real sound: the audio end to end and the events shifted to their place in it.

The sets are the folder's ``metadata/<split>/<split>.tsv`` with clips in ``audio/<split>/``
(``split``: ``eval`` or ``validation``, as ``apps.build_real_sounds`` writes them and DESED's
validation set is laid out).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.core.events import LabeledEvent
from models.datasets.formats.dcase import read_dcase_strong
from models.io.media import read_audio

__all__ = ["JoinedSoundscapes", "join_soundscapes", "soundscape_names"]


@dataclass(frozen=True)
class JoinedSoundscapes:
    """``audio`` (N,) float32 at ``sample_rate``; ``events`` on the joined time line, file ``name``."""

    audio: np.ndarray
    sample_rate: int
    events: list[LabeledEvent]
    name: str

    @property
    def seconds(self) -> float:
        return self.audio.size / self.sample_rate


def _paths(root: Path, split: str) -> tuple[Path, Path]:
    tsv, audio = root / "metadata" / split / f"{split}.tsv", root / "audio" / split
    if not tsv.is_file():
        raise FileNotFoundError(f"{root}: no {tsv.relative_to(root)} (expected a DESED layout with a {split} set)")
    return tsv, audio


def soundscape_names(root: str | Path, split: str) -> list[str]:
    """The clips of a set, in the TSV's order."""
    return list(read_dcase_strong(_paths(Path(root), split)[0]).files)


def join_soundscapes(root: str | Path, split: str, names: list[str], name: str,
                     sample_rate: int | None = None, max_seconds: float | None = None) -> JoinedSoundscapes:
    """Clips ``names`` of set ``split`` end to end (resampled to ``sample_rate``; None: the first
    clip's rate), with their strong labels shifted to the joined time line under file ``name``;
    ``max_seconds``: only the whole clips that fit (at least one)."""
    tsv, audio_dir = _paths(Path(root), split)
    labels = read_dcase_strong(tsv)
    pieces, events, t = [], [], 0.0
    rate = sample_rate
    for clip in names:
        audio, rate = read_audio(audio_dir / clip, sample_rate=rate, mono=True)
        if pieces and max_seconds is not None and t + audio.size / rate > max_seconds:
            break
        events += [LabeledEvent(name, round(t + e.onset, 3), round(t + e.offset, 3), e.label) for e in labels.events_for(clip)]
        pieces.append(np.asarray(audio, np.float32))
        t += audio.size / rate
    if not pieces:
        raise ValueError(f"join_soundscapes: no clips of {split} given")
    return JoinedSoundscapes(np.concatenate(pieces), int(rate), sorted(events, key=lambda e: e.onset), name)
