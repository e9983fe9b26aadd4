"""Imports every model family's recipes so that RECIPES lists them all (CLI, exporter, live)."""
from . import baseline, slowfast_lite  # noqa: F401  (each registers its recipes)
from . import slowfast_recipes  # noqa: F401  (registers slowfast-vggsound, slowfast-epic100, slowfast-epicsounds)
from . import l3_recipe  # noqa: F401  (registers l3)
from .train.recipe import RECIPES

__all__ = ["RECIPES"]
