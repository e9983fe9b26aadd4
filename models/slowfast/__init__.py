"""Slow-Fast Auditory Streams (Kazakos et al., ICASSP 2021): the reference network, its released
``.pyth`` checkpoints, the VGG-Sound / EPIC recipes and the ``slowfast-lite`` labeler of the world.

================  ==========================================================================
module            job
================  ==========================================================================
``network``       the network (reference state-dict keys), its variants and clip specs
``pyth``          reading and writing the reference's ``.pyth`` files, label files
``released``      ``.pyth`` files as a model file avlive opens directly (live, export)
``configs``       the recipes' settings (the reference's hyper-parameters as defaults)
``clips``         clip starts, log-mel and the clip datasets of the recipes
``recipes``       what the VGG-Sound and EPIC recipes share (waveform wrapper, BN freezing, LR)
``vggsound``      the ``slowfast-vggsound`` recipe
``epic``          the ``slowfast-epic100`` and ``slowfast-epicsounds`` recipes
``lite``          ``slowfast-lite``: the multi-label labeler of the synthetic world
================  ==========================================================================
"""
from models.core.family import Family
from models.slowfast.lite import SlowFastLiteRecipe
from models.slowfast.network import NETWORK_ENTRIES
from models.slowfast.epic import Epic100Recipe, EpicSoundsRecipe
from models.slowfast.vggsound import VggSoundRecipe
from models.slowfast.released import PYTH_FILE

FAMILY = Family(
    name="slowfast",
    description="Slow-Fast Auditory Streams: log-mel Slow and Fast pathways (labelers)",
    networks=NETWORK_ENTRIES,
    recipes=(VggSoundRecipe, Epic100Recipe, EpicSoundsRecipe, SlowFastLiteRecipe),
    model_files=(PYTH_FILE,),
)
