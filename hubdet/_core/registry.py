"""A small registry keyed by name, in the spirit of timm's ``register_model``."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from hubdet._core.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; duplicate names raise, unknown names suggest close matches."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; raise :class:`DuplicateNameError` if taken."""
        if name in self._items:
            raise DuplicateNameError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def decorator(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator form of :meth:`register`; the default name is the object's ``__name__``."""

        def wrap(obj: T) -> T:
            return self.register(name or obj.__name__, obj)  # type: ignore[attr-defined]

        return wrap

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise with suggestions."""
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=5, cutoff=0.4)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{hint} (known: {len(self._items)}, "
                f"list them with list_{self.kind.replace(' ', '_')}s())"
            ) from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted names, optionally filtered by an ``fnmatch`` pattern."""
        import fnmatch

        names = sorted(self._items)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
