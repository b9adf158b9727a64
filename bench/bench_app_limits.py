#!/usr/bin/env python
"""The app under load and bad input: peak memory and errors with 32 concurrent requests, and the cost of one
``/compare`` with explanation heatmaps for every bundled detector.

``app.py`` (the Space's entry point, with its default limits) is started in a subprocess with the bundled detectors
(``defaults/detectors.yaml``) and driven with ``gradio_client``:

1. ``explain``: ``/compare`` of a 1024x768 JPEG with all detectors and ``explain_it=True`` (after a warm-up
   request that loads the detectors; more than 4 detectors are compared in groups, the side-by-side limit): the time
   of comparing them all with heatmaps, and each detector's explanation time and method;
2. ``burst``: ``--requests`` (default 32) requests fired at once from 8 simulated clients (each its own
   ``X-Forwarded-For``), mixing normal uploads (1024x768 JPEG, scores only and with heatmaps, and ``/batch``), large
   ones (a 4096x4096 photo, at the pixel cap; a 24 MP one over it) and bad ones (truncated JPEG, text named .jpg, a
   8 KB PNG of 8192x8192, a 1x1 image, an upload over the byte limit). Each answer is classified: ``ok`` (a result),
   ``refused`` (the expected message: pixel cap, byte cap, unreadable file, "cannot judge"), or ``unexpected``
   (anything else: an exception, a generic error, a missing message). The app's peak resident memory (``VmHWM``)
   must stay under 2 GB and ``unexpected`` must be 0.

    HF_HUB_OFFLINE=1 python bench/bench_app_limits.py                 # this checkout
    HF_HUB_OFFLINE=1 python bench/bench_app_limits.py --explain-only  # only the /compare-with-heatmaps timing
    python bench/bench_app_limits.py --app-root OTHER_CHECKOUT --explain-only   # the same against other code

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, stop_process  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def photo(path: Path, size: tuple[int, int], seed: int = 0, quality: int = 90) -> Path:
    """A smooth scene with noise, saved as JPEG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    arr = np.concatenate([x + 0 * y, y + 0 * x, 100 + 0 * x * y], -1) + rng.normal(0, 10, (h, w, 3)).astype(np.float32)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=quality)
    return path


def inputs(folder: Path) -> dict[str, Path]:
    """The uploads of the burst: kind -> file."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = {"normal": photo(folder / "normal.jpg", (1024, 768)),
           "large_at_cap": photo(folder / "large_at_cap.jpg", (4096, 4096), seed=1),
           "over_cap_24mp": photo(folder / "over_cap_24mp.jpg", (6000, 4000), seed=2)}
    good = io.BytesIO()
    Image.open(out["normal"]).save(good, "JPEG", quality=90)
    (folder / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    out["truncated"] = folder / "truncated.jpg"
    (folder / "notes.jpg").write_text("plain text, not an image\n")
    out["non_image"] = folder / "notes.jpg"
    Image.new("1", (8192, 8192)).save(folder / "bomb_8192.png")
    out["bomb_8192"] = folder / "bomb_8192.png"
    Image.new("RGB", (1, 1), (90, 20, 200)).save(folder / "one_pixel.png")
    out["one_pixel"] = folder / "one_pixel.png"
    (folder / "over_bytes.jpg").write_bytes(os.urandom(30 * 2**20))  # over the 25 MiB upload limit
    out["over_bytes"] = folder / "over_bytes.jpg"
    return out


#: What each kind must answer: "ok" (every detector a result), or the words a refusal must contain.
EXPECTED = {"normal": "ok", "normal_explain": "ok", "batch": "ok", "large_at_cap": "ok",
            "over_cap_24mp": "this app's limit", "truncated": "truncated", "non_image": "not an image",
            "bomb_8192": "this app's limit", "one_pixel": "cannot judge", "over_bytes": "maximum file size"}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_app(app_root: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(app_root)}
    cmd = [sys.executable, str(app_root / "app.py"), "--host", "127.0.0.1", "--port", str(port),
           "--config", str(app_root / "defaults" / "detectors.yaml")]
    proc = subprocess.Popen(cmd, cwd=app_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    start = time.monotonic()
    from gradio_client import Client

    while True:
        try:
            Client(url, verbose=False)
            return proc, url
        except Exception:
            if time.monotonic() - start > 300 or proc.poll() is not None:
                err = proc.stderr.read()[-3000:] if proc.poll() is not None and proc.stderr else ""
                proc.kill()
                raise SystemExit(f"the app did not start: {err}") from None
            time.sleep(1)


def explain_timing(url: str, image: Path) -> dict[str, Any]:
    """One /compare with heatmaps for all bundled detectors (after a warm-up that loads them). The side-by-side view
    takes at most 4 detectors, so more are compared in groups (of 4, the last of at least 2) and the times added."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    names = [r["name"] for r in client.predict(api_name="/detectors")]
    groups = [names[i:i + 4] for i in range(0, len(names), 4)]
    if len(groups) > 1 and len(groups[-1]) < 2:
        groups[-1] = [groups[-2].pop(), *groups[-1]]
    t0 = time.perf_counter()
    for group in groups:
        warm = client.predict(handle_file(str(image)), group, False, api_name="/compare")
        if not warm["ok"]:
            raise SystemExit(f"compare failed: {warm['error']}")
    warm_s = time.perf_counter() - t0
    runs, results = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        results = []
        for group in groups:
            results += client.predict(handle_file(str(image)), group, True, api_name="/compare")["results"]
        runs.append(time.perf_counter() - t0)
    return {"detectors": names, "groups": groups, "first_request_scores_only_s": round(warm_s, 2),
            "compare_with_heatmaps_s": [round(t, 2) for t in runs],
            "per_detector": {r["detector"]: {"seconds": r["seconds"], "explanation_seconds": r["explanation_seconds"],
                                             "explanation": r["explanation"]} for r in results}}


