"""Exceptions raised for user errors. Each subclasses a builtin so callers can catch broadly."""

from __future__ import annotations


class HubdetError(Exception):
    """Base class of every hubdet error."""


class ConfigError(HubdetError, ValueError):
    """A configuration has an unknown key, a wrong type or an invalid value."""


class UnknownNameError(HubdetError, KeyError):
    """A registry lookup failed; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(HubdetError, ValueError):
    """A name was registered twice."""


class BadImageError(HubdetError, ValueError):
    """An image file cannot be used; the message names the file and the problem."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsupportedImageError(BadImageError):
    """A readable image whose samples hubdet cannot interpret faithfully (e.g. floating-point values outside [0, 1],
    a floating-point RGB TIFF): a detector answers "cannot judge" for it rather than a verdict."""


class CheckpointError(HubdetError, ValueError):
    """A checkpoint is missing files, has mismatched tensors or an unsafe format."""


class NonFiniteOutputError(HubdetError, ValueError):
    """A detector produced a NaN or infinite output; the message names the model and the image."""


class HubRepoError(HubdetError, FileNotFoundError):
    """A Hub repository could not be fetched. ``reason``: ``not_found``, ``revision``, ``gated``, ``offline`` (not in
    the local cache while ``HF_HUB_OFFLINE`` is set) or ``network``; the message says which and what to check."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DataLayoutError(HubdetError, FileNotFoundError):
    """A data directory does not have the layout its source publishes."""


class NotFittedError(HubdetError, RuntimeError):
    """A detector part that must be fitted first (e.g. a probe's classical head) was used unfitted."""
