"""The app's example images: real photos and an inpainting shipped in ``example_images/`` (with their licences),
copied once into a cache folder that Gradio serves; never downloaded."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path


def examples_dir() -> Path:
    """Where generated example images live: ``HUBDET_APP_CACHE/examples`` or ``<tempdir>/hubdet_app/examples``.

    The temporary directory is the default because Gradio serves files from it without extra ``allowed_paths``.
    """
    env = os.environ.get("HUBDET_APP_CACHE", "").strip()
    base = Path(env).expanduser() if env else Path(tempfile.gettempdir()) / "hubdet_app"
    return base / "examples"


#: The packaged example images, in the order the app lists them (see ``example_images/LICENSES.md``).
EXAMPLES = ("wine_inpainted.jpg", "bridge.jpg", "fruits.jpg", "dcgan_face.png")
PACKAGED = Path(__file__).resolve().parent / "example_images"


def ensure_examples(folder: str | os.PathLike | None = None) -> list[Path]:
    """Copy (once) the packaged example images into ``folder`` (default :func:`examples_dir`, which Gradio serves)
    and return their paths. No downloads, no shared data:

    - ``wine_inpainted.jpg``: a Debian wallpaper photo with two regions inpainted by ``hubdet synth`` (exemplar);
    - ``bridge.jpg`` and ``fruits.jpg``: real photos (Debian ``lomiri-wallpapers`` and ``opencv-doc``);
    - ``dcgan_face.png``: a face made by a DCGAN (wholly generated).
    """
    folder = Path(folder) if folder is not None else examples_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / n for n in EXAMPLES]
    for path in paths:
        if path.is_file() and path.stat().st_size == (PACKAGED / path.name).stat().st_size:
            continue
        tmp = path.with_suffix(path.suffix + f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes((PACKAGED / path.name).read_bytes())
        os.replace(tmp, path)
    return paths
