"""Provenance wherever a verdict is shown: the Compare tab's panel and the ``/compare`` payload, the batch CSV, and
``hubdet evaluate`` (per-image records, counts, the ``provenance_shortcut`` flag). Signed fixtures are made here
offline with the CAI test certificate from ``../shared/data/provenance``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from hubdet._core.errors import BadImageError
from hubdet.app.batch import BATCH_COLUMNS, batch, rows_to_csv
from hubdet.app.compare import DetectorResult, agreement_summary, compare
from hubdet.app.config import DetectorSpec
from hubdet.app.pool import DetectorPool
from hubdet.app.provenance import PROVENANCE_COLUMNS, panel_markdown, pixel_conflict, read_provenance
from hubdet.cli import main
from hubdet.eval import evaluate
from hubdet.eval.provenance_audit import SHORTCUT_SHARE, audit_dataset
from hubdet.eval.results import validate_result
from hubdet.provenance import CONCLUSIONS, Provenance
from tests.test_app_service import photo_like, save_tiny_detectors

DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
A1111 = ("a lighthouse at dusk, oil painting\nNegative prompt: blurry\nSteps: 28, Sampler: DPM++ 2M Karras, "
         "CFG scale: 6.5, Seed: 1234, Size: 64x48, Model hash: 31e35c80fc, Model: sd_xl_base_1.0")
NAMES = ["classifier", "boxhead"]


# --- fixtures ------------------------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def generated(prov_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A.jpg signed here with a manifest whose ``c2pa.created`` action declares ``trainedAlgorithmicMedia``."""
    c2pa = pytest.importorskip("c2pa")
    manifest = {"claim_generator_info": [{"name": "hubdet-tests", "version": "1.0"}],
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": DST + "trainedAlgorithmicMedia",
                     "softwareAgent": {"name": "TestDiffusion", "version": "2"}}]}}]}
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
        alg=b"es256", sign_cert=(prov_dir / "es256_certs.pem").read_bytes(),
        private_key=(prov_dir / "es256_private.key").read_bytes(), ta_url=None))
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO((prov_dir / "A.jpg").read_bytes()), out)
    path = tmp_path_factory.mktemp("signed") / "generated.jpg"
    path.write_bytes(out.getvalue())
    return path


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> DetectorPool:
    folders = save_tiny_detectors(tmp_path_factory.mktemp("prov_detectors"))
    return DetectorPool([DetectorSpec(name=n, path=str(folders[n])) for n in NAMES])


def _a1111_png(path: Path, seed: int = 0, *, chunk: bool = True) -> Path:
    photo_like(path, size=(64, 48), fmt="PNG", seed=seed)
    if chunk:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", A1111)
        Image.open(path).save(path, pnginfo=info)
    return path


def _dataset(root: Path, *, fakes_with_chunks: int, n: int = 4) -> Path:
    """``real/`` JPEGs without metadata and ``fake/`` PNGs, the first ``fakes_with_chunks`` with an A1111 chunk."""
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir(parents=True)
    for i in range(n):
        photo_like(root / "real" / f"r{i}.jpg", size=(64, 48), seed=i)
        _a1111_png(root / "fake" / f"f{i}.png", seed=10 + i, chunk=i < fakes_with_chunks)
    return root


# --- the Compare tab ------------------------------------------------------------------------------------------


def test_compare_payload_carries_provenance_beside_unchanged_verdicts(pool: DetectorPool, prov_dir: Path,
                                                                      generated: Path) -> None:
    signed = compare(pool, generated, NAMES, explain_it=False, name="generated.jpg").to_dict()
    plain = compare(pool, prov_dir / "A.jpg", NAMES, explain_it=False, name="A.jpg").to_dict()
    prov = signed["provenance"]
    assert Provenance.from_dict(json.loads(json.dumps(prov))).conclusion == "declared_ai"
    assert prov["signed"] and prov["c2pa"]["validation_state"] == "Valid"
    assert "hubdet-tests" in prov["c2pa"]["claim_generator"]
    assert [c["term"] for c in prov["source_types"]] == ["trainedAlgorithmicMedia"]
    assert plain["provenance"]["conclusion"] == "no_claim" and not plain["provenance"]["c2pa"]["present"]
    # the same pixels: the manifest changes no verdict and no probability
    assert [(r["verdict"], r["prob_fake"]) for r in signed["results"]] == \
        [(r["verdict"], r["prob_fake"]) for r in plain["results"]]
    assert signed["summary"]["provenance"] == "declared_ai"
    panel = panel_markdown(prov, signed["summary"]["provenance_conflict"])
    for words in ("declared\\_ai", "C2PA Signer", "hubdet-tests", "**Valid**", "signingCredential.untrusted",
                  "trainedAlgorithmicMedia (C2PA", "signed)"):
        assert words in panel, words


