#!/usr/bin/env python
"""App speed: a side-by-side comparison with every bundled detector on a 1024x768 image, against the sum of
the detectors' bare forwards; the app's peak memory.

Detectors: the app's bundled ones (``defaults/detectors.yaml``: classifier, boxhead, copymove, mask, ensemble) when
their folders exist; otherwise stand-ins of the same shape: an EfficientNet-Lite0 classifier and box head (offline
ImageNet weights) and their linear ensemble, saved to a temporary folder (``--quick``: the tiny test variants).

1. In process, the contenders rotated every round (load from other processes falls on both alike):

   - ``app_compare``: :func:`hubdet.app.compare.compare` with all detectors on a 1024x768 JPEG file, scores only
     (decoding, every detector's ``predict``, boxes, agreement summary): what one click costs, without the heatmaps;
   - ``bare_forward_sum``: each detector's network on ready tensors, no decoding, no preprocessing: a classifier is
     one ``[1, 3, 224, 224]`` forward of its timm module; the box head, which looks at full resolution, is the SAME
     number of tiles as it cuts from a 1024x768 image (its ``tile_grid`` at its ``tiling_scale``) through its own
     forward in its ``tile_batch_size`` batches; an ensemble is the sum of its members' bare forwards (its fusion
     is a handful of flops), less the members whose weights are also compared stand-alone (the app reuses their
     predictions: ``hubdet.models.predict.share_plan``). The sum over the detectors of the comparison is the
     practical limit.

   Both bare variants are timed (default memory format and ``channels_last``); the faster is the limit. Reported:
   median and 95th-percentile latency, their ratio to the limit (target: < 1.5x), and with ``--heatmaps`` the
   comparison with heatmaps (Grad-CAM/occlusion) for information.
2. Memory (not with ``--quick`` or ``--no-server``): ``app.py`` is started in a subprocess with the same detectors
   and driven with ``gradio_client``: two comparisons with heatmaps (the first loads the detectors), then
   ``--server-requests`` scores-only ones; its peak resident memory (``VmHWM``) is the app's peak memory (target:
   < 2 GB). The HTTP latencies are reported too; ``--concurrency 4 8`` adds bursts of simultaneous requests.

    HF_HUB_OFFLINE=1 python bench/bench_app.py            # 5 rounds + the server
    HF_HUB_OFFLINE=1 python bench/bench_app.py --quick    # tiny detectors, in process only, a few seconds
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, percentile, stop_process  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUNDLED = ("classifier", "boxhead", "copymove", "mask", "ensemble")


def peak_rss_mib(pid: int | str = "self") -> float:
    """Peak resident set size (``VmHWM``) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_image(path: Path, size: tuple[int, int] = (1024, 768)) -> Path:
    """A smooth scene with noise, saved as JPEG quality 90."""
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h = size
    x = np.linspace(0, 255, w)[None, :, None]
    y = np.linspace(0, 255, h)[:, None, None]
    arr = np.concatenate([x + 0 * y, y + 0 * x, 100 + 0 * x * y], -1) + rng.normal(0, 10, (h, w, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def detector_specs(work: Path, quick: bool) -> tuple[list[tuple[str, str]], str]:
    """``[(name, folder)]`` of the detectors to compare and where they come from."""
    defaults = REPO / "defaults"
    present = [n for n in BUNDLED if (defaults / n / "config.json").is_file()]
    if not quick and {"classifier", "boxhead", "ensemble"} <= set(present):
        return [(n, str(defaults / n)) for n in present], "bundled defaults/ (defaults/detectors.yaml)"
    import hubdet

    if quick:
        cls, box, kind = "classifier_tiny.test", "boxhead_tiny.test", "tiny test variants (random weights)"
    else:
        cls, box = "classifier_efficientnet_lite0.in1k", "boxhead_efficientnet_lite0.in1k"
        kind = ("stand-ins (defaults/ not trained yet): EfficientNet-Lite0 classifier and box head with offline "
                "ImageNet weights, and their linear ensemble")
    c = hubdet.create_detector(cls, pretrained=not quick)
    b = hubdet.create_detector(box, pretrained=not quick)
    c_dir, b_dir = work / "classifier", work / "boxhead"
    c.save_pretrained(c_dir, card=False)
    b.save_pretrained(b_dir, card=False)
    pre = dict(c.config.preprocess.to_dict())
    e = hubdet.create_detector("ensemble_linear.custom", members=[str(c_dir), str(b_dir)], preprocess=pre)
    e.save_pretrained(work / "ensemble", card=False)
    return [("classifier", str(c_dir)), ("boxhead", str(b_dir)), ("ensemble", str(work / "ensemble"))], kind


def bare_plan(det: Any, width: int, height: int, skip: Any = ()) -> list[tuple[Any, Any]]:
    """``[(module, input)]`` whose forwards are this detector's bare cost on a ``width x height`` image.

    ``skip``: indices of ensemble members left out (the app reuses the predictions of stand-alone detectors with
    the same weights compared alongside, so counting them again would double the limit)."""
    import torch

    if det.family == "ensemble":
        return [step for k, m in enumerate(det.members) if k not in skip for step in bare_plan(m, width, height)]
    th, tw = det.config.preprocess.input_size
    if det.family == "boxhead":
        from hubdet.models.boxhead import tile_grid

        scale = det.tiling_scale(width, height)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        n = len(tile_grid(w, h, det.tile_size, det.tile_stride))
        bs = det.args.tile_batch_size
        return [(det, torch.randn(min(bs, n - i), 3, th, tw)) for i in range(0, n, bs)]
    if det.family == "mask":  # its tiles at native resolution, in its tile batches
        n, bs = det.tiles_for(width, height), det.args.tile_batch_size
        return [(det.pixel_logits, torch.randn(min(bs, n - i), 3, th, tw)) for i in range(0, n, bs)]
    module = getattr(det, "model", None) or det
    return [(module, torch.randn(1, 3, th, tw))]


def count_tiles(det: Any, width: int, height: int, skip: Any = ()) -> int:
    """How many images go through the networks of :func:`bare_plan` (tiles for a box head)."""
    return sum(len(x) for _, x in bare_plan(det, width, height, skip))


def in_process(specs: list[tuple[str, str]], image: Path, size: tuple[int, int], rounds: int,
               heatmaps: bool = False) -> dict[str, Any]:
    import torch

    from hubdet.app.compare import compare
    from hubdet.app.config import DetectorSpec
    from hubdet.app.pool import DetectorPool
    from hubdet.models.predict import share_plan

    pool = DetectorPool([DetectorSpec(name=n, path=p) for n, p in specs])
    names = [n for n, _ in specs]
    detectors, failed = pool.load(names)
    if failed:
        raise SystemExit(f"cannot load: {failed}")
    # ensemble -> {member index: stand-alone detector whose prediction it reuses}, as predict_many plans it
    shared = share_plan(detectors, {n: pool.weights_sha256(n) for n in names})
    plans = {n: bare_plan(pool.get(n), *size, skip=shared.get(n, {})) for n in names}

    def app_compare() -> None:
        c = compare(pool, str(image), names, explain_it=False)
        errors = [r.error for r in c.results if r.error]
        if errors:
            raise SystemExit(f"compare failed: {errors}")

    def app_compare_explain() -> None:
        compare(pool, str(image), names, explain_it=True)

    plans_cl = {n: [(m, x.contiguous(memory_format=torch.channels_last)) for m, x in steps]
                for n, steps in plans.items()}

    def bare_sum() -> None:
        with torch.inference_mode():
            for steps in plans.values():
                for module, x in steps:
                    module(x)

    def bare_sum_cl() -> None:
        with torch.inference_mode():
            for steps in plans_cl.values():
                for module, x in steps:
                    module(x)

    fns: dict[str, Any] = {"app_compare": app_compare, "bare_forward_sum": bare_sum,
                           "bare_forward_sum_channels_last": bare_sum_cl}
    if heatmaps:
        fns["app_compare_with_heatmaps"] = app_compare_explain
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(rounds):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            if key == "app_compare_with_heatmaps" and r % 3:  # informative only, and slow: every third round
                continue
            t0 = time.perf_counter()
            fns[key]()
            times[key].append(time.perf_counter() - t0)
    stats = {k: {"median_s": round(statistics.median(v), 4), "p95_s": round(percentile(v, 95), 4),
                 "min_s": round(min(v), 4), "runs": len(v)} for k, v in times.items()}
    last = compare(pool, str(image), names, explain_it=False)
    limit = min(("bare_forward_sum", "bare_forward_sum_channels_last"), key=lambda k: stats[k]["median_s"])
    ratio_med = stats["app_compare"]["median_s"] / stats[limit]["median_s"]
    ratio_p95 = stats["app_compare"]["p95_s"] / stats[limit]["median_s"]
    return {
        "latency": stats,
        "bare_limit": limit,
        "app_vs_bare_sum_min_rounds": round(stats["app_compare"]["min_s"] / stats[limit]["min_s"], 3),
        "app_vs_bare_sum_median": round(ratio_med, 3),
        "app_p95_vs_bare_sum_median": round(ratio_p95, 3),
        "target_met (median < 1.5x)": ratio_med < 1.5,
        "per_detector_predict_seconds": {r.detector: r.seconds for r in last.results},
        "forwards_in_bare_sum": {n: count_tiles(pool.get(n), *size, skip=shared.get(n, {})) for n in names},
        "ensemble_members_shared": {n: {str(k): v for k, v in s.items()} for n, s in shared.items()},
        "peak_rss_mib_benchmark_process": round(peak_rss_mib()),
    }


def server(specs: list[tuple[str, str]], image: Path, requests: int, concurrency: list[int]) -> dict[str, Any]:
    """Start app.py with the detectors, drive it with gradio_client, read its peak memory."""
    from gradio_client import Client, handle_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(port),
           "--detectors", ",".join(f"{n}={p}" for n, p in specs)]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        start = time.monotonic()
        while True:
            try:
                client = Client(url, verbose=False)
                break
            except Exception:
                if time.monotonic() - start > 240 or proc.poll() is not None:
                    err = proc.stderr.read()[-2000:] if proc.poll() is not None and proc.stderr else ""
                    raise SystemExit(f"the app did not start: {err}") from None
                time.sleep(1)
        out: dict[str, Any] = {"startup_s": round(time.monotonic() - start, 1),
                               "rss_idle_mib": round(peak_rss_mib(proc.pid))}
        names = [n for n, _ in specs]
        handle = handle_file(str(image))
        t0 = time.perf_counter()
        first = client.predict(handle, names, True, api_name="/compare")  # loads the detectors, draws heatmaps
        out["first_request_with_heatmaps_s"] = round(time.perf_counter() - t0, 2)
        if not first["ok"]:
            raise SystemExit(f"compare failed: {first['error']}")
        t0 = time.perf_counter()
        client.predict(handle, names, True, api_name="/compare")
        out["http_latency_with_heatmaps_s"] = round(time.perf_counter() - t0, 2)
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            client.predict(handle, names, False, api_name="/compare")
            times.append(time.perf_counter() - t0)
        out["http_latency_scores_only"] = {"median_s": round(statistics.median(times), 3),
                                           "p95_s": round(percentile(times, 95), 3), "runs": len(times)}
        if concurrency:
            out["concurrent_requests"] = _concurrent(url, handle, names, concurrency)
        out["peak_rss_mib"] = round(peak_rss_mib(proc.pid))
        out["target_met (peak < 2048 MiB)"] = out["peak_rss_mib"] < 2048
        return out
    finally:
        stop_process(proc)


def _concurrent(url: str, handle: Any, names: list[str], levels: list[int]) -> dict[int, dict[str, Any]]:
    """``k`` simultaneous scores-only comparisons for each ``k``: how many succeed and the wall time."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    def one(_: int) -> str:
        try:
            result = Client(url, verbose=False).predict(handle, names, False, api_name="/compare")
            return "" if result["ok"] else str(result["error"])
        except Exception as exc:  # report every failure kind, keep going
            return f"{type(exc).__name__}: {exc}"[:200]

    out = {}
    for k in levels:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=k) as pool:
            errors = [e for e in pool.map(one, range(k)) if e]
        out[k] = {"ok": k - len(errors), "errors": len(errors), "wall_s": round(time.perf_counter() - t0, 2),
                  "first_errors": sorted(set(errors))[:3]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed in-process rounds (after one warm-up)")
    parser.add_argument("--server-requests", type=int, default=3,
                        help="scores-only requests sent to app.py (after one with heatmaps)")
    parser.add_argument("--no-server", action="store_true", help="skip the app.py subprocess (memory)")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[],
                        help="also send this many simultaneous requests to app.py (e.g. 4 8 16)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--image-size", type=int, nargs=2, default=[1024, 768], metavar=("W", "H"))
    parser.add_argument("--heatmaps", action="store_true",
                        help="also time the comparison with heatmaps in process (slow; informative only)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny detectors, a 96x64 image, 2 rounds, no heatmaps, no server")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.no_server, args.image_size = 2, True, [96, 64]
    logging.basicConfig(level=logging.WARNING)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        specs, kind = detector_specs(work, args.quick)
        size = (int(args.image_size[0]), int(args.image_size[1]))
        image = test_image(work / f"bench_{size[0]}x{size[1]}.jpg", size)
        out: dict[str, Any] = {"benchmark": "app", "detectors": dict(specs), "detectors_are": kind,
                               "image": list(size), "rounds": args.rounds}
        if args.rounds > 0:
            out["in_process"] = in_process(specs, image, size, args.rounds, heatmaps=args.heatmaps)
        if not args.no_server:
            out["server"] = server(specs, image, args.server_requests, args.concurrency)
    out.update(machine_info(load_before), torch_threads=torch.get_num_threads())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
