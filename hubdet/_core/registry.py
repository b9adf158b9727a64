"""Registries keyed by name (in the spirit of timm's ``register_model``), filled by discovering their modules.

A registry that is given a :class:`ModuleDiscovery` fills itself on first use: every direct child module of the
discovery's package whose code uses one of its marker names (e.g. ``register_source``) is imported, and its
registrations run. Adding a source or a family is therefore one new file; no list of modules is kept anywhere.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import logging
import pkgutil
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from hubdet._core.errors import DuplicateNameError, UnknownNameError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def uses_name(path: str | Path, names: Iterable[str]) -> bool:
    """Whether the Python file ``path`` uses one of ``names`` in its code (a call, a decorator, an attribute).

    Imports, definitions, strings and comments do not count: ``from x import register_family`` alone does not make
    a module a family module, ``@register_family`` or ``register_detector(...)`` does.
    """
    wanted = set(names)
    text = Path(path).read_text(encoding="utf-8")
    if not any(n in text for n in wanted):  # cheap filter before parsing
        return False
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Name) and node.id in wanted:
            return True
        if isinstance(node, ast.Attribute) and node.attr in wanted:
            return True
    return False


class ModuleDiscovery:
    """Finds and imports the modules that register things in one package.

    The rule: a direct child of ``package`` (a ``.py`` module, or a sub-package through its ``__init__.py``)
    whose name does not start with ``_`` and whose code uses one of ``markers`` (see :func:`uses_name`).
    Modules are found without importing the others, so optional dependencies of unrelated modules are never
    imported. A module that fails to import raises :class:`ImportError` naming it: nothing is skipped silently.
    """

    def __init__(self, package: str, markers: Iterable[str]) -> None:
        self.package = package
        self.markers = tuple(markers)
        self._lock = threading.RLock()
        self._state = "new"  # new -> running -> done; back to new when an import fails

    def modules(self) -> list[str]:
        """Dotted names of the modules the rule selects (sorted; nothing is imported but the package)."""
        pkg = importlib.import_module(self.package)
        found = []
        for info in pkgutil.iter_modules(pkg.__path__, prefix=f"{self.package}."):
            if info.name.rsplit(".", 1)[-1].startswith("_"):
                continue
            spec = importlib.util.find_spec(info.name)
            origin = spec.origin if spec is not None else None
            if origin and origin.endswith(".py") and uses_name(origin, self.markers):
                found.append(info.name)
        return sorted(found)

    def ensure(self) -> None:
        """Import the selected modules once per process (thread-safe; re-entrant calls during it return)."""
        if self._state == "done":
            return
        with self._lock:
            if self._state != "new":  # done by another thread, or a registration running inside our own imports
                return
            self._state = "running"
            try:
                for name in self.modules():
                    try:
                        importlib.import_module(name)
                    except Exception as exc:
                        raise ImportError(f"{self.package}: module {name} failed to import ({type(exc).__name__}: "
                                          f"{exc}); fix it or move it out of the package", name=name) from exc
            except BaseException:
                self._state = "new"
                raise
            self._state = "done"
            logger.debug("%s: discovered %s", self.package, self.markers)


_ALL: weakref.WeakSet[Registry] = weakref.WeakSet()


class Registry(Generic[T]):
    """Maps names to objects; duplicate names raise, unknown names suggest close matches.

    ``lister`` is the public call that lists the names (quoted in unknown-name errors, so it must exist);
    ``discovery`` fills the registry from its package's modules before the first lookup.
    """

    def __init__(self, kind: str, *, lister: str | None = None, discovery: ModuleDiscovery | None = None) -> None:
        self.kind = kind
        self.lister = lister
        self.discovery = discovery
        self._items: dict[str, T] = {}
        _ALL.add(self)

    @staticmethod
    def instances() -> list[Registry]:
        """Every registry alive in this process (for tests that check all of them)."""
        return list(_ALL)

    def _discover(self) -> None:
        if self.discovery is not None:
            self.discovery.ensure()

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
        self._discover()
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=5, cutoff=0.4)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            if self.lister:
                known = f"known: {len(self._items)}, list them with {self.lister}"
            else:
                known = "known: " + (", ".join(sorted(self._items)) or "none")
            raise UnknownNameError(f"unknown {self.kind} {name!r}{hint} ({known})") from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted names, optionally filtered by an ``fnmatch`` pattern."""
        import fnmatch

        self._discover()
        names = sorted(self._items)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self._discover()
        return iter(sorted(self._items))

    def __len__(self) -> int:
        self._discover()
        return len(self._items)
