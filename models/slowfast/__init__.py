"""Slow-Fast Auditory Streams (Kazakos et al., ICASSP 2021): the reference network, its released
``.pyth`` checkpoints, the VGG-Sound / EPIC recipes and the ``slowfast-lite`` labeler of the world.

================  ==========================================================================
module            job
================  ==========================================================================
``network``       the network (reference state-dict keys), its variants and clip specs
``pyth``          reading and writing the reference's ``.pyth`` files, label files
``released``      ``.pyth`` files as a model file avlive opens directly (live, export)
``recipes``       the VGG-Sound, EPIC-KITCHENS-100 and EPIC-SOUNDS recipes
``lite``          ``slowfast-lite``: the multi-label labeler of the synthetic world
================  ==========================================================================
"""
from models.core.family import Family
from models.slowfast.lite import SlowFastLiteRecipe
from models.slowfast.network import NETWORK_ENTRIES
from models.slowfast.recipes import Epic100Recipe, EpicSoundsRecipe, VggSoundRecipe
from models.slowfast.released import PYTH_FILE

FAMILY = Family(
    name="slowfast",
    description="Slow-Fast Auditory Streams: log-mel Slow and Fast pathways (labelers)",
    networks=NETWORK_ENTRIES,
    recipes=(VggSoundRecipe, Epic100Recipe, EpicSoundsRecipe, SlowFastLiteRecipe),
    model_files=(PYTH_FILE,),
)
