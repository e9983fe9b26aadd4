"""What a model family declares: its networks, recipes, live adapter and the model files it reads.

A family is a package under ``models/`` (or any importable module, for plug-ins) that exposes a
module-level ``FAMILY = Family(...)``. Nothing registers itself on import: ``models.families``
imports the family list once and builds every registry from these declarations, so a lookup can
never see a registry that import order left half empty.

Example (a plug-in family module ``myfamily.py``)::

    FAMILY = Family(
        name="toy", description="a toy labeler",
        networks=(NetworkEntry("toy-net", build_toy, "two linear layers on log-mel"),),
        recipes=(ToyRecipe,),
    )

The live adapter receives an open runner (``engines``: ONNX Runtime, PyTorch or TensorRT, all
answering ``runner.infer({input name: array}) -> {output name: array}``) and the model's
metadata, and returns a ``models.core.live.Labeler`` or ``Localizer``. Families whose models are
waveform-in, scores-out labelers need none: :func:`models.core.live.runner_labeler` serves them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from models.core.metadata import ModelMetadata


@dataclass(frozen=True)
class NetworkEntry:
    """A named network constructor: ``factory(**overrides) -> nn.Module``."""

    name: str
    factory: Callable[..., Any]
    description: str


def variant_entries(variants: dict[str, Any], descriptions: dict[str, str], build: Callable[[Any], Any]
                    ) -> tuple[NetworkEntry, ...]:
    """Network entries for a family's named variant configs.

    Each entry's factory is ``factory(**overrides) -> build(dataclasses.replace(config, **overrides))``.

    Args:
        variants: name -> frozen dataclass config.
        descriptions: name -> one line (also the factory's docstring).
        build: config -> ``nn.Module``.
    """

    def entry(name: str) -> NetworkEntry:
        config = variants[name]

        def factory(**overrides: Any) -> Any:
            return build(dataclasses.replace(config, **overrides))

        factory.__name__ = name.replace("-", "_")
        factory.__doc__ = f"{descriptions[name]}; keyword overrides replace {type(config).__name__} fields."
        return NetworkEntry(name, factory, descriptions[name])

    return tuple(entry(name) for name in variants)


@dataclass(frozen=True)
class ExportableModel:
    """A model ready for a runner or for ONNX export.

    Attributes:
        module: ``nn.Module`` taking the metadata's inputs positionally, in order.
        example_inputs: name -> example tensor (batch 2), for export and its verification.
        dynamic_axes: name -> {axis: name}, as :func:`models.export.onnx.export_onnx` takes them.
        metadata: what travels with the weights (family, task, labels, inputs and outputs).
    """

    module: Any
    example_inputs: dict[str, Any]
    dynamic_axes: dict[str, Any]
    metadata: ModelMetadata


@dataclass(frozen=True)
class ModelFile:
    """A kind of model file a family opens without a run folder (a released ``.pyth`` checkpoint,
    a bare L³ checkpoint).

    Attributes:
        name: short name, shown by ``avlive --list-models``.
        description: one line.
        claims: ``claims(path) -> bool``: whether the file is of this kind (cheap; no network built).
        metadata: ``metadata(path) -> ModelMetadata`` without building the network.
        load: ``load(path) -> ExportableModel``: the network with its weights, in eval mode.
    """

    name: str
    description: str
    claims: Callable[[Path], bool]
    metadata: Callable[[Path], ModelMetadata]
    load: Callable[[Path], ExportableModel]


@dataclass(frozen=True)
class Family:
    """One model family's declarations.

    Attributes:
        name: the ``family`` field of its models' metadata (which adapter opens them live).
        description: one line for ``--help`` listings.
        networks: named network constructors.
        recipes: ``models.core.recipe.Recipe`` subclasses (each has ``name`` and ``description``).
        live: ``live(runner, metadata) -> Labeler | Localizer``; None: the default labeler adapter.
        model_files: file kinds this family opens directly.
    """

    name: str
    description: str
    networks: tuple[NetworkEntry, ...] = ()
    recipes: tuple[type, ...] = ()
    live: Callable[[Any, ModelMetadata], Any] | None = None
    model_files: tuple[ModelFile, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"Family.name: expected a non-empty str, found {self.name!r}")
