"""Imports every model family's recipes so that RECIPES lists them all (CLI, exporter, live)."""
from . import baseline  # noqa: F401  (registers "baseline")
from .train.recipe import RECIPES

__all__ = ["RECIPES"]
