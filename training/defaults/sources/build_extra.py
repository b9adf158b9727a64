"""Rebuild the extra training images from the manifest, offline, with every byte checked.

The manifest (``extra_manifest.tsv`` beside this script; ``extra2_manifest.tsv`` for the second, generated-only
collection) lists one image a row: where it comes from (a public GitHub repository at a commit, or a file inside a
Debian package at a version), the region used (``#crop=x,y,w,h``, and ``#frame=k`` for animated GIF/WebP files and
MP4 videos), its label, generator, licence and near-duplicate group, and the sha256 of the file written. Images used
whole keep their original bytes; crops and video frames are written as lossless PNG. No image is stored in the
repository.

Sources are read from places prepared beforehand (this script downloads nothing):
  --git-root   folder of bare git mirrors named ``owner+name/repo`` (one per repository in the manifest)
  --deb-root   folder with each Debian package unpacked by ``dpkg-deb -x PKG.deb DEB_ROOT/PKG``

Example:
    python training/defaults/sources/build_extra.py --out /work/data/extra \
        --git-root /work/.mirror --deb-root /work/data/extra_pkgs/x
    python training/defaults/sources/build_extra.py --out /work/data/extra2 \
        --manifest training/defaults/sources/extra2_manifest.tsv
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import logging
import re
import subprocess
from pathlib import Path

from PIL import Image

Image.MAX_IMAGE_PIXELS = None
LOG = logging.getLogger("build_extra")
LABEL_COLUMNS = ["file", "label", "generator", "source_repo", "source_commit", "source_path", "licence",
                 "orig_width", "orig_height", "orig_format", "group", "is_crop", "heldout_family"]
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov")


def read_source(row: dict, git_root: Path, deb_root: Path) -> bytes:
    """Return the original bytes of the file a manifest row points at."""
    path = row["source_path"].split("#", 1)[0]
    if row["source_repo"].startswith("debian:"):
        return (deb_root / row["source_repo"].split(":", 1)[1] / path).read_bytes()
    gitdir = git_root / row["source_repo"].replace("/", "+") / "repo"
    return subprocess.run(["git", "--git-dir", str(gitdir), "show", f"{row['source_commit']}:{path}"],
                          capture_output=True, check=True).stdout


def video_frame(data: bytes, index: int, suffix: str) -> Image.Image:
    """Decode frame ``index`` of a video file with OpenCV (its bundled FFmpeg) as an RGB image."""
    import tempfile

    import cv2

    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        handle.write(data)
        handle.flush()
        capture = cv2.VideoCapture(handle.name)
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        capture.release()
    if not ok:
        raise OSError(f"frame {index} cannot be decoded")
    return Image.fromarray(frame[:, :, ::-1])


def render(data: bytes, source_path: str) -> bytes:
    """Apply ``#frame=`` and ``#crop=`` from the source path; whole images come back unchanged."""
    frame = re.search(r"#frame=(\d+)", source_path)
    crop = re.search(r"#crop=(\d+),(\d+),(\d+),(\d+)", source_path)
    if not frame and not crop:
        return data
    path = source_path.split("#", 1)[0]
    if frame and path.lower().endswith(VIDEO_SUFFIXES):
        im = video_frame(data, int(frame.group(1)), "." + path.rsplit(".", 1)[-1])
    else:
        im = Image.open(io.BytesIO(data))
        if frame:
            im.seek(int(frame.group(1)))
    im = im.convert("RGB")
    if crop:
        x, y, w, h = map(int, crop.groups())
        im = im.crop((x, y, x + w, y + h))
    out = io.BytesIO()
    im.save(out, format="PNG", optimize=False)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path(__file__).with_name("extra_manifest.tsv"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--git-root", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--deb-root", type=Path, default=Path("/work/data/extra_pkgs/x"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rows = list(csv.DictReader(args.manifest.open(newline=""), delimiter="\t"))
    # The first collection tags held-out generators; the second holds none and has no such column.
    columns = LABEL_COLUMNS if rows and "heldout_family" in rows[0] else LABEL_COLUMNS[:-1]
    written, problems = [], []
    for row in rows:
        target = args.out / row["file"]
        try:
            blob = render(read_source(row, args.git_root, args.deb_root), row["source_path"])
        except (OSError, subprocess.CalledProcessError) as err:
            problems.append(f"{row['file']}: cannot read {row['source_repo']}:{row['source_path']} ({err})")
            continue
        digest = hashlib.sha256(blob).hexdigest()
        if digest != row["sha256"]:
            # PNG encoders may differ between Pillow versions: compare decoded pixels before giving up.
            problems.append(f"{row['file']}: sha256 {digest[:12]} differs from the manifest's {row['sha256'][:12]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
        written.append({k: row.get(k, "") for k in columns})

    with (args.out / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(written)
    for line in problems:
        LOG.warning(line)
    LOG.info("wrote %d of %d images to %s (%d problems)", len(written), len(rows), args.out, len(problems))


if __name__ == "__main__":
    main()
