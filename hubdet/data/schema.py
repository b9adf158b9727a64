"""The one example schema shared by every source."""

from __future__ import annotations

import dataclasses
from typing import Any

import datasets

LABEL_NAMES: list[str] = ["real", "fake"]
REAL, FAKE = 0, 1


def features() -> datasets.Features:
    """The ``datasets.Features`` of every hubdet source.

    - ``image``: the picture; ``label``: ClassLabel real/fake;
    - ``boxes``: manipulated regions as ``[xmin, ymin, xmax, ymax]`` in pixels (empty if untouched);
    - ``mask``: optional image of manipulated pixels (white = manipulated);
    - ``generator``: e.g. ``stable-diffusion-v1.4``, ``deepfill-v2``, ``natural``; ``source``: the source name;
    - ``orig_format``, ``orig_jpeg_quality`` (-1 when unknown), ``orig_width``, ``orig_height``: the original encoding;
    - ``file``: path relative to the data directory (or the Hub file name), for reports and joins.
    """
    return datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=LABEL_NAMES),
            "boxes": datasets.List(datasets.List(datasets.Value("float32"), length=4)),
            "mask": datasets.Image(),
            "generator": datasets.Value("string"),
            "source": datasets.Value("string"),
            "orig_format": datasets.Value("string"),
            "orig_jpeg_quality": datasets.Value("int32"),
            "orig_width": datasets.Value("int32"),
            "orig_height": datasets.Value("int32"),
            "file": datasets.Value("string"),
        }
    )


def parse_label(value: Any, where: str = "") -> int:
    """Map real/fake spellings (REAL, Fake, 0_real, ai, nature, 0/1 ...) to 0/1; raise ValueError otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in {"0", "real", "0_real", "nature", "natural", "authentic", "original", "true_real", "untouched"}:
        return REAL
    if text in {"1", "fake", "1_fake", "ai", "synthetic", "generated", "inpainted", "forged", "manipulated"}:
        return FAKE
    raise ValueError(f"{where}: cannot read label {value!r} as real or fake" if where else f"bad label {value!r}")


@dataclasses.dataclass(frozen=True)
class ColumnMap:
    """Where a published copy of a source keeps each field: candidate column names, first present wins.

    Each source declares its own as ``HUB_COLUMNS`` on its builder class (the generic default finds the usual
    names); ``fake_generator``/``real_generator`` fill ``generator`` when the copy has no such column.
    """

    image: tuple[str, ...] = ("image", "img", "picture", "pixel_values", "file", "path", "filepath")
    label: tuple[str, ...] = ("label", "labels", "class", "target", "is_fake", "fake")
    generator: tuple[str, ...] = ("generator", "model", "source_model")
    boxes: tuple[str, ...] = ("boxes", "bboxes", "bbox")
    mask: tuple[str, ...] = ("mask", "masks", "inpaint_mask")
    fake_generator: str = "unknown"
    real_generator: str = "natural"
