"""CIFAKE (Bird & Lotfi, 2024): CIFAR-10 photos vs Stable Diffusion 1.4 look-alikes, 32x32 JPEG.

Layout as published on Kaggle (and used by seed 000): ``train/{REAL,FAKE}``, ``test/{REAL,FAKE}``.
"""

from __future__ import annotations

from pathlib import Path

from hubdet.data._builder import HubdetBuilder, Item, class_folder_items, find_child, register_source
from hubdet.data.schema import FAKE, REAL, ColumnMap

#: The CIFAKE paper generated its fakes with Stable Diffusion v1.4.
FAKE_GENERATOR = "stable-diffusion-v1.4"


@register_source("cifake")
class Cifake(HubdetBuilder):
    """Reads ``train/{REAL,FAKE}`` and ``test/{REAL,FAKE}`` (folder names in any case)."""

    LAYOUT = "train/{REAL,FAKE}/*.jpg and test/{REAL,FAKE}/*.jpg"
    # Hub copies: ``image`` + ``label`` ClassLabel named FAKE/REAL (imagefolder of train/{REAL,FAKE})
    HUB_COLUMNS = ColumnMap(fake_generator=FAKE_GENERATOR)
    HOMEPAGE = "https://www.kaggle.com/datasets/birdy654/cifake-real-and-ai-generated-synthetic-images"
    CITATION = "Bird, J.J. and Lotfi, A., 2024. CIFAKE: Image Classification and Explainable Identification of " \
               "AI-Generated Synthetic Images. IEEE Access."

    def scan(self, data_dir: Path) -> dict[str, list[Item]]:
        out: dict[str, list[Item]] = {}
        for split in ("train", "test"):
            split_dir = find_child(data_dir, split)
            if split_dir is None:
                continue
            items: list[Item] = []
            for names, label, generator in ((("REAL",), REAL, "natural"), (("FAKE",), FAKE, FAKE_GENERATOR)):
                folder = find_child(split_dir, *names)
                if folder is not None:
                    items += class_folder_items(folder, data_dir, label, generator, self.report.bad_files)
            out[split] = items
        return out
