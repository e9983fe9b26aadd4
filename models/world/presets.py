"""Named world presets and the seeds each split draws from.

``BENCH`` is frozen: every accuracy and latency target in avlive is measured on it, unchanged.
Changing any value here means re-running and reporting every number measured on it before
(tests/test_world.py pins its fingerprint so a change cannot go unnoticed).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

from models.world.scene import WorldConfig

# Every field spelled out, so a change of WorldConfig's defaults cannot move the preset.
BENCH = WorldConfig(
    frame_width=224,
    frame_height=224,
    fps=30,
    object_size=(0.17, 0.26),
    object_speed_hz=(0.06, 0.2),
    pixel_noise=3.0,
    n_event_tracks=3,
    track_mean_gap=(1.5, 7.0, 14.0),
    min_gap=0.2,
    event_duration=(0.3, 5.0),
    pitch_semitones=3.0,
    snr_db=(0.0, 20.0),
    offscreen_probability=0.15,
    object_lead=(0.0, 1.5),
    object_lag=(0.0, 1.5),
    n_distractor_tracks=3,
    distractor_lifetime=(2.0, 8.0),
    background_rms=0.01,
    background_level_db=6.0,
    background_level_knot=1.5,
    background_mix_knot=3.0,
)

# A cheaper world for unit tests: small frames, same sounds.
TINY = dataclasses.replace(BENCH, frame_width=96, frame_height=96, fps=15)

PRESETS: dict[str, WorldConfig] = {"bench": BENCH, "tiny": TINY}

# Disjoint seed ranges per split: [first, first + size).
SPLIT_SEEDS: dict[str, tuple[int, int]] = {
    "train": (0, 100_000),
    "val": (100_000, 1_000),
    "test": (200_000, 1_000),
}


def get_preset(name: str) -> WorldConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown world preset {name!r}; expected one of {sorted(PRESETS)}") from None


def split_seed(split: str, index: int) -> int:
    """The index-th scene seed of ``split`` ('train', 'val' or 'test')."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_SEEDS)}")
    first, size = SPLIT_SEEDS[split]
    if not 0 <= index < size:
        raise ValueError(f"split {split!r} has seeds for index 0..{size - 1}, found index {index}")
    return first + index


def seed_split(seed: int) -> str:
    """Which split a scene seed belongs to."""
    for split, (first, size) in SPLIT_SEEDS.items():
        if first <= seed < first + size:
            return split
    raise ValueError(f"seed {seed} lies in no split; splits: {SPLIT_SEEDS}")


def config_fingerprint(config: WorldConfig) -> str:
    """sha256 of the config's fields, for pinning a preset."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()
