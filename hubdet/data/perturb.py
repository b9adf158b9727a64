"""The robustness protocol: the same perturbation applied to real and fake images before the detector's own
preprocessing, and the drop of each metric against clean data.

Perturbations (``PROTOCOL``): ``clean``; JPEG quality 95/75/50 (encode and decode, through
:func:`hubdet.data.debias.reencode`, the one re-encoder); Gaussian blur sigma 1 and 2 (Pillow's
``GaussianBlur``, whose radius is the standard deviation); colour jitter (seed 002 trains and tests with
"randomised jitter"; it does not give strengths, so hubdet fixes brightness/contrast/saturation 0.3 and hue
0.05, applied in that fixed order with factors drawn from a per-image seed, so every run perturbs every image
identically); downscale by half (bicubic). Nothing here looks at the label.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from PIL import Image, ImageFilter

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError, UnknownNameError

Kind = Literal["none", "jpeg", "blur", "jitter", "downscale"]



@dataclasses.dataclass
class Perturbation(StrictConfig):
    """One perturbation of the protocol; the fields a ``kind`` does not use keep their defaults."""

    name: str
    kind: Kind = "none"
    quality: int = 75  # jpeg
    sigma: float = 1.0  # blur
    factor: float = 0.5  # downscale: new size = round(size * factor)
    brightness: float = 0.3  # jitter: factor drawn from [1 - b, 1 + b]
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.05  # jitter: shift drawn from [-hue, hue]
    seed: int = 0  # jitter: mixed with each image's key

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("Perturbation.name must not be empty")
        if self.kind not in ("none", "jpeg", "blur", "jitter", "downscale"):
            raise ConfigError(f"Perturbation {self.name!r}: unknown kind {self.kind!r}")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"Perturbation {self.name!r}: quality {self.quality} is not in 1..100")
        if self.sigma <= 0:
            raise ConfigError(f"Perturbation {self.name!r}: sigma must be > 0")
        if not 0 < self.factor <= 1:
            raise ConfigError(f"Perturbation {self.name!r}: factor must be in (0, 1]")
        if min(self.brightness, self.contrast, self.saturation) < 0 or not 0 <= self.hue <= 0.5:
            raise ConfigError(f"Perturbation {self.name!r}: jitter strengths must be >= 0 and hue <= 0.5")

    def describe(self) -> dict[str, Any]:
        """The fields that matter for this kind (recorded in results)."""
        used = {"none": (), "jpeg": ("quality",), "blur": ("sigma",), "downscale": ("factor",),
                "jitter": ("brightness", "contrast", "saturation", "hue", "seed")}[self.kind]
        return {"kind": self.kind, **{k: getattr(self, k) for k in used}}

    def __call__(self, img: Image.Image, key: str = "") -> Image.Image:
        """Perturb an RGB image; ``key`` (e.g. the file name) seeds the jitter of this image."""
        return apply_perturbation(img, self, key=key)


PROTOCOL: tuple[Perturbation, ...] = (
    Perturbation("clean"),
    Perturbation("jpeg_q95", kind="jpeg", quality=95),
    Perturbation("jpeg_q75", kind="jpeg", quality=75),
    Perturbation("jpeg_q50", kind="jpeg", quality=50),
    Perturbation("blur_s1", kind="blur", sigma=1.0),
    Perturbation("blur_s2", kind="blur", sigma=2.0),
    Perturbation("jitter", kind="jitter"),
    Perturbation("downscale_0.5", kind="downscale", factor=0.5),
)
PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in PROTOCOL}


def get_perturbation(name: str) -> Perturbation:
    """A perturbation of the standard protocol by name (unknown names raise with the list)."""
    try:
        return PERTURBATIONS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(PERTURBATIONS), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(f"unknown perturbation {name!r}{hint} (known: {list(PERTURBATIONS)})") from None


def resolve_perturbations(items: Iterable[str | Mapping[str, Any] | Perturbation] | None) -> list[Perturbation]:
    """Names of the standard protocol, inline specs (dicts) or :class:`Perturbation` objects; ``clean`` first.

    ``None`` gives ``[clean]``. Duplicate names raise.
    """
    out: list[Perturbation] = []
    for item in items or ["clean"]:
        if isinstance(item, Perturbation):
            p = item
        elif isinstance(item, str):
            p = get_perturbation(item)
        elif isinstance(item, Mapping):
            p = Perturbation.from_dict(dict(item), where=f"perturbation {item.get('name', '?')!r}")
        else:
            raise ConfigError(f"perturbation: expected a name or a mapping, got {type(item).__name__}")
        if any(q.name == p.name for q in out):
            raise ConfigError(f"perturbation {p.name!r} listed twice")
        out.append(p)
    if not any(p.kind == "none" for p in out):
        out.insert(0, PERTURBATIONS["clean"])  # drops are measured against clean data
    out.sort(key=lambda p: p.kind != "none")
    return out


def _seed(key: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little")


def jitter_factors(p: Perturbation, key: str) -> tuple[float, float, float, float]:
    """The (brightness, contrast, saturation, hue) of image ``key``: deterministic, independent of the label."""
    import random

    rng = random.Random(_seed(key, p.seed))
    b = rng.uniform(1 - p.brightness, 1 + p.brightness)
    c = rng.uniform(1 - p.contrast, 1 + p.contrast)
    s = rng.uniform(1 - p.saturation, 1 + p.saturation)
    h = rng.uniform(-p.hue, p.hue)
    return max(b, 0.0), max(c, 0.0), max(s, 0.0), h


def apply_perturbation(img: Image.Image, p: Perturbation, *, key: str = "") -> Image.Image:
    """Return the perturbed RGB image (a new object; ``img`` is not modified)."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    if p.kind == "none":
        return img
    if p.kind == "jpeg":
        from hubdet.data.debias import ReencodeConfig, reencode

        return reencode(img, ReencodeConfig(format="JPEG", quality=p.quality)).convert("RGB")
    if p.kind == "blur":
        return img.filter(ImageFilter.GaussianBlur(radius=p.sigma))
    if p.kind == "downscale":
        size = (max(1, round(img.width * p.factor)), max(1, round(img.height * p.factor)))
        return img.resize(size, Image.Resampling.BICUBIC)
    if p.kind == "jitter":
        import torchvision.transforms.functional as TF

        b, c, s, h = jitter_factors(p, key)
        out = TF.adjust_brightness(img, b)
        out = TF.adjust_contrast(out, c)
        out = TF.adjust_saturation(out, s)
        return TF.adjust_hue(out, h)
    raise ConfigError(f"perturbation {p.name!r}: unknown kind {p.kind!r}")  # pragma: no cover - validated
