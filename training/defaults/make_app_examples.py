"""Make the app's example images (``hubdet/app/example_images/``) from Debian-packaged photos and hubdet's tools.

    apt-get install -y opencv-doc lomiri-wallpapers && pip install --no-deps gan-face-generate
    python training/defaults/make_app_examples.py --out hubdet/app/example_images

- ``bridge.jpg``: "Bridge" by Sander Klootwijk (lomiri-wallpapers, CC-BY-SA-4.0), 1024x576, JPEG q90: a real photo;
- ``wine_inpainted.jpg``: "Wine" by Jakkub Mede (lomiri-wallpapers, CC-BY-4.0), 576x768, with two
  object-shaped regions filled by ``hubdet synth`` (exemplar backend: pixels copied from elsewhere in the photo, as
  patch-based object removal does), JPEG q92; its mask is ``wine_inpainted_mask.png``;
- ``fruits.jpg``: OpenCV's sample photo (opencv-doc, BSD-3-Clause), the packaged bytes;
- ``dcgan_face.png``: a 64x64 face from the DCGAN weights inside the ``gan-face-generate`` wheel (MIT), enlarged to
  256x256: a wholly generated image.

All three photos are in the mask detector's never-trained-on ``fresh`` split (prepare_inpaint.py). Licences and
changes are listed in ``LICENSES.md`` beside the images.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from PIL import Image

LOMIRI = Path("/usr/share/backgrounds")
OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")


def view(path: Path, size: tuple[int, int]) -> Image.Image:
    """Centre crop to the aspect of ``size``, then a high-quality downscale."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    tw, th = size
    if w * th > h * tw:
        nw = round(h * tw / th)
        img = img.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
    else:
        nh = round(w * th / tw)
        img = img.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))
    return img.resize(size, Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("hubdet/app/example_images"))
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)
    from hubdet.data.synth import make_inpainting_benchmark

    args.out.mkdir(parents=True, exist_ok=True)
    view(LOMIRI / "Bridge_by_Sander_Klootwijk.jpg", (1024, 576)).save(args.out / "bridge.jpg", quality=90)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        view(LOMIRI / "Wine_by_Jakkub_Mede.jpg", (576, 768)).save(src / "wine.png")
        make_inpainting_benchmark(src, Path(tmp) / "out", backend="exemplar", seed=args.seed, fraction=1.0,
                                  mask_kind="object", regions=2, min_frac=0.1, max_frac=0.22, format="jpeg",
                                  quality=92, progress=False)
        shutil.copy(Path(tmp) / "out" / "Fake" / "wine_inpainted.jpg", args.out / "wine_inpainted.jpg")
        shutil.copy(Path(tmp) / "out" / "masks" / "wine_inpainted_mask.png", args.out / "wine_inpainted_mask.png")
    shutil.copy(OPENCV / "fruits.jpg", args.out / "fruits.jpg")
    import gan_face_generate
    import torch
    from gan_face_generate.models import Generator

    net = Generator(1, 3, 100, 64)
    weights = Path(gan_face_generate.__file__).parent / "weights.tar"
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["netG_state_dict"])
    net.eval()
    with torch.no_grad():
        x = net(torch.randn(1, 100, 1, 1, generator=torch.Generator().manual_seed(args.seed)))
    arr = ((x[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(arr).resize((256, 256), Image.Resampling.BICUBIC).save(args.out / "dcgan_face.png")
    for p in sorted(args.out.iterdir()):
        print(f"{p.name}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
