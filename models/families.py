"""The one list of model families, and every registry built from it.

Built-in families are imported statically here; plug-in families are modules named in the
``AVLIVE_FAMILIES`` environment variable (comma-separated module names, importable from
``sys.path``) or installed packages that declare an entry point in the ``avlive.families`` group
(``[project.entry-points."avlive.families"] toy = "mypackage.toy"``). Each family module exposes
``FAMILY`` (``models.core.family.Family``). The registries below are filled when this module is
imported, before anything can look a name up in them:

================  ===========================================================================
``NETWORKS``      network name -> constructor (``NETWORKS.create("l3-lite")``)
``RECIPES``       recipe name -> Recipe class (``python -m models.train --recipe NAME``)
``FAMILIES``      family name -> Family (its live adapter opens that family's models)
``MODEL_FILES``   file kind -> ModelFile (released ``.pyth`` checkpoints, bare L³ checkpoints)
================  ===========================================================================

Example:
    >>> from models.families import NETWORKS, RECIPES
    >>> model = NETWORKS.create("slowfast-test")
    >>> RECIPES.get("baseline").factory
"""
from __future__ import annotations

import importlib
import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Sequence

from models import avslowfast, baseline, crnn, efficientat, l3, panns, slowfast, soundnet
from models.audio.streaming import StreamingLabeler
from models.core.checkpoint import find_checkpoint, load_checkpoint
from models.core.family import ExportableModel, Family, ModelFile
from models.core.live import runner_labeler
from models.core.metadata import ModelMetadata
from models.core.registry import Registry
from models.core.train_config import apply_overrides, config_from_dict

__all__ = ["BUILTIN_FAMILIES", "ENV_VAR", "ENTRY_POINT_GROUP", "FAMILIES", "MODEL_FILES", "NETWORKS", "RECIPES",
           "FamilyError", "exportable", "live_adapter", "load_trained", "model_file_for"]

#: Families that ship with avlive, in listing order.
BUILTIN_FAMILIES: tuple[Family, ...] = (baseline.FAMILY, slowfast.FAMILY, l3.FAMILY, crnn.FAMILY, avslowfast.FAMILY,
                                         soundnet.FAMILY, panns.FAMILY, efficientat.FAMILY)
#: Environment variable naming extra family modules (comma-separated).
ENV_VAR = "AVLIVE_FAMILIES"
#: Entry-point group of installed plug-in families.
ENTRY_POINT_GROUP = "avlive.families"


class FamilyError(ImportError):
    """A plug-in family that cannot be loaded; the message names the module and what is wrong."""


def _plugin_families() -> list[Family]:
    found: list[tuple[str, Any]] = []
    for name in filter(None, (s.strip() for s in os.environ.get(ENV_VAR, "").split(","))):
        try:
            found.append((f"{ENV_VAR} module {name!r}", importlib.import_module(name)))
        except ImportError as e:
            raise FamilyError(f"{ENV_VAR} names {name!r}, which does not import: {e}") from e
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.append((f"entry point {ep.name!r} ({ep.value})", ep.load()))
    families = []
    for where, module in found:
        family = getattr(module, "FAMILY", None)
        if not isinstance(family, Family):
            raise FamilyError(f"{where}: expected a module-level FAMILY = models.core.family.Family(...), "
                              f"found {type(family).__name__}")
        families.append(family)
    return families


def _build() -> tuple[Registry, Registry, Registry, Registry]:
    networks, recipes, families, files = (Registry("network"), Registry("recipe"), Registry("model family"),
                                          Registry("model file kind"))
    for family in (*BUILTIN_FAMILIES, *_plugin_families()):
        families.register(family.name, family.description)(family)
        for net in family.networks:
            networks.register(net.name, net.description)(net.factory)
        for recipe in family.recipes:
            recipes.register(recipe.name, recipe.description)(recipe)
        for kind in family.model_files:
            files.register(kind.name, kind.description)(kind)
    return networks, recipes, families, files


NETWORKS, RECIPES, FAMILIES, MODEL_FILES = _build()


def model_file_for(path: str | os.PathLike) -> ModelFile | None:
    """The family file kind that claims ``path``, or None."""
    p = Path(path)
    for name in MODEL_FILES.names():
        kind: ModelFile = MODEL_FILES.get(name).factory
        if kind.claims(p):
            return kind
    return None


def load_trained(source: str | os.PathLike, live_settings: Sequence[str] = ()):
    """Rebuild a trained model from a run folder or checkpoint: (recipe instance, model in eval mode, metadata dict).

    ``live_settings``: ``NAME=VALUE`` changes to the recipe's ``live_settings`` fields (the
    exported live graph's hop, look-ahead ...); the metadata is then the recipe's for the
    changed config. Any other field is refused (ValueError naming the ones allowed)."""
    data = load_checkpoint(find_checkpoint(source))
    recipe_cls = RECIPES.get(data["recipe"]).factory
    config = config_from_dict(recipe_cls.config_class, data["config"])
    for item in live_settings:
        name = item.split("=", 1)[0]
        if name not in recipe_cls.live_settings:
            allowed = ", ".join(recipe_cls.live_settings) or "none"
            raise ValueError(f"--set {item}: {data['recipe']}'s live settings are {allowed} "
                             "(the other fields describe what was trained)")
    config = apply_overrides(config, list(live_settings))
    recipe = recipe_cls(config)
    recipe.restore(data["metadata"])  # labels a dataset gave it (a DESED folder's classes ...)
    model = recipe.build_model()
    model.load_state_dict(data["model_state"])
    model.eval()
    if not live_settings:
        return recipe, model, data["metadata"]
    metadata = recipe.metadata(model).to_dict()
    metadata["extra"]["live_settings_changed"] = list(live_settings)  # what the export changed from training
    return recipe, model, metadata


def exportable(source: str | os.PathLike) -> ExportableModel:
    """The exportable module of a run folder, an avlive checkpoint, or a model file a family reads.

    Raises:
        FileNotFoundError, ValueError: no such file, or one that no recipe or family reads
            (the message says what was expected).
    """
    p = Path(source)
    kind = model_file_for(p) if p.is_file() else None
    if kind is not None:
        return kind.load(p)
    recipe, model, metadata = load_trained(p)
    module, examples, dynamic_axes = recipe.export_module(model)
    return ExportableModel(module, examples, dynamic_axes, ModelMetadata.from_dict(metadata))


def live_adapter(metadata: ModelMetadata):
    """``adapter(runner, metadata) -> Labeler | Localizer`` for a model of ``metadata.family``.

    Raises:
        KeyError: a family no loaded family list knows (the message lists the known ones and
            how to add a plug-in family).
    """
    if metadata.family not in FAMILIES:
        raise KeyError(f"model family {metadata.family!r} is not loaded (known: {', '.join(FAMILIES.names())}); "
                       f"a plug-in family is loaded by naming its module in {ENV_VAR}")
    family: Family = FAMILIES.get(metadata.family).factory
    if family.live is not None:
        return family.live
    if metadata.task != "labeler":
        raise KeyError(f"model family {family.name!r} has no live adapter for a {metadata.task}")
    if metadata.extra.get("frontend_outside"):  # a features-in export: the streaming front end feeds it
        return StreamingLabeler
    return runner_labeler
