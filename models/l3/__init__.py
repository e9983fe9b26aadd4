"""L³-Net (Arandjelović & Zisserman, "Objects that Sound", ECCV 2018): audio-visual
correspondence, and the sound-source heatmap the live window draws.

==============  =============================================================================
module          job
==============  =============================================================================
``network``     the network (paper, lite, tiny), frame preprocessing, its checkpoints
``sources``     where training pairs come from: world scenes or a folder of videos
``pairs``       the AVC pairs dataset and frame augmentation
``recipe``      the ``l3`` and ``l3-lite`` recipes (configs, loss, validation)
``evaluation``  AVC, pointing game, cIoU, off-screen and linear-probe figures (apps.eval_l3)
``live``        the localizer adapter over any runner; bare checkpoints as a model file
==============  =============================================================================
"""
from models.core.family import Family
from models.l3.live import L3_CHECKPOINT_FILE, RunnerLocalizer
from models.l3.network import NETWORK_ENTRIES
from models.l3.recipe import L3LiteRecipe, L3Recipe

FAMILY = Family(
    name="l3",
    description="L3-Net: audio-visual correspondence and the sound-source heatmap (localizers)",
    networks=NETWORK_ENTRIES,
    recipes=(L3Recipe, L3LiteRecipe),
    live=RunnerLocalizer,
    model_files=(L3_CHECKPOINT_FILE,),
)
