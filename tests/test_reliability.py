"""Reliability: a table of bad inputs run through every interface, and the app's limits and API defaults.

:data:`CASES` is the table. Each case goes through the CLI (``hubdet predict``), the Python API
(``Detector.predict``), the app's API (``/compare`` and ``/batch`` through ``gradio_client`` against a real server)
and a data builder (the ``folder`` source), always beside good images: each interface must give the case's message
(a note for images it normalises, "cannot judge" and the reason for images a detector cannot judge, an error for
files it cannot read) AND still score the good items of the same batch. Tampered weights are the integrity checks'
rows (:data:`WEIGHT_CASES`, filled where those checks live).

One app server serves the whole module; every test talks to it as its own client (``X-Forwarded-For``), so the
per-client rate limit is tested without slowing the rest.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import hubdet
from hubdet._core.errors import BadImageError
from hubdet.app.config import DetectorSpec
from hubdet.app.limits import HEAVY, AppLimits, RateLimiter, check_upload_size, parse_bytes
from hubdet.app.pool import AppInputError, DetectorPool
from hubdet.cli import main
from hubdet.data import load_source
from hubdet.data.imageio import open_image
from hubdet.data.policy import DATA_POLICY, InputPolicy
from tests.test_app_server import free_port
from tests.test_app_service import photo_like, save_tiny_detectors

APP_NAMES = ["classifier", "boxhead", "ensemble"]


# ============================================================================ the table of bad inputs


def _save(img: Image.Image, path: Path, **kw: Any) -> Path:
    img.save(path, **kw)
    return path


def _tiff(path: Path, arr: np.ndarray) -> Path:
    """A baseline little-endian TIFF of ``arr`` (HxW or HxWxC; uint, int or float samples), written by hand: Pillow
    cannot write floating-point RGB."""
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    spp = 1 if arr.ndim == 2 else arr.shape[2]
    data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    per_sample = struct.pack("<" + "H" * spp, *[arr.dtype.itemsize * 8] * spp)
    fmt = struct.pack("<" + "H" * spp, *[{"u": 1, "i": 2, "f": 3}[arr.dtype.kind]] * spp)
    data_at = 8
    bits_at = data_at + len(data)
    fmt_at = bits_at + len(per_sample)
    ifd_at = fmt_at + len(fmt)
    short = lambda tag, value: struct.pack("<HHIHH", tag, 3, 1, value, 0)  # noqa: E731
    long_ = lambda tag, value: struct.pack("<HHII", tag, 4, 1, value)  # noqa: E731
    entries = [long_(256, w), long_(257, h),
               struct.pack("<HHII", 258, 3, spp, bits_at) if spp > 2 else struct.pack("<HHIHH", 258, 3, spp, *(
                   [arr.dtype.itemsize * 8] * spp + [0] * (2 - spp))),
               short(259, 1), short(262, 2 if spp >= 3 else 1), long_(273, data_at), short(277, spp),
               long_(278, h), long_(279, len(data)), short(284, 1),
               struct.pack("<HHII", 339, 3, spp, fmt_at) if spp > 2 else struct.pack("<HHIHH", 339, 3, spp, *(
                   [{"u": 1, "i": 2, "f": 3}[arr.dtype.kind]] * spp + [0] * (2 - spp)))]
    out = b"II*\0" + struct.pack("<I", ifd_at) + data + per_sample + fmt
    out += struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    path.write_bytes(out)
    return path


def _palette_alpha(path: Path) -> Path:
    """A palette PNG whose palette entries carry alpha (a ``tRNS`` chunk)."""
    base = Image.open(photo_like(path.with_suffix(".base.png"), fmt="PNG")).convert("RGBA")
    base.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, base.width, dtype=np.uint8), (base.height, 1))))
    return _save(base.quantize(64), path)


def _animated(path: Path) -> Path:
    base = Image.open(photo_like(path.with_suffix(".base.png"), fmt="PNG")).convert("RGB")
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), base.rotate(180)]
    return _save(frames[0], path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _truncated(path: Path) -> Path:
    data = photo_like(path.with_suffix(".whole.jpg")).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _gradient(w: int, h: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, w * h, dtype=np.float32).reshape(h, w)


@dataclass(frozen=True)
class Case:
    """One bad input: how to write it, what every interface must answer and the words its message contains.

    ``outcome``: ``"scored"`` (normalised and scored, with a note), ``"cannot_judge"`` (no verdict, the reason),
    ``"error"`` (the file cannot be read). ``app_message``: what the app says instead (its own, lower pixel cap);
    ``library=False``: the app refuses it but the library accepts it (within the 67 MP decoder budget), so it runs
    through the app only.
    """

    kind: str
    make: Callable[[Path], Path]
    outcome: str
    message: str
    app_message: str | None = None
    library: bool = True


CASES = [
    Case("1x1", lambda d: _save(Image.new("RGB", (1, 1), (200, 30, 30)), d / "one.png"), "cannot_judge", "too small"),
    Case("2x3", lambda d: _save(Image.new("RGB", (2, 3), (30, 200, 30)), d / "two_by_three.png"), "cannot_judge",
         "too small"),
    Case("20000x3", lambda d: _save(Image.new("RGB", (20000, 3), (30, 30, 200)), d / "strip.png"), "cannot_judge",
         "too small"),
    Case("huge_aspect_2000x40", lambda d: _save(Image.fromarray(
        (np.random.default_rng(0).random((40, 2000, 3)) * 255).astype(np.uint8)), d / "banner.png"),
        "cannot_judge", "extreme aspect ratio"),
    Case("float_tiff_0_1", lambda d: _save(Image.fromarray(_gradient(96, 72), "F"), d / "float01.tif"), "scored",
         "floating-point samples in [0, 1] scaled"),
    Case("float_tiff_out_of_range", lambda d: _save(Image.fromarray(_gradient(96, 72) * 4 - 1, "F"),
                                                    d / "float_range.tif"), "cannot_judge",
         "unsupported sample format"),
    Case("float_rgb_tiff", lambda d: _tiff(d / "float_rgb.tif", np.stack([_gradient(96, 72)] * 3, -1)),
         "cannot_judge", "unsupported sample format: TIFF with 3 sample(s) per pixel of 32-bit floating-point"),
    Case("16bit_png", lambda d: _save(Image.fromarray((_gradient(96, 72) * 65535).astype(np.uint16)),
                                      d / "gray16.png"), "scored", "16-bit samples scaled to 8 bits"),
    Case("palette_alpha_png", lambda d: _palette_alpha(d / "palette_alpha.png"), "scored", "composited on white"),
    Case("cmyk_jpeg", lambda d: _save(Image.open(photo_like(d / "c.base.png", fmt="PNG")).convert("CMYK"),
                                      d / "cmyk.jpg"), "scored", "mode CMYK"),
    Case("animated_gif", lambda d: _animated(d / "animated.gif"), "scored", "3 frames: only the first frame"),
    Case("truncated_jpeg", lambda d: _truncated(d / "truncated.jpg"), "error", "truncated"),
    Case("empty_file", lambda d: _save_bytes(d / "empty.png", b""), "error", "empty"),
    Case("non_image", lambda d: _save_bytes(d / "notes.jpg", b"plain text, not an image\n"), "error", "not an image"),
    Case("bomb_10000x10000", lambda d: _save(Image.new("1", (10000, 10000)), d / "bomb.png"), "error",
         "decompression bomb", app_message="this app's limit"),
    Case("png_8192x8192_8kb", lambda d: _save(Image.new("1", (8192, 8192)), d / "big8192.png"), "error",
         "this app's limit", library=False),
]
CASE_IDS = [c.kind for c in CASES]
LIBRARY_CASES = [c for c in CASES if c.library]


def _save_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


#: Tampered-weight rows (the integrity checks add them where they live): name -> (damage a saved checkpoint folder,
#: words the refusal must contain).
WEIGHT_CASES: dict[str, tuple[Callable[[Path], None], str]] = {}


def _goods(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return photo_like(folder / "good_a.jpg", seed=1), photo_like(folder / "good_b.png", fmt="PNG", seed=2)


# ============================================================================ fixtures


@pytest.fixture(scope="module")
def detectors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_tiny_detectors(tmp_path_factory.mktemp("reliability_detectors"))


@pytest.fixture(scope="module")
def classifier(detectors: dict[str, Path]) -> Any:
    return hubdet.from_pretrained(detectors["classifier"])


LIMITS = AppLimits(max_upload_bytes=2 * 2**20, rate_limit=12, rate_window=600.0, heavy_jobs=2, max_queue=16)


@pytest.fixture(scope="module")
def server(detectors: dict[str, Path]) -> Iterator[tuple[str, Any]]:
    from hubdet.app.ui import build_demo

    pool = DetectorPool([DetectorSpec(name=n, path=str(detectors[n])) for n in APP_NAMES])
    demo = build_demo(pool, examples=None, leaderboard_dir=detectors["classifier"].parent / "no_leaderboard",
                      limits=LIMITS)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                max_file_size=LIMITS.max_upload_bytes)
    try:
        yield f"http://127.0.0.1:{port}/", demo
    finally:
        demo.close()


_CLIENTS = iter(range(1, 60_000))


def client(server: tuple[str, Any]) -> Any:
    """A ``gradio_client`` that the app sees as a new client (its own ``X-Forwarded-For``: its own rate budget)."""
    from gradio_client import Client

    n = next(_CLIENTS)
    return Client(server[0], verbose=False, headers={"X-Forwarded-For": f"10.9.{n // 250}.{n % 250}"})


# ============================================================================ the table, interface by interface


def _assert_message(text: str | None, case: Case, *, app: bool = False) -> None:
    expected = (case.app_message or case.message) if app else case.message
    assert text is not None and expected in text, f"{case.kind}: {expected!r} not in {text!r}"


@pytest.mark.parametrize("case", LIBRARY_CASES, ids=[c.kind for c in LIBRARY_CASES])
def test_python_api_answers_each_case_and_scores_the_good_images(case: Case, classifier: Any, tmp_path: Path) -> None:
    good_a, good_b = _goods(tmp_path)
    bad = case.make(tmp_path)
    first, middle, last = classifier.predict([good_a, bad, good_b], batch_size=3)
    for good in (first, last):
        assert good.judged and 0.0 <= good.prob <= 1.0 and good.verdict in {"real", "fake", "uncertain"}
    if case.outcome == "scored":
        assert middle.judged and 0.0 <= middle.prob <= 1.0
        _assert_message(" | ".join(middle.notes), case)
    else:  # cannot judge, or cannot read: never a verdict, always the reason (naming the file when unreadable)
        assert middle.verdict == "cannot_judge" and middle.prob is None and middle.logit is None
        _assert_message(middle.reason, case)
        if case.outcome == "error":
            assert bad.name in middle.reason
    if case.kind == "float_tiff_0_1":  # scaled, not turned black
        assert np.asarray(open_image(bad)[0]).mean() > 100


@pytest.mark.parametrize("case", LIBRARY_CASES, ids=[c.kind for c in LIBRARY_CASES])
def test_cli_answers_each_case_and_scores_the_good_images(case: Case, detectors: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    good_a, good_b = _goods(tmp_path)
    bad = case.make(tmp_path)
    status = main(["predict", str(good_a), str(bad), str(good_b), "--model", str(detectors["classifier"]), "--json"])
    out, err = capsys.readouterr()
    rows = {Path(r["file"]).name: r for r in json.loads(out)}
    assert status == (0 if case.outcome == "scored" else 1)
    for good in (good_a, good_b):
        assert 0.0 <= rows[good.name]["prob_fake"] <= 1.0
    row = rows[bad.name]
    if case.outcome == "scored":
        assert 0.0 <= row["prob_fake"] <= 1.0
        _assert_message(" | ".join(row.get("notes", [])), case)
    elif case.outcome == "cannot_judge":
        assert row["verdict"] == "cannot_judge" and row["prob_fake"] is None
        _assert_message(row["reason"], case)
    else:
        _assert_message(row["error"], case)
    _assert_message(err, case)  # stderr says it too, with the file's name
    assert bad.name in err


def test_cli_says_only_the_first_frame_was_scored(detectors: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    gif = _animated(tmp_path / "animated.gif")
    assert main(["predict", str(gif), "--model", str(detectors["classifier"])]) == 0
    out, err = capsys.readouterr()
    assert "animated image with 3 frames: only the first frame was scored" in err
    assert gif.name in out.splitlines()[1] and "cannot_judge" not in out


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_app_api_answers_each_case_and_scores_the_good_images(case: Case, server: tuple[str, Any],
                                                              tmp_path: Path) -> None:
    from gradio_client import handle_file

    good_a, good_b = _goods(tmp_path)
    bad = case.make(tmp_path)
    app = client(server)
    table, _csv, note = app.predict([handle_file(str(p)) for p in (good_a, bad, good_b)], ["classifier", "boxhead"],
                                    api_name="/batch")
    rows = [dict(zip(table["headers"], row, strict=True)) for row in table["data"]]
    assert [r["file"] for r in rows] == [p.name for p in (good_a, bad, good_b) for _ in range(2)]
    for r in rows:
        if r["file"] != bad.name:
            assert r["error"] == "" and 0.0 <= r["prob_fake"] <= 1.0
    bad_rows = [r for r in rows if r["file"] == bad.name]
    if case.outcome == "scored":
        assert all(r["error"] == "" and 0.0 <= r["prob_fake"] <= 1.0 for r in bad_rows)
    else:
        for r in bad_rows:
            assert r["prob_fake"] is None
            _assert_message(r["error"], case, app=True)
            assert (r["verdict"] == "cannot_judge") == (case.outcome == "cannot_judge")
    payload = app.predict(handle_file(str(bad)), api_name="/compare")  # omitted arguments: the defaults
    if case.outcome == "error":
        assert payload["ok"] is False and payload["results"] == [] and bad.name in payload["error"]
        _assert_message(payload["error"], case, app=True)
        return
    assert payload["ok"] and [r["detector"] for r in payload["results"]] == APP_NAMES
    if case.outcome == "scored":
        assert all(r["error"] is None and 0.0 <= r["prob_fake"] <= 1.0 for r in payload["results"])
        _assert_message(" | ".join(payload["image"]["notes"]), case, app=True)
    else:  # every tiny detector refuses these: each says so, with its reason, and the summary too
        for r in payload["results"]:
            assert r["verdict"] == "cannot_judge" and r["prob_fake"] is None and r["error"] is None
            _assert_message(r["reason"], case, app=True)
        assert set(payload["summary"]["cannot_judge"]) == set(APP_NAMES)
        assert "No detector can judge this image" in payload["summary"]["text"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, str], dict[str, Path]]:
    """The ``folder`` source over good images and every library case (as fakes): the dataset and its report."""
    root = tmp_path_factory.mktemp("reliability_data") / "data"
    goods = [*_goods(root / "real"), *_goods(root / "fake" / "good")]
    made = {}
    for case in LIBRARY_CASES:
        folder = root / "fake" / case.kind
        folder.mkdir(parents=True)
        made[case.kind] = case.make(folder)
    ds = load_source("folder", root, cache_dir=tmp_path_factory.mktemp("reliability_cache"))["train"]
    skipped = {Path(p).name: reason for p, reason in ds.report.skipped}
    return ds, skipped, {"goods": goods, **made}


@pytest.mark.parametrize("case", LIBRARY_CASES, ids=[c.kind for c in LIBRARY_CASES])
def test_data_builder_answers_each_case_and_keeps_the_good_images(
        case: Case, built: tuple[Any, dict[str, str], dict[str, Path]]) -> None:
    ds, skipped, made = built
    files = set(ds["file"])
    assert all(any(f.endswith(f"{p.parent.name}/{p.name}") for f in files) for p in made["goods"])
    bad = made[case.kind]
    if case.outcome == "scored":
        assert any(f.endswith(f"{case.kind}/{bad.name}") for f in files) and bad.name not in skipped
    else:  # reported with its reason, never silently dropped
        assert not any(f.endswith(f"{case.kind}/{bad.name}") for f in files)
        _assert_message(skipped[bad.name], case)


def test_folder_without_images_everywhere(classifier: Any, detectors: dict[str, Path], server: tuple[str, Any],
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    (empty / "real").mkdir(parents=True)
    (empty / "real" / "README.txt").write_text("no images here\n")
    assert main(["predict", str(empty), "--model", str(detectors["classifier"])]) == 2  # CLI: an error, not []
    err = capsys.readouterr().err
    assert str(empty) in err and "folder holds no image files" in err and "1 other file" in err
    (pred,) = classifier.predict(empty)  # Python API: the folder is not an image
    assert pred.verdict == "cannot_judge" and "is a directory" in pred.reason
    table, csv_file, note = client(server).predict([], None, api_name="/batch")  # the app: nothing uploaded
    assert table["data"] == [] and csv_file is None and "upload one or more images" in note
    with pytest.raises(FileNotFoundError, match="no images found"):  # the builder: a layout error naming the folder
        load_source("folder", empty, cache_dir=tmp_path / "cache")


def test_cli_reports_unsupported_files_in_a_folder_and_scores_the_rest(detectors: dict[str, Path], tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    good_a, good_b = _goods(tmp_path / "mixed")
    (tmp_path / "mixed" / "notes.txt").write_text("not an image\n")
    _truncated(tmp_path / "mixed" / "broken.jpg")
    assert main(["predict", str(tmp_path / "mixed"), "--model", str(detectors["classifier"]), "--json"]) == 1
    out, err = capsys.readouterr()
    rows = {Path(r["file"]).name: r for r in json.loads(out)}
    assert 0 <= rows[good_a.name]["prob_fake"] <= 1 and 0 <= rows[good_b.name]["prob_fake"] <= 1
    assert "not an image file (extension '.txt')" in rows["notes.txt"]["error"] and "notes.txt" in err
    assert "truncated" in rows["broken.jpg"]["error"]


@pytest.mark.parametrize("name", sorted(WEIGHT_CASES) or [
    pytest.param("tampered weights", marks=pytest.mark.skip(reason="rows come with the checkpoint integrity checks"))])
def test_tampered_weights_are_refused_with_the_file_named(name: str, detectors: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    damage, message = WEIGHT_CASES[name]
    folder = Path(shutil.copytree(detectors["classifier"], tmp_path / "tampered"))
    damage(folder)
    assert main(["predict", str(photo_like(tmp_path / "p.jpg")), "--model", str(folder)]) == 2
    assert message in capsys.readouterr().err


# ============================================================================ what each detector can judge


def test_policies_follow_the_preprocessing() -> None:
    crop = hubdet.create_detector("classifier_tiny.test", preprocess={"resize": "center_crop"})
    # a 32 crop at native resolution: images down to half the crop are enlarged (at most 2x), smaller ones refused
    assert crop.input_policy().min_width == 16 and crop.cannot_judge_reason(16, 40) is None
    assert "crop at native resolution" in crop.cannot_judge_reason(15, 40)
    squash = hubdet.create_detector("classifier_tiny.test")
    assert squash.cannot_judge_reason(8, 8) is None and squash.cannot_judge_reason(7, 8).startswith("too small")
    assert squash.cannot_judge_reason(170, 40).startswith("extreme aspect ratio")  # 4.25:1 squashed to 1:1
    tiles = hubdet.create_detector("boxhead_tiny.test", max_tiles=4)
    assert tiles.cannot_judge_reason(16, 16) is None and tiles.cannot_judge_reason(15, 40).startswith("too small")
    # 4 tiles of 32 at most: a 16x400 strip would shrink under half a tile, though its ratio is under 32:1
    assert "shrink it" in tiles.cannot_judge_reason(400, 16)
    ensemble = hubdet.create_detector("ensemble_tiny.test")
    assert ensemble.input_policy().min_width == 16 and ensemble.input_policy().max_aspect == 4
    reason = ensemble.cannot_judge_reason(12, 12)
    assert reason.startswith("too small") and "ensemble member 1" in reason
    for name in hubdet.list_detectors():  # never less strict than the builders' floor
        policy = hubdet.create_detector(name).input_policy() if name.endswith(".test") else None
        if policy is not None:
            assert policy.min_width >= DATA_POLICY.min_width and policy.max_aspect <= DATA_POLICY.max_aspect


def test_input_policy_reasons() -> None:
    policy = InputPolicy(10, 12, 3.0, "a reason")
    assert policy.refusal(10, 12) is None
    assert policy.refusal(9, 20) == "too small: the image is 9x20 pixels, at least 10x12 are needed (a reason)"
    assert policy.refusal(40, 12).startswith("extreme aspect ratio: the image is 40x12 pixels (3.33:1)")
    both = policy.strictest(InputPolicy(20, 5, 2.0, "another"))
    assert (both.min_width, both.min_height, both.max_aspect) == (20, 12, 2.0) and "another" in both.describe()


def test_decoder_pixel_limit_is_hubdets_own(tmp_path: Path) -> None:
    bomb = _save(Image.new("1", (12000, 12000)), tmp_path / "bomb.png")  # over Pillow's own 179 MP error too
    with pytest.raises(BadImageError) as info:
        open_image(bomb)
    assert "over hubdet's decoding limit (HUBDET_MAX_PIXELS) of 67.1 MP (8192x8192)" in str(info.value)
    assert "12000x12000" in str(info.value) and "Pillow" not in str(info.value)


def test_evaluation_counts_images_it_cannot_judge_and_does_not_score_them(tmp_path: Path) -> None:
    from tests.plugins.images import make_image

    for i in range(3):
        make_image(tmp_path / "d" / "real" / f"r{i}.png", (40, 40), "gradient", seed=i)
        make_image(tmp_path / "d" / "fake" / f"f{i}.png", (40, 40), "noise", seed=i)
    make_image(tmp_path / "d" / "fake" / "small.png", (10, 10), "noise")  # a usable example, under half a tile
    result = hubdet.evaluate("boxhead_tiny.test", "folder", tmp_path / "d", batch_size=4)
    assert result["dataset"]["n_images"] == 6 and result["timing"]["n_forward"] == 6
    (row,) = result["cannot_judge"]["clean"]["files"]
    assert result["cannot_judge"]["clean"]["count"] == 1 and row["file"].endswith("small.png")
    assert row["reason"].startswith("too small: the image is 10x10")


# ============================================================================ explanations


def test_probe_cam_splits_the_logit_exactly_over_positions(tmp_path: Path) -> None:
    from hubdet.models.explain import explain, spatial_features

    torch.manual_seed(0)
    probe = hubdet.create_detector("probe_tiny.test", backbone="test_resnet", backbone_kwargs={}).eval()
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, probe.num_features)).astype(np.float32)
    probe.fit_head(feats, np.arange(40) % 2)
    w, b = probe.affine_head()
    img = Image.open(photo_like(tmp_path / "probe.png", fmt="PNG")).convert("RGB")
    x = probe.batch_transform([img])
    with torch.no_grad():
        fmap = spatial_features(probe.backbone, x)
        per_position = torch.einsum("c,chw->hw", w, fmap)
        logit = probe.head_logits(probe.extract_features(x))[0]
    assert float(per_position.mean() + b) == pytest.approx(float(logit), rel=1e-4, abs=1e-4)
    heat, method = explain(probe, img)
    assert method.startswith("class activation map") and heat.shape == (img.height, img.width)
    peak = 1.0 if float(per_position.max()) > 0 else 0.0  # scaled to the strongest evidence for fake, if any
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(peak, abs=0.05)


def test_probe_affine_head_is_read_in_blocks() -> None:
    """The head's weights are probed 256 identity rows at a time (a whole identity over 9,216 CLIP features is
    680 MB)."""
    torch.manual_seed(0)
    probe = hubdet.create_detector("probe_tiny.test", backbone="test_resnet", backbone_kwargs={}).eval()
    rng = np.random.default_rng(0)
    n = probe.num_features
    probe.fit_head(rng.normal(size=(40, n)).astype(np.float32), np.arange(40) % 2)
    w, b = probe.affine_head()
    decide = probe._head.decision_function
    full = np.asarray(decide(np.vstack([np.zeros((1, n)), np.eye(n)])), dtype=np.float64)
    assert np.allclose(w.numpy(), (full[1:] - full[0]).astype(np.float32), rtol=1e-6, atol=1e-9)
    assert b == pytest.approx(float(full[0]))


def test_foundation_probe_explains_by_token_gradient_x_activation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    """A probe on a foundation tower is explained by gradient x activation of its patch tokens under the affine
    head (one backward pass, not occlusion's 26 forward passes): a map over the image, zero outside what the
    detector sees, the same with the feature cache on (whose tensors have no gradient)."""
    from hubdet.models.explain import explain

    torch.manual_seed(0)
    probe = hubdet.create_detector("probe_clip_tiny.test", pretrained=True,
                                   preprocess={"resize": "center_crop"}).eval()
    rng = np.random.default_rng(0)
    probe.fit_head(rng.normal(size=(16, probe.num_features)).astype(np.float32), [0, 1] * 8)
    img = Image.open(photo_like(tmp_path / "clip.png", size=(96, 64), fmt="PNG")).convert("RGB")
    heat, method = explain(probe, img)
    assert method.startswith("token gradient x activation") and "block" in method
    assert heat.shape == (64, 96) and heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    outside = heat.copy()
    outside[16:48, 32:64] = 0  # the 32x32 centre crop the tiny tower sees
    assert outside.max() == 0.0
    monkeypatch.setenv("HUBDET_FEATURE_CACHE", str(tmp_path / "features"))
    probe.predict([img])  # fills the cache
    cached, _ = explain(probe, img)
    assert np.allclose(cached, heat, atol=1e-6)


# ============================================================================ the app's limits and API behaviour


def test_api_defaults_for_omitted_and_null_arguments(server: tuple[str, Any], tmp_path: Path) -> None:
    from gradio_client import handle_file

    app = client(server)
    image = handle_file(str(photo_like(tmp_path / "p.jpg")))
    for payload in (app.predict(image, api_name="/compare"), app.predict(image, None, None, api_name="/compare")):
        assert payload["ok"] and [r["detector"] for r in payload["results"]] == APP_NAMES  # the default detectors
        assert all(r["explanation"] == "" and r["explanation_seconds"] is None for r in payload["results"])  # off
    explained = app.predict(image, ["classifier", "boxhead"], True, api_name="/compare")
    assert all(r["explanation"] for r in explained["results"])
    table, _, note = app.predict([image], None, api_name="/batch")  # null: every detector
    assert sorted({row[1] for row in table["data"]}) == sorted(APP_NAMES) and "3 detector(s)" in note
    unknown = app.predict(image, ["classifier", "nope"], api_name="/compare")
    assert unknown["ok"] is False and "unknown detector 'nope'" in unknown["error"]


def test_api_parameters_document_the_defaults(server: tuple[str, Any]) -> None:
    info = client(server).view_api(print_info=False, return_format="dict")["named_endpoints"]["/compare"]
    params = {p["parameter_name"]: p for p in info["parameters"]}
    assert params["chosen"]["parameter_default"] == APP_NAMES and params["explain_it"]["parameter_default"] is False


def test_per_client_rate_limit_is_a_message(server: tuple[str, Any], tmp_path: Path) -> None:
    from gradio_client import handle_file

    app = client(server)
    image = handle_file(str(photo_like(tmp_path / "p.jpg")))
    answers = [app.predict(image, ["nope"], api_name="/compare") for _ in range(LIMITS.rate_limit + 1)]
    assert all("unknown detector" in a["error"] for a in answers[:-1])  # counted, refused for their own reason
    assert "rate limit: at most 12 analyses per 600 s per client" in answers[-1]["error"]
    other = client(server).predict(image, ["classifier", "boxhead"], api_name="/compare")  # other clients go on
    assert other["ok"]


def test_upload_over_the_byte_limit_is_refused_with_a_message(server: tuple[str, Any], tmp_path: Path) -> None:
    from gradio_client import handle_file

    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + bytes(3 * 2**20))
    with pytest.raises(ValueError, match="maximum file size"):
        client(server).predict(handle_file(str(big)), api_name="/compare")
    with pytest.raises(AppInputError, match="over this app's upload limit of 2 MiB"):
        check_upload_size(big, LIMITS)  # the handlers' own check (files that reach them by other routes)


def test_heavy_endpoints_share_one_bounded_queue(server: tuple[str, Any]) -> None:
    demo = server[1]
    heavy = [fn for fn in demo.fns.values() if fn.concurrency_id == HEAVY]
    assert {fn.api_name for fn in heavy} >= {"compare", "batch"} and len(heavy) >= 3  # + the UI's compare
    assert all(fn.concurrency_limit == LIMITS.heavy_jobs for fn in heavy)
    assert demo._queue.max_size == LIMITS.max_queue


def test_rate_limiter_and_sizes() -> None:
    limiter = RateLimiter(2, 60.0)
    assert limiter.refusal("a") is None and limiter.refusal("a") is None
    assert "try again in" in limiter.refusal("a") and limiter.refusal("b") is None
    assert RateLimiter(0, 60.0).refusal("a") is None
    assert parse_bytes("25mb") == 25 * 2**20 and parse_bytes("512 KB") == 512 * 2**10 and parse_bytes(10) == 10
    with pytest.raises(ValueError, match="size"):
        parse_bytes("lots")
    assert AppLimits.from_env(rate_limit=None, max_pixels=100).max_pixels == 100


def test_app_refuses_large_images_before_decoding(tmp_path: Path) -> None:
    from hubdet.app.uploads import decode_upload

    path = _save(Image.new("1", (8192, 8192)), tmp_path / "big.png")
    assert path.stat().st_size < 16 * 1024
    with pytest.raises(BadImageError) as info:
        decode_upload(path, max_pixels=AppLimits().max_pixels)
    assert "8192x8192 pixels (67.1 MP), over this app's limit of 16.8 MP (4096x4096)" in str(info.value)



def test_copymove_luma_in_bands_is_bit_identical() -> None:
    from hubdet.models.preprocessing import to_tensor

    det = hubdet.create_detector("copymove_tiny.test")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (301, 97, 3), dtype=np.uint8))
    whole = det._luma(to_tensor(img, det.config.preprocess))
    assert np.array_equal(det.image_luma(img, band=64), whole) and det.image_luma(img).dtype == whole.dtype
