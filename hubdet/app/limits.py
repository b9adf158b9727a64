"""The app's own limits (:class:`AppLimits`): what one request may cost and how many a client may send.

Every limit refuses with a message that reaches the caller (the API's ``error`` field, the UI's warning):

- ``max_pixels``: an image larger than this is refused from its header, before it is decoded (well below the
  decoder's 67-megapixel decompression-bomb limit, which protects library users);
- ``max_upload_bytes``: uploads larger than this are refused by the server (Gradio's ``max_file_size``) and again
  by the handlers (files inside a batch, paths given by other routes);
- ``heavy_jobs``: comparisons and batches that run at once, all endpoints together (one Gradio concurrency group);
  the others wait in the queue, which holds at most ``max_queue`` requests (Gradio refuses the rest: "queue is full");
- ``rate_limit`` heavy requests per client per ``rate_window`` seconds (:class:`RateLimiter`; 0 turns it off).

Defaults suit a 2-vCPU Space with 2 GB of memory (``bench/bench_app_limits.py`` measures them: with the six bundled
detectors loaded the app holds ~1.36 GB, and one analysis at the pixel cap adds ~0.4 GB, so two at once would not
fit, and on two cores they would not finish sooner either); ``app.py`` flags and ``HUBDET_APP_*`` variables override
them. :func:`tune_allocator` and :func:`release_memory` keep glibc from holding on to what finished analyses freed.
"""

from __future__ import annotations

import collections
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hubdet.app.pool import AppInputError
from hubdet.app.uploads import BatchLimits

#: The label of the heavy endpoints' shared Gradio concurrency group.
HEAVY = "hubdet-heavy"


def parse_bytes(text: str | int) -> int:
    """``"25mb"``, ``"512 KB"``, ``"1gb"`` or a number of bytes -> bytes."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)\s*", str(text).lower())
    if not match:
        raise ValueError(f"{text!r} is not a size like 25mb, 512kb or 1048576")
    unit = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
            "g": 2**30, "gb": 2**30, "gib": 2**30}.get(match.group(2))
    if unit is None:
        raise ValueError(f"{text!r}: unknown unit {match.group(2)!r}")
    return int(float(match.group(1)) * unit)


@dataclass(frozen=True)
class AppLimits:
    """What the app accepts; see the module docstring."""

    max_pixels: int = 4096 * 4096
    max_upload_bytes: int = 25 * 2**20
    heavy_jobs: int = 1  # a 2-vCPU Space: one analysis already uses both cores; two would double the memory
    max_queue: int = 48
    rate_limit: int = 30
    rate_window: float = 60.0
    batch: BatchLimits = field(default_factory=BatchLimits)

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.max_upload_bytes < 1 or self.heavy_jobs < 1 or self.max_queue < 1:
            raise ValueError("AppLimits: max_pixels, max_upload_bytes, heavy_jobs and max_queue must be >= 1")
        if self.rate_limit < 0 or self.rate_window <= 0:
            raise ValueError("AppLimits: rate_limit must be >= 0 and rate_window > 0")

    @classmethod
    def from_env(cls, **overrides: Any) -> AppLimits:
        """Defaults, then ``HUBDET_APP_MAX_PIXELS``, ``HUBDET_APP_MAX_UPLOAD`` (e.g. 25mb),
        ``HUBDET_APP_CONCURRENCY``, ``HUBDET_APP_MAX_QUEUE``, ``HUBDET_APP_RATE_LIMIT`` (``N`` or ``N/seconds``),
        then ``overrides`` (None values are skipped)."""
        values: dict[str, Any] = {}
        env = os.environ
        if env.get("HUBDET_APP_MAX_PIXELS", "").strip():
            values["max_pixels"] = int(env["HUBDET_APP_MAX_PIXELS"])
        if env.get("HUBDET_APP_MAX_UPLOAD", "").strip():
            values["max_upload_bytes"] = parse_bytes(env["HUBDET_APP_MAX_UPLOAD"])
        if env.get("HUBDET_APP_CONCURRENCY", "").strip():
            values["heavy_jobs"] = int(env["HUBDET_APP_CONCURRENCY"])
        if env.get("HUBDET_APP_MAX_QUEUE", "").strip():
            values["max_queue"] = int(env["HUBDET_APP_MAX_QUEUE"])
        if env.get("HUBDET_APP_RATE_LIMIT", "").strip():
            values.update(parse_rate(env["HUBDET_APP_RATE_LIMIT"]))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)

    def describe(self) -> str:
        """One line for the app's page."""
        rate = (f"{self.rate_limit} requests per {self.rate_window:g} s per client" if self.rate_limit
                else "no per-client rate limit")
        return (f"Limits: images up to {self.max_pixels / 1e6:.1f} MP, uploads up to "
                f"{self.max_upload_bytes / 2**20:.0f} MiB, {self.heavy_jobs} analyses at once "
                f"(queue of {self.max_queue}), {rate}.")


