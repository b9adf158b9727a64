"""The app's pure-python logic (config, pool, compare, batch, uploads, rendering, examples, leaderboard) with tiny
detectors saved to tmp folders."""

from __future__ import annotations

import csv
import io
import json
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import hubdet
from hubdet._core.errors import BadImageError, ConfigError
from hubdet.app import config as app_config
from hubdet.app import pool as app_pool
from hubdet.app.batch import BATCH_COLUMNS, _box_text, batch, rows_to_csv
from hubdet.app.compare import DetectorResult, agreement_summary, compare
from hubdet.app.config import DetectorSpec, load_detector_specs, parse_detector_list, read_detectors_file
from hubdet.app.examples import ensure_examples
from hubdet.app.leaderboard import leaderboard_choices, leaderboard_frame, load_leaderboard
from hubdet.app.pool import AppInputError, DetectorLoadError, DetectorPool
from hubdet.app.rendering import draw_box, overlay_heatmap
from hubdet.app.uploads import BatchLimits, decode_upload
from hubdet.models.explain import explain
from hubdet.models.predict import share_plan

TINY = {"classifier": "classifier_tiny.test", "boxhead": "boxhead_tiny.test", "ensemble": "ensemble_tiny.test"}


# ============================================================================ helpers shared with the server tests


def save_tiny_detectors(root: Path) -> dict[str, Path]:
    """Save the tiny variants of three families into ``root/<family>`` (fixed seed) and return the folders."""
    folders = {}
    for family, name in TINY.items():
        torch.manual_seed(0)
        folders[family] = hubdet.create_detector(name).save_pretrained(root / family)
    return folders


def photo_like(path: Path, size: tuple[int, int] = (96, 72), fmt: str = "JPEG", seed: int = 0) -> Path:
    """A small noisy gradient image (photo-like enough for the decoder and the detectors)."""
    w, h = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, w)[None, :, None]
    y = np.linspace(0, 255, h)[:, None, None]
    arr = np.clip(np.concatenate([x + 0 * y, y + 0 * x, 128 + 0 * x * y], -1) + rng.normal(0, 12, (h, w, 3)), 0, 255)
    Image.fromarray(arr.astype(np.uint8), "RGB").save(path, format=fmt)
    return path


def bad_inputs(folder: Path) -> dict[str, Path]:
    """Files the app must refuse with a clear message: kind -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good, "JPEG")
    out = {
        "non_image": folder / "notes.jpg",
        "truncated": folder / "truncated.jpg",
        "empty": folder / "empty.png",
        "bomb": folder / "bomb.png",
    }
    out["non_image"].write_text("this is plain text, not an image\n")
    out["truncated"].write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    out["empty"].write_bytes(b"")
    Image.new("1", (10000, 10000)).save(out["bomb"], "PNG")  # 100 Mpx in ~12 kB: over the 64 Mpx limit
    return out


def odd_inputs(folder: Path) -> dict[str, Path]:
    """Valid images in unusual encodings the app must normalise: kind -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    base = Image.open(photo_like(folder / "base.png", fmt="PNG")).convert("RGB")
    out = {"gif": folder / "animated.gif", "cmyk": folder / "cmyk.jpg", "16bit": folder / "gray16.png",
           "palette": folder / "palette.png", "alpha": folder / "alpha.png"}
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), base.rotate(180)]
    frames[0].save(out["gif"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    base.convert("CMYK").save(out["cmyk"], "JPEG")
    Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257).save(out["16bit"])
    base.convert("P", palette=Image.Palette.ADAPTIVE).save(out["palette"])
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.full((base.height, base.width), 90, np.uint8)))
    rgba.save(out["alpha"])
    return out


EXPECTED_NOTES = {"gif": "3 frames", "cmyk": "CMYK", "16bit": "I;16", "palette": "mode P", "alpha": "composited"}
EXPECTED_REASONS = {"non_image": "not an image", "truncated": "truncated", "empty": "empty",
                    "bomb": "decompression bomb"}


# ============================================================================ fixtures


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_tiny_detectors(tmp_path_factory.mktemp("app_detectors"))


