"""Audiovisual SlowFast (Xiao, Lee, Grauman, Malik, Feichtenhofer, arXiv 2001.08740): visual Slow and
Fast pathways with a Faster Audio pathway, fused A -> F -> S, DropPathway and hierarchical AV
synchronisation.

================  ===========================================================================
module            job
================  ===========================================================================
``network``       the network (paper 8x8 / 4x16 R50, lite, test), its laterals and AVS taps
``sync``          DropPathway and the synchronisation loss (negatives, masks, stage rule)
``data``          the audio front end, frame preprocessing, cached world clips
``folder``        a folder-per-class video dataset (``avslowfast-folder``)
``epic``          EPIC-KITCHENS-100 segments with their frames (or videos) and audio
``epic_recipe``   ``avslowfast-epic100``: verb + noun heads on EPIC-KITCHENS-100
``pretrained``    ``init=RUN``: a supervised run from a (sync-)pretrained backbone
``recipe``        ``avslowfast-lite``, the ablation rows (visual-only, audio-only), sync pretraining
``live``          the clip labeler adapter over any runner
================  ===========================================================================
"""
from models.avslowfast.epic_recipe import AVSlowFastEpicRecipe
from models.avslowfast.live import ClipLabeler
from models.avslowfast.network import NETWORK_ENTRIES
from models.avslowfast.recipe import (
    AudioOnlyLiteRecipe,
    AVSlowFastLiteRecipe,
    FolderRecipe,
    SyncPretrainLiteRecipe,
    VisualSlowFastLiteRecipe,
)
from models.core.family import Family

FAMILY = Family(
    name="avslowfast",
    description="Audiovisual SlowFast: visual Slow/Fast + Faster Audio pathways on clips (labelers)",
    networks=NETWORK_ENTRIES,
    recipes=(AVSlowFastLiteRecipe, VisualSlowFastLiteRecipe, AudioOnlyLiteRecipe, SyncPretrainLiteRecipe,
             FolderRecipe, AVSlowFastEpicRecipe),
    live=ClipLabeler,
)
