"""The baseline: a 4-block log-mel CNN labeler on 16 kHz audio (the trainer's first recipe)."""
from models.baseline.recipe import BaselineRecipe, baseline_cnn
from models.core.family import Family, NetworkEntry

FAMILY = Family(
    name="baseline",
    description="small log-mel CNN labeler",
    networks=(NetworkEntry("baseline-cnn", baseline_cnn, "small log-mel CNN on 16 kHz audio (the trainer's baseline)"),),
    recipes=(BaselineRecipe,),
)
