"""A new family plugs into hubdet.training without touching the loop or the metric code.

A per-pixel mask family (defined here, registered only for the test) says what it needs through the family
interface: ``train_columns`` (it also reads the ``mask`` column), ``training_sample`` (its targets are ``labels`` and
``masks``), ``forward(..., masks=)`` returning the loss, ``predicts_masks`` (its predictions carry
``extra["mask"]``). The unchanged trainer trains it, and validation/test report the metric table's pixel metrics.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from hubdet import training
from hubdet._core.config import StrictConfig
from hubdet.models import DetectorOutput
from hubdet.models._registry import DETECTORS, FAMILIES
from hubdet.models.base import Detector
from hubdet.models.config import DetectorConfig, PreprocessConfig
from tests.plugins.images import make_image, make_mask

SIZE = 16


@dataclasses.dataclass
class _NoArgs(StrictConfig):
    pass


class _PixelFamily(Detector):
    """A 1x1 convolution giving a manipulation logit per pixel; the image logit is their maximum."""

    family = "pixeltest"
    args_class = _NoArgs
    predicts_masks = True
    train_columns = ("image", "label", "mask")

    def __init__(self, config: DetectorConfig, *, pretrained: bool = False) -> None:
        super().__init__(config, pretrained=pretrained)
        self.conv = torch.nn.Conv2d(3, 1, 1)

    def training_sample(self, row: dict[str, Any], *, augmenter: Any = None, rng: Any = None) -> dict:
        image = row["image"].convert("RGB").resize((SIZE, SIZE))
        mask = row.get("mask")
        target = np.zeros((SIZE, SIZE), np.float32) if mask is None else (
            np.asarray(mask.convert("L").resize((SIZE, SIZE), Image.Resampling.NEAREST)) >= 128).astype(np.float32)
        return {"pixel_values": self.transform(image), "labels": torch.tensor(float(row["label"])),
                "masks": torch.from_numpy(target)}

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                boxes: torch.Tensor | None = None, masks: torch.Tensor | None = None) -> DetectorOutput:
        pixels = self.conv(pixel_values)[:, 0]
        logits = pixels.flatten(1).amax(1)
        out = DetectorOutput(logits=logits, probs=torch.sigmoid(logits))
        if labels is not None:
            out.loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
            if masks is not None:
                out.loss = out.loss + F.binary_cross_entropy_with_logits(pixels, masks)
            out.losses = {"total": out.loss.detach()}
        self._last_masks = torch.sigmoid(pixels).detach().cpu()
        return out

    def _predict_images(self, images: Any) -> Any:
        preds = super()._predict_images(images)
        for pred, mask in zip(preds, self._last_masks, strict=True):
            pred.extra["mask"] = mask.numpy()
        return preds


@pytest.fixture
def pixel_family(monkeypatch: pytest.MonkeyPatch) -> str:
    name = "pixeltest_tiny.test"
    pre = {"input_size": [SIZE, SIZE], "mean": [0.5] * 3, "std": [0.5] * 3}
    monkeypatch.setitem(FAMILIES._items, _PixelFamily.family, _PixelFamily)
    monkeypatch.setitem(DETECTORS._items, name, lambda: DetectorConfig(
        family=_PixelFamily.family, name=name, preprocess=PreprocessConfig.from_dict(pre)))
    return name


@pytest.fixture
def mask_data(tmp_path: Path) -> Path:
    """Reals (smooth) and fakes (a bright square on noise, its mask) in split folders, masks in boxes.csv."""
    root = tmp_path / "masks"
    rows = [["file", "label", "mask"]]
    for split, n in (("train", 8), ("validation", 4), ("test", 4)):
        for i in range(n):
            make_image(root / split / "real" / f"r{i}.png", (32, 32), "gradient", seed=i)
            fake = make_image(root / split / "fake" / f"f{i}.png", (32, 32), "noise", seed=50 + i)
            x0 = 4 + 2 * i
            img = np.asarray(Image.open(fake)).copy()
            img[x0:x0 + 12, x0:x0 + 12] = 255
            Image.fromarray(img).save(fake)
            mask = make_mask(root / split / "masks" / f"f{i}.png", (32, 32), (x0, x0, x0 + 12, x0 + 12))
            rows.append([fake.relative_to(root).as_posix(), "fake", mask.relative_to(root).as_posix()])
    with open(root / "boxes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return root


def test_a_mask_family_trains_with_the_unchanged_loop(pixel_family: str, mask_data: Path, tmp_path: Path) -> None:
    cfg = training.load_config(None, {
        "data.data_dir": str(mask_data), "model.name": pixel_family, "train.output_dir": str(tmp_path / "run"),
        "train.epochs": 2, "train.batch_size": 4, "train.log_with": "none", "train.progress": False,
        "optim.lr": 0.05, "train.best_metric": "val_pixel_f1"})
    result = training.train(cfg)
    assert [h["epoch"] for h in result["history"]] == [0, 1]
    for split in ("validation", "test"):
        metrics = result[split]
        assert metrics["n_masks"] == 4  # the four fakes of the split have masks; reals are not counted
        assert 0.0 <= metrics["pixel_f1"] <= metrics["pixel_f1_best"] <= 1.0
    assert "val_pixel_iou" in result["history"][-1] and result["best_metric"] == "val_pixel_f1"
    card = (Path(result["model_dir"]) / "README.md").read_text()
    assert "pixel_f1_best" in card  # the pixel metrics reach the model-index like every other metric
