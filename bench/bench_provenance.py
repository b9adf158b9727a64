#!/usr/bin/env python
"""Provenance speed: what ``hubdet.provenance.inspect`` adds per image, against decoding the same files with PIL.

Side by side in ONE process, the contenders rotated every round, for each set of files:

- ``pil_load``: ``Image.open(path).load()`` (fully decoded): what any detector does to the file anyway;
- ``inspect``: ``hubdet.provenance.inspect(path)``: C2PA (c2pa-python, offline), XMP, EXIF, text chunks, conclusion.

Sets: generated JPEGs and PNGs without any metadata, the same PNGs carrying an AUTOMATIC1111 ``parameters`` chunk,
and (when ``../shared/data/provenance`` is present) a camera JPEG with EXIF and XMP but no manifest (``A.jpg``)
and a signed one (``C.jpg``: the manifest is validated, which hashes the file, so it costs more).

Target (issue 13): under 20 ms per image for a file without a manifest. Also reported: the first call's one-time
cost (importing c2pa and building its context).

    python bench/bench_provenance.py            # 64 files of 1024x768 per set, 5 rounds
    python bench/bench_provenance.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, make_jpegs, time_rotated  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "provenance"

A1111 = ("a lighthouse at dusk, oil painting\nNegative prompt: blurry\n"
         "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234, Size: 1024x768, Model hash: 31e35c80fc, "
         "Model: sd_xl_base_1.0, Version: v1.10.1")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n-images", type=int, default=64, help="files per generated set")
    parser.add_argument("--image-size", type=int, nargs=2, default=[1024, 768], metavar=("W", "H"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 small images, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.n_images, args.rounds, args.image_size = 8, 1, [320, 240]
    from PIL import Image, PngImagePlugin

    from hubdet.provenance import inspect

    start = time.perf_counter()
    inspect(b"not an image")  # the one-time cost: import c2pa, Pillow plugins, the c2pa context
    first_call_ms = (time.perf_counter() - start) * 1000
    size = (int(args.image_size[0]), int(args.image_size[1]))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jpegs = make_jpegs(root / "jpeg", args.n_images, size, seed=0)
        pngs, tagged = [], []
        (root / "png").mkdir()
        (root / "a1111").mkdir()
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", A1111)
        for p in jpegs:
            with Image.open(p) as im:
                im.save(root / "png" / f"{p.stem}.png", compress_level=1)
                im.save(root / "a1111" / f"{p.stem}.png", compress_level=1, pnginfo=info)
            pngs.append(root / "png" / f"{p.stem}.png")
            tagged.append(root / "a1111" / f"{p.stem}.png")
        sets: dict[str, list[Path]] = {"jpeg_no_metadata": jpegs, "png_no_metadata": pngs, "png_a1111_chunk": tagged}
        if SHARED.is_dir():
            reps = max(1, args.n_images // 4)
            for name, key in (("A.jpg", "camera_jpeg_exif_xmp_no_manifest"), ("C.jpg", "jpeg_signed_c2pa")):
                copies = []
                for i in range(reps):
                    copies.append(root / f"{key}_{i}.jpg")
                    shutil.copyfile(SHARED / name, copies[-1])
                sets[key] = copies

        expected = {"png_a1111_chunk": "declared_ai"}
        results: dict[str, Any] = {}
        load_before = os.getloadavg()
        for key, files in sets.items():
            conclusions = {inspect(p).conclusion for p in files}
            if key in expected and conclusions != {expected[key]}:
                raise SystemExit(f"{key}: expected {expected[key]}, got {conclusions}")

            def pil_load(files: list[Path] = files) -> None:
                for p in files:
                    with Image.open(p) as im:
                        im.load()

            def run_inspect(files: list[Path] = files) -> None:
                for p in files:
                    inspect(p)

            timings = time_rotated({"pil_load": (pil_load, len(files)), "inspect": (run_inspect, len(files))},
                                   args.rounds)
            ms = {k: round(v["seconds_median"] / len(files) * 1000, 3) for k, v in timings.items()}
            results[key] = {
                "n_files": len(files),
                "conclusions": sorted(conclusions),
                "ms_per_image": ms,
                "inspect_vs_pil_load_time": round(ms["inspect"] / ms["pil_load"], 3),
                "timings": timings,
            }
    no_manifest = [k for k in results if k != "jpeg_signed_c2pa"]
    worst = max(results[k]["ms_per_image"]["inspect"] for k in no_manifest)
    out = {
        "benchmark": "provenance",
        **machine_info(load_before),
        "image_size_wh": list(size),
        "rounds": args.rounds,
        "first_call_ms": round(first_call_ms, 1),
        "sets": results,
        "worst_inspect_ms_without_manifest": worst,
        "target_met (<20 ms without a manifest)": worst < 20.0,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
