"""The synthetic audio-visual world every avlive model trains and is scored on."""
from models.world.presets import BENCH, PRESETS, SPLIT_SEEDS, TINY, get_preset, seed_split, split_seed
from models.world.scene import FrameObject, Scene, SceneObject, WorldConfig, WorldEvent
from models.world.sounds import CLASS_NAMES, CLOSE_PAIRS, SOUND_CLASSES

__all__ = [
    "BENCH", "CLASS_NAMES", "CLOSE_PAIRS", "FrameObject", "PRESETS", "SOUND_CLASSES", "SPLIT_SEEDS",
    "Scene", "SceneObject", "TINY", "WorldConfig", "WorldEvent", "get_preset", "seed_split", "split_seed",
]
