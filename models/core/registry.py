"""One registry per kind of thing: networks, training recipes, live models.

A registry maps a name to a factory and a one-line description, so the trainer's ``--help``,
the exporter, the live pipeline's ``--labeler/--localizer`` and the tests all list the same names.

Example:
    >>> NETWORKS = Registry("network")
    >>> @NETWORKS.register("baseline-cnn", "small log-mel CNN")
    ... def baseline_cnn(num_classes=12): ...
    >>> NETWORKS.create("baseline-cnn", num_classes=12)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: T
    description: str


class Registry(Generic[T]):
    """Names → factories, with a description each; registering a name twice is an error."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str) -> Callable[[T], T]:
        def decorate(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice ({self._entries[name].factory!r} and {factory!r})")
            self._entries[name] = Entry(name, factory, description)
            return factory

        return decorate

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none registered"
            raise KeyError(f"unknown {self.kind} {name!r}; expected one of: {known}") from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name).factory(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        """The entries, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def describe(self) -> str:
        """One line per entry: ``name  description``, aligned (for --help epilogs)."""
        width = max((len(n) for n in self._entries), default=0)
        return "\n".join(f"  {e.name:<{width}}  {e.description}" for e in sorted(self._entries.values(), key=lambda e: e.name))
