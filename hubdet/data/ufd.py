"""UniversalFakeDetect (Ojha et al., CVPR 2023) and CNNDetection (Wang et al., CVPR 2020) folders.

Layouts: ``<generator>/{0_real,1_fake}`` and ``<generator>/<class>/{0_real,1_fake}``, optionally under a
split folder (``train``/``val``/``test`` as CNNDetection ships). The generator is the folder above the class
level; reals get ``natural`` (their folder stays visible in ``file``). UFD's reals-only folders such as
``laion/0_real`` and ``imagenet/0_real`` are read the same way.
"""

from __future__ import annotations

from pathlib import Path

from hubdet.data._builder import HubdetBuilder, Item, class_folder_items, normalize_split, register_source, rel
from hubdet.data.schema import FAKE, REAL

_CLASSES = {"0_real": REAL, "1_fake": FAKE}


@register_source("ufd")
class UniversalFakeDetect(HubdetBuilder):
    """Finds every ``0_real``/``1_fake`` folder and reads split and generator from the folders above it."""

    LAYOUT = "[split/]<generator>/[<class>/]{0_real,1_fake}/*"
    HOMEPAGE = "https://github.com/WisconsinAIVision/UniversalFakeDetect"
    CITATION = "Ojha, U., Li, Y. and Lee, Y.J., 2023. Towards Universal Fake Image Detectors that Generalize " \
               "Across Generative Models. CVPR."

    def scan(self, data_dir: Path) -> dict[str, list[Item]]:
        out: dict[str, list[Item]] = {}
        for class_dir in sorted(p for p in data_dir.rglob("*") if p.is_dir() and p.name.lower() in _CLASSES):
            parents = list(Path(rel(class_dir, data_dir)).parts[:-1])
            split = "train"
            if parents and normalize_split(parents[0]):
                split = normalize_split(parents.pop(0)) or "train"
            label = _CLASSES[class_dir.name.lower()]
            generator = parents[0] if parents else data_dir.name
            out.setdefault(split, []).extend(
                class_folder_items(class_dir, data_dir, label, "natural" if label == REAL else generator,
                                   self.report.bad_files)
            )
        return out
