"""A named set of extensions of one kind (losses, protocols, debate backends): the
only list of its kind.

An extension registers itself where it is defined (`@LOSSES.register("xent")`), and
everything that needs the list (config validation, cache keys, --help) reads it from
the registry, so adding one is writing it, nothing else.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind  # what an entry is, for messages: "loss"
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register `entry` under `name`; a name is taken once (the same entry again, as
        when its module is imported twice, is allowed)."""
        if self._entries.get(name, entry) != entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that registers its argument under `name` and returns it unchanged."""
        return lambda entry: self.add(name, entry)

    def names(self) -> list[str]:
        return list(self._entries)

    def check(self, name: str) -> str:
        """`name` if registered; else a ValueError naming the registered ones."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}: choose {', '.join(self._entries)}")
        return name

    def __getitem__(self, name: str) -> T:
        return self._entries[self.check(name)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str, default: T | None = None) -> T | None:
        return self._entries.get(name, default)

    def items(self):
        return self._entries.items()

    def values(self):
        return self._entries.values()
