"""The trainer: ``python -m models.train --recipe NAME [--data PATH] [--out RUN_DIR] [key=value ...]``.

Recipes register themselves in ``RECIPES`` (models/train/recipe.py); ``models/recipes.py`` imports
every family's recipes so the CLI, the exporter and the live pipeline see the same list.
"""
