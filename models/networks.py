"""The registry of network constructors shared by the trainer, the exporter, the CLI and the tests.

Each model family registers its named variants here when its module is imported
(``models.baseline``, ``models.l3``, ``models.slowfast`` ...).
:func:`create` and :func:`names` import every family first, so callers need not know
which module defines a name.

Example:
    >>> from models.networks import create
    >>> model = create("slowfast-test")            # tiny Slow-Fast for tests
"""
from __future__ import annotations

import importlib
from typing import Any

from .registry import Registry

__all__ = ["NETWORKS", "FAMILY_MODULES", "import_families", "create", "names"]

#: Network name -> constructor returning an ``nn.Module``.
NETWORKS: Registry = Registry("network")

#: Modules that register networks on import.
FAMILY_MODULES = ("models.baseline", "models.l3", "models.slowfast", "models.slowfast_checkpoint")


def import_families() -> None:
    """Import every family module so that all its networks are registered."""
    for module in FAMILY_MODULES:
        importlib.import_module(module)


def create(name: str, **overrides: Any) -> Any:
    """Build the network registered as ``name``; ``overrides`` go to its constructor."""
    import_families()
    return NETWORKS.create(name, **overrides)


def names() -> list[str]:
    """All registered network names, sorted."""
    import_families()
    return NETWORKS.names()
