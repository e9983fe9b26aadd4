"""The trainer: ``python -m models.train --recipe NAME [--data PATH] [--out RUN_DIR] [key=value ...]``.

Recipes are declared by the model families (``models/<family>/``) and listed in
``models.families.RECIPES``, the one registry the CLI, the exporter and the live pipeline share.
The recipe protocol itself (``Recipe``, ``TrainConfig``) lives in ``models.core`` and the
checkpoint format in ``models.core.checkpoint``; this package runs recipes (loop, sampler, DDP).
"""
