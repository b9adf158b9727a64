"""Shared helpers of the benchmark scripts: machine description, generated JPEGs, rotated interleaved timing."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(load_before: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """CPU model, logical cores and the 1/5/15-minute load averages (before the runs, if given, and now)."""
    info: dict[str, Any] = {"cpu_model": cpu_model(), "cpu_count": os.cpu_count()}
    if load_before is not None:
        info["load_average_before"] = [round(v, 2) for v in load_before]
    info["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return info


def make_jpegs(folder: Path, n: int, size_wh: tuple[int, int] = (640, 480), seed: int = 0,
               quality: int = 90) -> list[Path]:
    """``n`` natural-looking (smooth gradients + noise) JPEG files of ``size_wh``, quality ``quality``."""
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size_wh
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= h
    xx /= w
    paths = []
    for i in range(n):
        base = np.stack([np.sin(6 * xx + i), np.cos(5 * yy - i), xx * yy], -1) * 100 + 128
        arr = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"img_{i:05d}.jpg"
        Image.fromarray(arr).save(path, quality=quality)
        paths.append(path)
    return paths


def time_rotated(fns: dict[str, tuple[Callable[[], object], int]], rounds: int,
                 warmup: bool = True) -> dict[str, dict[str, float]]:
    """Time each ``(fn, n_items)`` once per round for ``rounds`` rounds, the order rotated every round, so that
    load from other processes falls on every contender alike; one untimed warm-up call each first.

    Returns per contender: items/s of the median round, of the best round, and the median seconds.
    """
    keys = list(fns)
    if warmup:
        for fn, _ in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for key in order:
            fn, _ = fns[key]
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    out = {}
    for key, (_, n) in fns.items():
        med = statistics.median(times[key])
        out[key] = {"images_per_s": round(n / med, 2), "images_per_s_best": round(n / min(times[key]), 2),
                    "seconds_median": round(med, 4)}
    return out


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation, as numpy's default)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def stop_process(proc: Any, timeout: float = 30) -> None:
    """Terminate a server started with ``subprocess.Popen``; kill it if it has not exited after ``timeout`` s."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