@pytest.fixture(scope="module")
def pool(folders: dict[str, Path]) -> DetectorPool:
    return DetectorPool([DetectorSpec(name=f, path=str(p)) for f, p in folders.items()])


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    return photo_like(tmp_path / "photo.jpg")


# ============================================================================ config


def test_detector_list_resolves_folders_registry_names_and_hub_ids(folders: dict[str, Path], tmp_path: Path) -> None:
    text = f"{folders['classifier']}, mine=classifier_tiny.test ,org/repo@v1,box={folders['boxhead']}"
    specs = parse_detector_list(text)
    assert [s.name for s in specs] == ["classifier", "mine", "repo", "box"]
    assert specs[0].model == str(folders["classifier"].resolve())
    assert specs[1].model == "classifier_tiny.test"
    assert specs[2].model == "org/repo@v1"
    with pytest.raises(ConfigError, match="not found"):
        parse_detector_list("./no/such/folder/at/all")
    with pytest.raises(ConfigError, match="appears twice"):
        parse_detector_list("a=classifier_tiny.test,a=boxhead_tiny.test")


def test_detectors_yaml_is_strict_and_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    file = tmp_path / "detectors.yaml"
    file.write_text("detectors:\n  - name: one\n    path: ckpt\n    description: hi\n"
                    "  - name: two\n    repo_id: org/model\n    revision: main\n")
    specs = read_detectors_file(file)
    assert specs[0].model == str((tmp_path / "ckpt").resolve()) and specs[0].description == "hi"
    assert specs[1].source == "org/model@main"  # the format-1 keys become one detector spec
    file.write_text("detectors:\n  - name: one\n    model: onnx:ckpt\n  - name: two\n    model: timm:org/x@abc\n")
    assert [s.model for s in read_detectors_file(file)] == [f"onnx:{(tmp_path / 'ckpt').resolve()}", "timm:org/x@abc"]
    file.write_text("detectors:\n  - name: one\n    pth: ckpt\n")
    with pytest.raises(ConfigError, match="did you mean 'path'"):
        read_detectors_file(file)
    file.write_text("detectors:\n  - name: one\n    path: ckpt\n    repo_id: org/x\n")
    with pytest.raises(ConfigError, match="exactly one of"):
        read_detectors_file(file)


def test_env_variable_overrides_the_defaults_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(app_config.ENV_LIST, "classifier_tiny.test")
    assert [s.model for s in load_detector_specs()] == ["classifier_tiny.test"]
    monkeypatch.delenv(app_config.ENV_LIST)
    file = tmp_path / "d.yaml"
    file.write_text("detectors:\n  - name: x\n    registry: boxhead_tiny.test\n")
    monkeypatch.setenv(app_config.ENV_CONFIG, str(file))
    assert [s.name for s in load_detector_specs()] == ["x"]
    assert [s.name for s in load_detector_specs(detectors="y=classifier_tiny.test")] == ["y"]


def test_bundled_defaults_file_is_valid() -> None:
    specs = read_detectors_file(app_config.DEFAULT_CONFIG)
    assert len(specs) >= 3
    assert all(Path(s.model).is_dir() for s in specs), "bundled defaults must be local folders (the app works offline)"
    assert all(s.problem() is None for s in specs)


# ============================================================================ pool