def test_declared_ai_while_every_detector_says_real_is_said_explicitly(pool: DetectorPool, generated: Path) -> None:
    record = read_provenance(generated).to_dict()
    real = [DetectorResult(detector=n, prob_fake=0.1, verdict="real") for n in ("a", "b")]
    summary = agreement_summary(real, record)
    assert "every pixel detector says real" in summary["provenance_conflict"]
    assert "validated C2PA manifest declares this image generated by AI" in summary["provenance_conflict"]
    assert summary["verdicts"] == {"a": "real", "b": "real"}  # never overridden
    assert "Provenance and pixels disagree" in panel_markdown(record, summary["provenance_conflict"])
    mixed = real[:1] + [DetectorResult(detector="c", prob_fake=0.9, verdict="fake")]
    assert agreement_summary(mixed, record)["provenance_conflict"] is None
    none_judged = [DetectorResult(detector="a", verdict="cannot_judge", reason="too small")]
    assert pixel_conflict(record, [r.to_dict() for r in none_judged]) is None


def test_tampered_fixture_shows_the_failure_codes(pool: DetectorPool, prov_dir: Path) -> None:
    payload = compare(pool, prov_dir / "XCA.jpg", NAMES, explain_it=False).to_dict()
    prov = payload["provenance"]
    assert prov["conclusion"] == "invalid_claim" and not prov["signed"]
    panel = panel_markdown(prov)
    assert "assertion.dataHash.mismatch (failure)" in panel and "**Invalid**" in panel
    assert all(r["prob_fake"] is not None for r in payload["results"])


