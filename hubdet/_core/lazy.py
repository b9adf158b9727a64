"""Lazy re-exports, so that importing a package (and ``hubdet --help``) does not import torch or datasets."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str], namespace: dict[str, Any]) -> tuple[
    Callable[[str], Any], Callable[[], list[str]]
]:
    """Return ``(__getattr__, __dir__)`` for ``package`` resolving each name from its module on first use."""

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(names) | {n for n in namespace if not n.startswith("_")})

    return __getattr__, __dir__
