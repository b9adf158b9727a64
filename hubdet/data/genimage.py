"""GenImage (Zhu et al., NeurIPS 2023): ImageNet photos vs eight generators.

Published layout: ``<generator>/[<subset>/]{train,val}/{ai,nature}``; GenImage itself ships one subset level
(e.g. ``Midjourney/imagenet_midjourney/train/ai``). ``val`` becomes the ``validation`` split; the generator is
the top folder name.
"""

from __future__ import annotations

from pathlib import Path

from hubdet.data._builder import HubdetBuilder, Item, class_folder_items, normalize_split, register_source, rel
from hubdet.data.schema import FAKE, REAL

_CLASSES = {"ai": FAKE, "nature": REAL}


@register_source("genimage")
class GenImage(HubdetBuilder):
    """Finds every ``{train,val}/{ai,nature}`` folder; the first path part is the generator."""

    LAYOUT = "<generator>/[<subset>/]{train,val}/{ai,nature}/*"
    HOMEPAGE = "https://github.com/GenImage-Dataset/GenImage"
    CITATION = "Zhu, M. et al., 2023. GenImage: A Million-Scale Benchmark for Detecting AI-Generated Image. NeurIPS."

    def scan(self, data_dir: Path) -> dict[str, list[Item]]:
        out: dict[str, list[Item]] = {}
        for class_dir in sorted(p for p in data_dir.rglob("*") if p.is_dir() and p.name.lower() in _CLASSES):
            split = normalize_split(class_dir.parent.name)
            parts = Path(rel(class_dir, data_dir)).parts
            if split is None or len(parts) < 3:
                continue
            label = _CLASSES[class_dir.name.lower()]
            generator = "natural" if label == REAL else parts[0]
            out.setdefault(split, []).extend(
                class_folder_items(class_dir, data_dir, label, generator, self.report.bad_files)
            )
        return out