def test_pool_loads_lazily_once_across_threads(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_load = app_pool._load

    def counting_load(spec: DetectorSpec):  # noqa: ANN202
        calls.append(spec.name)
        return real_load(spec)

    monkeypatch.setattr(app_pool, "_load", counting_load)
    pool = DetectorPool([DetectorSpec(name="c", path=str(folders["classifier"]))])
    assert not pool.is_loaded("c") and calls == []
    got = []
    threads = [threading.Thread(target=lambda: got.append(pool.get("c"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["c"] and len({id(g) for g in got}) == 1 and pool.is_loaded("c")


def test_pool_reports_missing_broken_and_unknown_detectors(folders: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folders["classifier"] / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    pool = DetectorPool([DetectorSpec(name="ok", path=str(folders["classifier"])),
                         DetectorSpec(name="missing", path=str(tmp_path / "nope")),
                         DetectorSpec(name="broken", path=str(broken))])
    assert pool.names() == ["ok", "broken"] and "not found" in pool.problems["missing"]
    with pytest.raises(DetectorLoadError, match="broken.*could not be loaded"):
        pool.get("broken")
    with pytest.raises(DetectorLoadError):  # cached failure, same message
        pool.get("broken")
    with pytest.raises(AppInputError, match="unavailable"):
        pool.get("missing")
    with pytest.raises(AppInputError, match="unknown detector"):
        pool.get("nobody")
    rows = {r["name"]: r for r in pool.describe()}
    assert rows["broken"]["available"] is False and rows["missing"]["available"] is False
    # a comparison still works: the broken detector's column carries the error
    comparison = compare(pool, photo_like(tmp_path / "p.png", fmt="PNG"), ["ok", "broken"], explain_it=False)
    by_name = {r.detector: r for r in comparison.results}
    assert by_name["ok"].error is None and "could not be loaded" in by_name["broken"].error


def test_hub_detectors_respect_offline_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pool = DetectorPool([DetectorSpec(name="hub", repo_id="someone/not-cached-anywhere")])
    assert pool.names() == ["hub"]  # offered (it may be cached), and only tried when chosen
    with pytest.raises(DetectorLoadError, match="offline .*not in the local Hub cache"):
        pool.get("hub")


def test_selection_needs_two_to_four_detectors(pool: DetectorPool) -> None:
    with pytest.raises(AppInputError, match="choose 2 to 4"):
        pool.check_selection(["classifier"])
    with pytest.raises(AppInputError, match="choose 2 to 4"):
        pool.check_selection([])
    assert pool.check_selection(["boxhead", "classifier", "boxhead"]) == ["boxhead", "classifier"]


# ============================================================================ compare


def test_compare_matches_each_detectors_own_prediction(pool: DetectorPool, image: Path) -> None:
    comparison = compare(pool, image, ["classifier", "boxhead", "ensemble"])
    assert [r.detector for r in comparison.results] == ["classifier", "boxhead", "ensemble"]
    for result in comparison.results:
        assert result.error is None
        direct = pool.get(result.detector).predict([image])[0]
        assert result.prob_fake == pytest.approx(direct.prob, abs=1e-5)
        assert result.verdict == direct.verdict
        assert 0.0 <= result.prob_fake <= 1.0 and result.seconds >= 0
        assert result.heatmap_image is not None and result.heatmap_image.size == comparison.preview.size
    box = {r.detector: r for r in comparison.results}["boxhead"]
    assert box.supports_boxes and box.box_image is not None
    x0, y0, x1, y1 = box.box
    assert 0 <= x0 <= x1 <= 96 and 0 <= y0 <= y1 <= 72
    assert {r.detector: r for r in comparison.results}["classifier"].box_image is None
    payload = comparison.to_dict()
    assert payload["ok"] and payload["image"]["width"] == 96
    assert payload["summary"]["unanimous"] == (len({r.verdict for r in comparison.results}) == 1)


def test_explanation_methods_and_geometry(pool: DetectorPool, tmp_path: Path) -> None:
    img = Image.open(photo_like(tmp_path / "big.png", size=(128, 96), fmt="PNG")).convert("RGB")
    heat, method = explain(pool.get("classifier"), img)  # a ViT: occlusion, one row of patches per batch
    assert method.startswith("occlusion") and heat.shape == (96, 128)
    torch.manual_seed(0)
    cnn = hubdet.create_detector("classifier_tiny.test", backbone="test_resnet", model_args={}).eval()
    heat, method = explain(cnn, img)  # a CNN classifier: Grad-CAM on its last conv
    assert method.startswith("Grad-CAM") and heat.shape == (96, 128)
    box_head = pool.get("boxhead")
    (pred,) = box_head.predict([img])
    heat, method = explain(box_head, img)  # the box head's own map: its tiles' calibrated probabilities
    assert method.startswith("tile presence map") and heat.shape == (96, 128)
    tile_probs = box_head.calibrated_probs(torch.tensor([t for t in _tile_logits(box_head, img)]))
    assert heat.max() == pytest.approx(float(tile_probs.max()), abs=1e-5)
    assert pred.prob == pytest.approx(float(tile_probs.max()), abs=1e-5)  # max aggregation: the hottest tile
    heat, method = explain(pool.get("ensemble"), img)  # detectors of detectors: their members' maps, fused
    assert method.startswith("members' maps") and heat.shape == (96, 128)
    assert 0.0 <= heat.min() and heat.max() <= 1.0
    # a centre-cropping detector only sees the middle 32x32: the heatmap is zero elsewhere
    torch.manual_seed(0)
    cropper = hubdet.create_detector("classifier_tiny.test", preprocess={"resize": "center_crop"}).eval()
    heat, _ = explain(cropper, img)
    outside = heat.copy()
    outside[32:64, 48:80] = 0
    assert outside.max() == 0.0 and heat[32:64, 48:80].max() > 0.0


def _tile_logits(box_head: Any, img: Image.Image) -> list[float]:
    with torch.inference_mode():
        return box_head._tile_outputs([img])[0][2].tolist()


def test_agreement_summary_names_the_disagreement() -> None:
    results = [
        DetectorResult("a", prob_fake=0.9, verdict="fake", box=[0, 0, 10, 10]),
        DetectorResult("b", prob_fake=0.1, verdict="real", box=[5, 0, 15, 10]),
        DetectorResult("c", prob_fake=0.8, verdict="fake"),
        DetectorResult("d", error="boom"),
    ]
    summary = agreement_summary(results)
    assert not summary["unanimous"] and summary["groups"] == {"fake": ["a", "c"], "real": ["b"]}
    assert summary["prob_fake_min"] == 0.1 and summary["prob_fake_max"] == 0.9
    ab = next(p for p in summary["pairs"] if (p["a"], p["b"]) == ("a", "b"))
    assert ab["box_iou"] == pytest.approx(50 / 150, abs=1e-4) and not ab["same_verdict"]
    assert "disagree" in summary["text"] and "d: error: boom" in summary["text"]
    same = agreement_summary(results[:1] + results[2:3])
    assert same["unanimous"] and "All 2 detectors agree: fake" in same["text"]


@pytest.mark.parametrize("kind", sorted(EXPECTED_REASONS))
def test_bad_inputs_raise_a_clear_reason(pool: DetectorPool, tmp_path: Path, kind: str) -> None:
    path = bad_inputs(tmp_path)[kind]
    with pytest.raises(BadImageError, match=EXPECTED_REASONS[kind]) as info:
        compare(pool, path, ["classifier", "boxhead"], explain_it=False)
    assert info.value.path == path.name


def test_no_upload_is_a_clear_error(pool: DetectorPool) -> None:
    with pytest.raises(BadImageError, match="no file was uploaded"):
        compare(pool, None, ["classifier", "boxhead"])


@pytest.mark.parametrize("kind", sorted(EXPECTED_NOTES))
def test_unusual_encodings_are_normalised_and_noted(pool: DetectorPool, tmp_path: Path, kind: str) -> None:
    path = odd_inputs(tmp_path)[kind]
    comparison = compare(pool, path, ["classifier", "boxhead"], explain_it=False)
    assert all(r.error is None for r in comparison.results)
    assert any(EXPECTED_NOTES[kind] in note for note in comparison.image["notes"]), comparison.image["notes"]


# ============================================================================ drawing


def test_draw_box_and_overlay() -> None:
    img = Image.new("RGB", (100, 80), (0, 128, 0))
    out = draw_box(img, [20, 30, 60, 70], "")
    assert out.getpixel((20, 50)) == (255, 40, 40) and out.getpixel((40, 50)) == (0, 128, 0)
    half = draw_box(img, [20, 30, 60, 70], "", scale=0.5)
    assert half.getpixel((10, 25)) == (255, 40, 40)
    cold = overlay_heatmap(img, np.zeros((80, 100)))
    assert np.array_equal(np.asarray(cold), np.asarray(img))
    hot = np.zeros((8, 10), np.float32)
    hot[:, 5:] = 1.0
    warm = np.asarray(overlay_heatmap(img, hot)).astype(int)
    assert np.abs(warm[:, :40] - np.asarray(img)[:, :40]).max() == 0
    assert not np.array_equal(warm[:, 70:], np.asarray(img)[:, 70:])


# ============================================================================ batch


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_batch_rows_for_files_and_zip_members(pool: DetectorPool, tmp_path: Path) -> None:
    good = photo_like(tmp_path / "good.png", fmt="PNG")
    bad = bad_inputs(tmp_path / "bad")
    archive = _zip(tmp_path / "set.zip", {"inner/a.jpg": photo_like(tmp_path / "a.jpg").read_bytes(),
                                           "inner/readme.txt": b"hello", "__MACOSX/._a.jpg": b"junk"})
    rows = batch(pool, [good, bad["truncated"], archive], ["classifier", "boxhead"])
    files = [r["file"] for r in rows]
    expected = ["good.png", "truncated.jpg", "set.zip/inner/a.jpg", "set.zip/inner/readme.txt"]
    assert files == [f for f in expected for _ in range(2)]
    by = {(r["file"], r["detector"]): r for r in rows}
    direct = pool.get("classifier").predict([good])[0]
    assert by[("good.png", "classifier")]["prob_fake"] == pytest.approx(direct.prob, abs=1e-4)
    assert by[("good.png", "boxhead")]["box"].count(",") == 3
    assert "truncated" in by[("truncated.jpg", "boxhead")]["error"]
    assert "not an image" in by[("set.zip/inner/readme.txt", "classifier")]["error"]
    assert by[("set.zip/inner/a.jpg", "classifier")]["error"] == ""
    csv_path = rows_to_csv(rows, tmp_path / "out.csv")
    with csv_path.open() as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == BATCH_COLUMNS and len(table) == len(rows)


def test_batch_refuses_oversized_and_bomb_zips(pool: DetectorPool, tmp_path: Path) -> None:
    img = photo_like(tmp_path / "a.jpg").read_bytes()
    many = _zip(tmp_path / "many.zip", {f"{i}.jpg": img for i in range(6)})
    bomb = _zip(tmp_path / "bomb.zip", {"zeros.jpg": b"\0" * (4 * 2**20)})
    limits = BatchLimits(max_zip_members=5, max_zip_total_bytes=10 * 2**20, max_files=50)
    rows = batch(pool, [many, bomb], ["classifier"], limits=limits)
    errors = {r["file"]: r["error"] for r in rows}
    assert errors == {"many.zip": "zip refused: 6 files, over the limit of 5",
                      "bomb.zip": errors["bomb.zip"]}
    assert "zip bomb" in errors["bomb.zip"]
    small = BatchLimits(max_zip_total_bytes=2 * 2**20)
    rows = batch(pool, [bomb], ["classifier"], limits=small)
    assert "over the limit of 2 MiB" in rows[0]["error"]
    capped = batch(pool, [many], ["classifier"], limits=BatchLimits(max_files=2))
    assert [r["error"] for r in capped][-1].startswith("batch stopped")


def test_batch_needs_files_and_detectors(pool: DetectorPool, image: Path) -> None:
    with pytest.raises(AppInputError, match="upload"):
        batch(pool, [], ["classifier"])
    with pytest.raises(AppInputError, match="at least one detector"):
        batch(pool, [image], [])


# ============================================================================ examples and leaderboard


def test_examples_are_generated_once_and_decodable(tmp_path: Path) -> None:
    paths = ensure_examples(tmp_path)
    assert [p.name for p in paths] == ["wine_inpainted.jpg", "bridge.jpg", "fruits.jpg", "dcgan_face.png"]
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert [p.stat().st_mtime_ns for p in ensure_examples(tmp_path)] == stamps
    decoded = decode_upload(paths[0])
    arr = np.asarray(decoded.image, dtype=np.float32)
    assert decoded.image.size == (576, 768) and arr.std() > 20  # a photo, not a flat colour
    licences = (Path(ensure_examples.__code__.co_filename).parent / "example_images" / "LICENSES.md").read_text()
    assert all(p.name in licences for p in paths)  # every shipped example says where it comes from
    assert sum(p.stat().st_size for p in paths) < 1_000_000  # small files


def write_leaderboard(folder: Path) -> Path:
    """Three real result files (two sources, a blur perturbation) made by the eval runner's test helper."""
    from tests.test_leaderboard import make_result, write

    write(folder / "good.json", make_result("models/good", 0.6))
    write(folder / "weak.json", make_result("models/weak", 0.1))
    write(folder / "sub" / "other.json", make_result("models/mid", 0.3, source="other"))
    return folder


def test_leaderboard_through_the_eval_module(tmp_path: Path) -> None:
    results, message = load_leaderboard(write_leaderboard(tmp_path / "lb"))
    assert len(results) == 3 and "3 result(s)" in message
    choices = leaderboard_choices(results)
    assert choices["source"] == ["All", "folder", "other"] and choices["perturbation"][0] == "clean"
    assert len(choices["perturbation"]) == 2 and choices["default_metric"] in choices["metric"]
    table = leaderboard_frame(results, source="All", perturbation="clean", metric="roc_auc")
    assert list(table["model"])[:2] == ["models/good", "models/mid"] and list(table["rank"]) == [1, 2, 3]
    only = leaderboard_frame(results, source="folder", perturbation=choices["perturbation"][1])
    assert set(only["source"]) == {"folder"} and set(only["perturbation"]) == {choices["perturbation"][1]}
    assert len(only) == 2
    empty, message = load_leaderboard(tmp_path / "nothing")
    assert empty is None and "No leaderboard results" in message
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.json").write_text("{not json")
    broken, message = load_leaderboard(tmp_path / "broken")
    assert broken is None and "x.json" in message


# ============================================================================ shared member predictions


@pytest.fixture(scope="module")
def shared_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved ensemble (linear fusion, tempered classifier, box head) whose members also serve stand-alone (like
    defaults/: classifier and boxhead are its members/0 and members/1), a classifier with other weights, and a
    copy of member 0 with the same weights but another temperature."""
    import shutil

    root = tmp_path_factory.mktemp("shared")
    torch.manual_seed(1)
    clf = hubdet.create_detector("classifier_tiny.test")
    clf.config.calibration = clf.config.calibration.replace(temperature=1.7)
    box = hubdet.create_detector("boxhead_tiny.test")
    clf_dir, box_dir = clf.save_pretrained(root / "clf", card=False), box.save_pretrained(root / "box", card=False)
    ens = hubdet.create_detector("ensemble_linear.custom", members=[str(clf_dir), str(box_dir)],
                                 preprocess={"input_size": (32, 32)})
    with torch.no_grad():
        ens.fusion.weight.copy_(torch.tensor([[0.8, -1.1]]))
        ens.fusion.bias.fill_(0.3)
    ens_dir = ens.save_pretrained(root / "ensemble", card=False)
    other = hubdet.create_detector("classifier_tiny.test").save_pretrained(root / "other", card=False)
    tempered = root / "tempered"
    shutil.copytree(ens_dir / "members" / "0", tempered)
    cfg = json.loads((tempered / "config.json").read_text())
    cfg["calibration"]["temperature"] = 3.0
    (tempered / "config.json").write_text(json.dumps(cfg))
    return {"classifier": ens_dir / "members" / "0", "boxhead": ens_dir / "members" / "1", "ensemble": ens_dir,
            "other": other, "tempered": tempered}


def plan_of(pool: DetectorPool, names: list[str]) -> dict[str, dict[int, str]]:
    """The member sharing :func:`predict_many` applies to the loaded detectors ``names`` of ``pool``."""
    detectors, _ = pool.load(names)
    return share_plan(detectors, {n: pool.weights_sha256(n) for n in detectors})


def _shared_pool(folders: dict[str, Path]) -> DetectorPool:
    return DetectorPool([DetectorSpec(name=n, path=str(p)) for n, p in folders.items()])


def _count_calls(monkeypatch: pytest.MonkeyPatch, detector: Any, counts: dict[str, int], key: str) -> None:
    run = detector._predict_images

    def counted(images: Any) -> Any:
        counts[key] = counts.get(key, 0) + 1
        return run(images)

    monkeypatch.setattr(detector, "_predict_images", counted)


def test_compare_shares_member_predictions_exactly(shared_folders: dict[str, Path], image: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pool = _shared_pool(shared_folders)
    names = ["classifier", "boxhead", "ensemble"]
    assert plan_of(pool, names) == {"ensemble": {0: "classifier", 1: "boxhead"}}
    ens = pool.get("ensemble")
    (own,) = ens.predict([image], batch_size=1)  # the ensemble's own predict: every member runs
    counts: dict[str, int] = {}
    for name in ("classifier", "boxhead"):
        _count_calls(monkeypatch, pool.get(name), counts, name)
    for k, member in enumerate(ens.members):
        _count_calls(monkeypatch, member, counts, f"member{k}")
    comparison = compare(pool, image, names, explain_it=False)
    assert counts == {"classifier": 1, "boxhead": 1}  # each member ran once, stand-alone; never inside the ensemble
    result = {r.detector: r for r in comparison.results}["ensemble"]
    assert [r.detector for r in comparison.results] == names
    assert result.error is None and result.prob_fake == own.prob and result.verdict == own.verdict
    assert result.box == [round(v, 1) for v in own.box] and result.box_score == own.box_score
    assert result.shared_members == {"0:classifier_tiny.test": "classifier", "1:boxhead_tiny.test": "boxhead"}
    assert comparison.to_dict()["results"][2]["shared_members"] == result.shared_members
    # the fused prediction itself, extra["members"] included, is exactly the ensemble's own
    alone = {k: pool.get(n).predict([image], batch_size=1) for k, n in enumerate(["classifier", "boxhead"])}
    assert ens.predict_with([image], alone, batch_size=1)[0].to_dict() == own.to_dict()
    # the order of the selection does not matter: the ensemble runs after the detectors it reuses
    counts.clear()
    first = compare(pool, image, ["ensemble", "boxhead"], explain_it=False)
    assert first.results[0].prob_fake == own.prob and first.results[0].shared_members == {
        "1:boxhead_tiny.test": "boxhead"}
    assert counts == {"boxhead": 1, "member0": 1}


def test_nothing_is_shared_with_other_weights_or_config(shared_folders: dict[str, Path], image: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pool = _shared_pool(shared_folders)
    assert pool.weights_sha256("tempered") is None  # not loaded yet
    assert plan_of(pool, ["other", "tempered", "ensemble"]) == {}
    ens = pool.get("ensemble")
    # same weights as member 0 but another temperature: its probabilities differ, so nothing is shared
    assert pool.weights_sha256("tempered") == ens.member_sha256()[0] != pool.weights_sha256("other")
    (own,) = ens.predict([image], batch_size=1)
    counts: dict[str, int] = {}
    for k, member in enumerate(ens.members):
        _count_calls(monkeypatch, member, counts, f"member{k}")
    comparison = compare(pool, image, ["other", "tempered", "ensemble"], explain_it=False)
    result = comparison.results[2]
    assert counts == {"member0": 1, "member1": 1} and result.shared_members == {}
    assert result.prob_fake == own.prob and result.verdict == own.verdict


def test_batch_shares_member_predictions(shared_folders: dict[str, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pool = _shared_pool(shared_folders)
    files = [photo_like(tmp_path / f"p{i}.jpg", seed=i) for i in range(3)]
    names = ["classifier", "ensemble"]
    ens = pool.get("ensemble")
    own = ens.predict(files, batch_size=2)
    counts: dict[str, int] = {}
    _count_calls(monkeypatch, pool.get("classifier"), counts, "classifier")
    for k, member in enumerate(ens.members):
        _count_calls(monkeypatch, member, counts, f"member{k}")
    rows = batch(pool, files, names, chunk=2)
    assert counts == {"classifier": 2, "member1": 2}  # two chunks; member 0 never runs inside the ensemble
    assert [(r["file"], r["detector"]) for r in rows] == [(f"p{i}.jpg", n) for i in range(3) for n in names]
    got = [r for r in rows if r["detector"] == "ensemble"]
    for row, pred in zip(got, own, strict=True):
        assert row["error"] == "" and row["prob_fake"] == round(pred.prob, 4) and row["verdict"] == pred.verdict
        assert row["box"] == _box_text(pred.box)


def test_probes_with_the_same_weights_but_other_heads_share_nothing(tmp_path: Path, image: Path) -> None:
    """A probe's model.safetensors (frozen backbone) can be identical while its skops head differs."""
    import shutil

    torch.manual_seed(3)
    probe = hubdet.create_detector("probe_tiny.test")
    feats = probe.extract_features(torch.randn(16, 3, *probe.config.preprocess.input_size)).detach()
    labels = torch.arange(16) % 2
    probe.fit_head(feats, labels)
    first = probe.save_pretrained(tmp_path / "first", card=False)
    probe.fit_head(feats, 1 - labels)
    flipped = probe.save_pretrained(tmp_path / "flipped", card=False)
    ens = hubdet.create_detector("ensemble_linear.custom", members=[str(first)])
    ens_dir = ens.save_pretrained(tmp_path / "ensemble", card=False)
    same = shutil.copytree(ens_dir / "members" / "0", tmp_path / "same")
    second = shutil.copytree(same, tmp_path / "second")  # the member's files, but the other head
    shutil.copy2(flipped / "probe_head.skops", second / "probe_head.skops")
    pool = _shared_pool({"second": second, "same": same, "ensemble": ens_dir})
    assert plan_of(pool, ["second", "ensemble"]) == {}
    assert pool.weights_sha256("second") != pool.get("ensemble").member_sha256()[0]  # the digest covers the head
    assert plan_of(pool, ["same", "ensemble"]) == {"ensemble": {0: "same"}}
    comparison = compare(pool, image, ["second", "same", "ensemble"], explain_it=False)
    (own,) = pool.get("ensemble").predict([image], batch_size=1)
    assert comparison.results[2].shared_members == {"0:probe_tiny.test": "same"}
    assert comparison.results[2].prob_fake == own.prob


# ============================================================================ mask detectors


def test_a_mask_detector_shows_its_map_regions_and_share_instead_of_grad_cam(tmp_path: Path) -> None:
    from hubdet.app.config import DetectorSpec
    from hubdet.app.rendering import overlay_mask

    torch.manual_seed(0)
    det = hubdet.create_detector("mask_tiny.test")
    with torch.no_grad():
        det.decoder.head[1].bias.fill_(0.5)  # flag a good share of the pixels
    folder = det.save_pretrained(tmp_path / "mask")
    pool = DetectorPool([DetectorSpec(name="mask", path=str(folder))])
    image = photo_like(tmp_path / "p.png", size=(160, 120), fmt="PNG")
    (result,) = compare(pool, image, ["mask"]).results
    direct = pool.get("mask").predict([image])[0]
    assert result.error is None and result.predicts_masks and result.supports_boxes
    assert result.flagged_fraction == pytest.approx(float((direct.mask >= 0.5).mean()), abs=1e-4)
    assert len(result.regions) == len(direct.regions) and result.mask_image is not None
    assert result.explanation.startswith("the detector's own") and result.heatmap_image is not None
    payload = result.to_dict()
    assert payload["predicts_masks"] and payload["regions"] == result.regions
    # the overlay tints exactly the flagged pixels (here at full size, no boxes)
    mask = np.zeros((20, 30), np.float32)
    mask[5:10, 5:15] = 0.9
    tinted = np.asarray(overlay_mask(Image.new("RGB", (30, 20), (0, 0, 0)), mask))
    assert (tinted.sum(-1) > 0).sum() == 50