def test_garbage_and_truncated_uploads_get_a_record_not_a_crash(pool: DetectorPool, generated: Path,
                                                                tmp_path: Path) -> None:
    data = generated.read_bytes()
    uploads = {"garbage.jpg": b"\xff\xd8\xff\xeb\x00\x10JP" + bytes(range(256)) * 4,
               "truncated.jpg": data[: len(data) // 3], "text.png": b"not an image at all\n"}
    for name, content in uploads.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(BadImageError) as caught:
            compare(pool, path, NAMES, explain_it=False)
        record = caught.value.provenance
        assert record["source"] == name and record["conclusion"] in CONCLUSIONS
        assert record["conclusion"] not in ("declared_ai", "declared_capture")
        assert panel_markdown(record).startswith("### Provenance:")


def test_a_failing_reader_never_breaks_the_comparison(pool: DetectorPool, prov_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import hubdet.provenance.reader as reader

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("reader exploded")

    monkeypatch.setattr(reader, "inspect", broken)
    payload = compare(pool, prov_dir / "A.jpg", NAMES, explain_it=False).to_dict()
    assert payload["ok"] and all(r["prob_fake"] is not None for r in payload["results"])
    assert payload["provenance"]["conclusion"] == "no_claim"
    assert "reader exploded" in payload["provenance"]["errors"][0]
    assert "reader exploded" in panel_markdown(payload["provenance"])


def test_compare_api_and_panel_through_the_served_app(pool: DetectorPool, generated: Path, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    from hubdet.app.limits import AppLimits
    from hubdet.app.ui import build_demo
    from tests.test_app_server import free_port

    demo = build_demo(pool, examples=[], leaderboard_dir=tmp_path, limits=AppLimits(rate_limit=0))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        good = client.predict(handle_file(str(generated)), NAMES, False, api_name="/compare")
        assert good["ok"] and good["provenance"]["conclusion"] == "declared_ai"
        bad = tmp_path / "cut.jpg"
        bad.write_bytes(generated.read_bytes()[:2000])
        refused = client.predict(handle_file(str(bad)), NAMES, False, api_name="/compare")
        assert not refused["ok"] and refused["error"]
        assert refused["provenance"]["source"] == "cut.jpg" and refused["provenance"]["conclusion"] in CONCLUSIONS
    finally:
        demo.close()


# --- the Batch tab ---------------------------------------------------------------------------------------------


def test_batch_csv_has_the_provenance_columns(pool: DetectorPool, prov_dir: Path, generated: Path,
                                              tmp_path: Path) -> None:
    png = _a1111_png(tmp_path / "sd.png")
    text = tmp_path / "notes.jpg"
    text.write_text("plain text\n")
    rows = batch(pool, [generated, prov_dir / "A.jpg", prov_dir / "XCA.jpg", png, text], NAMES)
    assert BATCH_COLUMNS[-len(PROVENANCE_COLUMNS):] == PROVENANCE_COLUMNS
    with open(rows_to_csv(rows, tmp_path / "out.csv"), newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == BATCH_COLUMNS and len(table) == 5 * len(NAMES)
    by_file = {r["file"]: r for r in table}
    assert by_file["generated.jpg"]["provenance"] == "declared_ai"
    assert by_file["generated.jpg"]["c2pa_validation"] == "Valid: signingCredential.untrusted"
    assert by_file["generated.jpg"]["digital_source_type"].startswith("trainedAlgorithmicMedia (C2PA")
    assert by_file["A.jpg"]["provenance"] == "no_claim" and by_file["A.jpg"]["c2pa_validation"] == ""
    assert by_file["XCA.jpg"]["provenance"] == "invalid_claim"
    assert "assertion.dataHash.mismatch" in by_file["XCA.jpg"]["c2pa_validation"]
    assert "model sd_xl_base_1.0" in by_file["sd.png"]["provenance_generator"]
    assert by_file["sd.png"]["provenance"] == "declared_ai" and by_file["sd.png"]["provenance_reason"]
    assert by_file["notes.jpg"]["error"] and by_file["notes.jpg"]["provenance"] == "no_claim"
    # the verdicts are the detectors' own, whatever the metadata says
    assert {r["verdict"] for r in table if r["file"] != "notes.jpg"} <= {"real", "fake", "uncertain"}


# --- hubdet evaluate -------------------------------------------------------------------------------------------


def test_evaluate_flags_a_dataset_whose_fakes_carry_generator_chunks(tmp_path: Path) -> None:
    leaky = _dataset(tmp_path / "leaky", fakes_with_chunks=4)
    clean = _dataset(tmp_path / "clean", fakes_with_chunks=0)
    result = evaluate("classifier_tiny.test", "folder", leaky, batch_size=8)
    prov = validate_result(result, require_pinned=False).provenance
    assert prov is not None and prov.provenance_shortcut and prov.fake_tell_share == 1.0
    assert prov.checked == 8 and prov.with_claim == 4 and prov.per_conclusion == {"declared_ai": 4, "no_claim": 4}
    assert prov.per_class["fake"]["with_claim"] == 4 and prov.per_class["real"]["with_claim"] == 0
    assert sorted(f["file"] for f in prov.files) == [f"fake/f{i}.png" for i in range(4)]
    assert all(f["generators"] == ["AUTOMATIC1111"] for f in prov.files)
    assert str(int(SHORTCUT_SHARE * 100)) in prov.shortcut_rule
    plain = evaluate("classifier_tiny.test", "folder", clean, batch_size=8)["provenance"]
    assert not plain["provenance_shortcut"] and plain["with_claim"] == 0 and plain["checked"] == 8
    off = evaluate("classifier_tiny.test", "folder", clean, batch_size=8, provenance=False)
    assert off["provenance"] is None and validate_result(off, require_pinned=False).provenance is None
    # a minority of fakes with chunks is counted but not flagged
    some = evaluate("classifier_tiny.test", "folder", _dataset(tmp_path / "some", fakes_with_chunks=1),
                    batch_size=8)["provenance"]
    assert some["with_claim"] == 1 and not some["provenance_shortcut"]


def test_reencoded_data_are_audited_on_their_original_files(tmp_path: Path) -> None:
    from hubdet.eval.runner import load_eval_data

    leaky = _dataset(tmp_path / "leaky", fakes_with_chunks=4)
    ds, info = load_eval_data("folder", leaky, reencode={"format": "JPEG", "quality": 90})
    audit = audit_dataset(ds, data_dir=info.data_dir)
    assert audit["provenance_shortcut"] and audit["checked"] == 8  # the chunks the re-encoding dropped
    skipped = audit_dataset(ds)  # no way back to the originals
    assert skipped["checked"] == 0 and skipped["skipped"] == 8 and "re-encoded" in skipped["skip_reason"]
    assert not skipped["provenance_shortcut"]


def test_cli_evaluate_prints_the_provenance_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leaky = _dataset(tmp_path / "leaky", fakes_with_chunks=3)
    out = tmp_path / "res.json"
    assert main(["evaluate", "--model", "classifier_tiny.test", "--source", f"folder:{leaky}",
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "provenance: 3 of 8 image(s) carry a claim (fake 3/4, real 0/4" in text and "PROVENANCE SHORTCUT" in text
    assert json.loads(out.read_text())["provenance"]["provenance_shortcut"]
    assert main(["evaluate", "--model", "classifier_tiny.test", "--source", f"folder:{leaky}",
                 "--output", str(out), "--no-provenance"]) == 0
    assert "provenance" not in capsys.readouterr().out.split("images/s")[-1]
    assert json.loads(out.read_text())["provenance"] is None