def classify(kind: str, outcome: Any) -> tuple[str, str]:
    """``(ok | refused | unexpected, message)`` of one answer."""
    expected = EXPECTED[kind]
    if isinstance(outcome, Exception):
        text = f"{type(outcome).__name__}: {outcome}"
        return ("refused" if expected != "ok" and expected in str(outcome) else "unexpected"), text[:300]
    if kind == "batch":
        table, _csv, note = outcome
        rows = [dict(zip(table["headers"], row, strict=True)) for row in table["data"]]
        good = [r for r in rows if r["file"] == "normal.jpg"]
        ok = good and all(r["prob_fake"] is not None for r in good) and any("truncated" in r["error"] for r in rows)
        return ("ok" if ok else "unexpected"), note
    if outcome.get("ok"):
        results = outcome["results"]
        if expected == "ok":
            fine = all(r["error"] is None and r["prob_fake"] is not None for r in results)
            return ("ok" if fine else "unexpected"), json.dumps(outcome["summary"]["text"])[:300]
        if expected == "cannot judge":
            fine = all(r["verdict"] == "cannot_judge" and r.get("reason") for r in results)
            return ("refused" if fine else "unexpected"), "; ".join(str(r.get("reason")) for r in results)[:300]
        return "unexpected", "a result where a refusal was expected"
    message = str(outcome.get("error"))
    return ("refused" if expected != "ok" and expected in message else "unexpected"), message[:300]


def burst(url: str, files: dict[str, Path], n: int, pid: int) -> dict[str, Any]:
    """``n`` requests at once from 8 clients; peak memory sampled every 20 ms (and the kernel's high-water mark)."""
    from gradio_client import Client, handle_file

    plan = ["normal", "normal_explain", "batch", "large_at_cap", "over_cap_24mp", "truncated", "non_image",
            "bomb_8192", "one_pixel", "over_bytes"]
    kinds = [plan[i % len(plan)] for i in range(n)]
    clients = [Client(url, verbose=False, headers={"X-Forwarded-For": f"10.1.0.{c}"}) for c in range(8)]
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_mib(pid))
            time.sleep(0.02)

    def one(i: int) -> tuple[str, str, str, float]:
        kind, client = kinds[i], clients[i % len(clients)]
        t0 = time.perf_counter()
        try:
            if kind == "batch":
                out: Any = client.predict([handle_file(str(files["normal"])), handle_file(str(files["truncated"]))],
                                          None, api_name="/batch")
            else:
                path = files["normal" if kind == "normal_explain" else kind]
                out = client.predict(handle_file(str(path)), None, kind == "normal_explain", api_name="/compare")
        except Exception as exc:  # noqa: BLE001  (classified below: a refusal must carry its message)
            out = exc
        status, message = classify(kind, out)
        return kind, status, message, time.perf_counter() - t0

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        outcomes = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    done.set()
    watcher.join()
    counts: dict[str, int] = {}
    for _, status, _, _ in outcomes:
        counts[status] = counts.get(status, 0) + 1
    by_kind: dict[str, dict[str, Any]] = {}
    for kind, status, message, seconds in outcomes:
        entry = by_kind.setdefault(kind, {"statuses": [], "message": message, "max_s": 0.0})
        entry["statuses"].append(status)
        entry["max_s"] = round(max(entry["max_s"], seconds), 1)
    return {"requests": n, "wall_s": round(wall, 1), "counts": counts, "unexpected_errors": counts.get("unexpected", 0),
            "sampled_peak_rss_mib": round(max(samples)) if samples else None, "by_kind": by_kind}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-root", default=str(REPO), help="the checkout whose app.py to run (default: this one)")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--explain-only", action="store_true", help="only the /compare-with-heatmaps timing")
    args = parser.parse_args()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="hubdet_bench_limits_"))
    files = inputs(work)
    proc, url = start_app(Path(args.app_root).resolve())
    try:
        out: dict[str, Any] = {"app_root": str(Path(args.app_root).resolve()),
                               "rss_idle_mib": round(rss_mib(proc.pid))}
        out["explain"] = explain_timing(url, files["normal"])
        if not args.explain_only:
            out["rss_before_burst_mib"] = round(rss_mib(proc.pid))
            out["burst"] = burst(url, files, args.requests, proc.pid)
            out["peak_rss_mib"] = round(peak_rss_mib(proc.pid))
            out["target_met (peak < 2048 MiB and no unexpected error)"] = (
                out["peak_rss_mib"] < 2048 and out["burst"]["unexpected_errors"] == 0)
    finally:
        stop_process(proc)
    out["machine"] = machine_info(load_before)
    print(json.dumps(out, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
