"""``Detector.push_to_hub`` against the local fake Hub; the repo loads back in hubdet and in plain timm."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard

from hubdet.models import create_detector
from tests.plugins.hub import run_with_hub

REPO = "hubdet-tester/tiny-classifier"

PUSH_AND_LOAD = f"""
import json, timm, torch, hubdet
torch.manual_seed(0)
det = hubdet.create_detector("classifier_tiny.test").eval()
results = [{{"dataset": "hubdet/genimage-sample", "split": "test", "revision": "abc123",
            "metrics": {{"roc_auc": 0.75}}}}]
url = det.push_to_hub({REPO!r}, card_kwargs={{"eval_results": results}})
x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
loaded = hubdet.from_pretrained({REPO!r})
plain = timm.create_model("hf-hub:{REPO}", pretrained=True).eval()
with torch.no_grad():
    ref = det(x).logits
    out = {{"url": url, "family": loaded.family,
           "hubdet_diff": float((loaded(x).logits - ref).abs().max()),
           "timm_diff": float((plain(x).squeeze(-1) - ref).abs().max())}}
print("RESULT", json.dumps(out))
"""


def test_push_to_local_hub_and_load_back(hub_server, tmp_path):
    proc = run_with_hub(hub_server, PUSH_AND_LOAD, env={"HF_HOME": str(tmp_path / "hf")})
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["family"] == "classifier"
    assert result["hubdet_diff"] == 0.0 and result["timm_diff"] < 1e-6
    files = hub_server.files("model", REPO)
    assert {"model.safetensors", "config.json", "README.md"} <= set(files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    config = json.loads(files["config.json"])
    assert config["family"] == "classifier" and config["architecture"] == "test_vit"
    (tmp_path / "README.md").write_bytes(files["README.md"])
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.eval_results[0].metric_value == 0.75 and card.data.eval_results[0].dataset_revision == "abc123"
    assert f'hubdet.from_pretrained("{REPO}")' in card.text
    assert len(hub_server.commits) >= 1


def test_push_refuses_offline():
    det = create_detector("classifier_tiny.test")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        det.push_to_hub("me/x")