def parse_rate(text: str) -> dict[str, Any]:
    """``"30"`` or ``"30/60"`` (requests / seconds) -> ``{"rate_limit": 30, "rate_window": 60.0}``."""
    count, _, window = str(text).partition("/")
    try:
        out: dict[str, Any] = {"rate_limit": int(count)}
        if window:
            out["rate_window"] = float(window)
    except ValueError:
        raise ValueError(f"rate limit {text!r}: expected N or N/seconds, e.g. 30/60") from None
    return out


class RateLimiter:
    """At most ``limit`` requests per client in any ``window`` seconds (a sliding window); thread-safe."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = int(limit), float(window)
        self._seen: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def refusal(self, client: str) -> str | None:
        """Record one request of ``client``; the reason it is refused (over the limit), or None."""
        if self.limit <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(client, collections.deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                wait = max(1, math.ceil(seen[0] + self.window - now))
                return (f"rate limit: at most {self.limit} analyses per {self.window:g} s per client; "
                        f"try again in {wait} s")
            seen.append(now)
            if len(self._seen) > 10_000:  # forget idle clients
                for key in [k for k, v in self._seen.items() if not v or v[-1] <= now - self.window]:
                    del self._seen[key]
            return None


def tune_allocator(arenas: int = 2, mmap_threshold: int = 4 * 2**20) -> bool:
    """Make glibc's malloc give large buffers back when they are freed (a no-op elsewhere); True if applied.

    By default glibc raises its mmap threshold after a large buffer is freed, so later image-sized buffers come
    from the heap and stay resident, and every worker thread gets its own arena (up to 8 per core). A fixed
    threshold (``M_MMAP_THRESHOLD``: buffers over ``mmap_threshold`` are mapped and unmapped) and ``arenas``
    arenas (``M_ARENA_MAX``) keep the app's resident memory near its working set (``bench/bench_app_limits.py``)."""
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_arena_max, m_mmap_threshold = -8, -3
    return bool(mallopt(m_arena_max, int(arenas))) and bool(mallopt(m_mmap_threshold, int(mmap_threshold)))


def release_memory() -> None:
    """Hand the memory freed by a finished analysis back to the system (glibc's ``malloc_trim``; a no-op elsewhere):
    each Gradio worker thread allocates from its own malloc arena, and without this the app's resident memory creeps
    up to the sum of every arena's high-water mark."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


def client_key(request: Any) -> str:
    """Who is asking: the address the nearest proxy saw (the last ``X-Forwarded-For`` entry, which the client
    cannot forge past that proxy), else the connection's address, else the Gradio session."""
    if request is None:
        return "local"
    headers = getattr(request, "headers", None) or {}
    forwarded = headers.get("x-forwarded-for", "") if hasattr(headers, "get") else ""
    if forwarded:
        return forwarded.split(",")[-1].strip()
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return str(host or getattr(request, "session_hash", None) or "unknown")


def check_upload_size(path: str | os.PathLike | None, limits: AppLimits, *, name: str | None = None) -> None:
    """Raise :class:`AppInputError` if the file at ``path`` is larger than ``limits.max_upload_bytes``."""
    if path is None:
        return
    try:
        size = Path(path).stat().st_size
    except OSError:
        return  # a missing file is the decoder's to report
    if size > limits.max_upload_bytes:
        raise AppInputError(f"{name or Path(path).name}: the file is {size / 2**20:.1f} MiB, over this app's upload "
                            f"limit of {limits.max_upload_bytes / 2**20:.0f} MiB")
