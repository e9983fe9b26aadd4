"""The synthetic audio-visual world every avlive model trains and is scored on."""
from .presets import BENCH, PRESETS, SPLIT_SEEDS, TINY, get_preset, seed_split, split_seed
from .scene import FrameObject, Scene, SceneObject, WorldConfig, WorldEvent
from .sounds import CLASS_NAMES, CLOSE_PAIRS, SOUND_CLASSES

__all__ = [
    "BENCH", "CLASS_NAMES", "CLOSE_PAIRS", "FrameObject", "PRESETS", "SOUND_CLASSES", "SPLIT_SEEDS",
    "Scene", "SceneObject", "TINY", "WorldConfig", "WorldEvent", "get_preset", "seed_split", "split_seed",
]
