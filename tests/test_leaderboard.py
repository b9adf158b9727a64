"""Result validation (malformed files named with their problem), the ranked table, the CLI and the Hub push."""

from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from hubdet.cli import main
from hubdet.eval.leaderboard import (
    leaderboard_dataframe,
    leaderboard_table,
    load_results,
    make_request,
    model_path,
    perturbations_of,
    render_table,
    sources_of,
    stage_submission,
)
from hubdet.eval.metric_table import Records
from hubdet.eval.results import DatasetInfo, ModelInfo, ResultError
from hubdet.eval.robustness import resolve_perturbations
from hubdet.eval.runner import build_result
from tests.plugins.hub import run_with_hub


def make_result(model: str, quality: float, *, source: str = "folder", sha: str | None = None,
                kind: str = "folder", revision: str | None = None) -> dict:
    """A real result built by the runner from synthetic scores: ``quality`` separates the classes."""
    stable = zlib.crc32(model.encode())  # not hash(): str hashing is salted per process, so the data would change
    rng = np.random.default_rng(stable)
    labels = [0] * 20 + [1] * 20
    perts = resolve_perturbations(["blur_s1"])
    records = {}
    for p, q in zip(perts, (quality, quality / 2), strict=True):
        probs = np.clip(np.array(labels) * q + rng.random(40) * (1 - q), 0, 1)
        records[p.name] = Records.from_rows(
            [{"files": f"f{i}", "labels": y, "probs": pr, "generators": "gen" if y else "natural", "sources": source}
             for i, (y, pr) in enumerate(zip(labels, probs, strict=True))], seconds=0.5)
    info = ModelInfo(id=model, kind=kind, name="tiny", family="classifier", revision=revision,
                     weights_sha256=sha or (format(stable, "x") * 16)[:64].ljust(64, "0"))
    data = DatasetInfo(name=source, split="test", data_dir="/data", fingerprint="fp01")
    return build_result(records, perts, model=info, dataset=data, kinds=("binary",), batch_size=8, device="cpu")


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    write(tmp_path / "res" / "a.json", make_result("models/good", 0.6))
    write(tmp_path / "res" / "b.json", make_result("models/weak", 0.1))
    write(tmp_path / "res" / "sub" / "c.json", [make_result("models/mid", 0.3),
                                                make_result("models/mid", 0.3, source="other")])
    write(tmp_path / "res" / "requests" / "x_eval_request.json", {"status": "PENDING"})  # not a result
    return tmp_path / "res"


def test_table_from_several_files_is_ranked(results_dir):
    results = load_results(results_dir)
    assert len(results) == 4 and all(r["_meta"]["pinned"] for r in results)
    rows = leaderboard_table(results, source="folder")
    assert [r["model"] for r in rows] == ["models/good", "models/mid", "models/weak"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["value"] == rows[0]["roc_auc"] == max(r["roc_auc"] for r in rows)
    assert rows[0]["mean_drop"] == pytest.approx(results[0]["perturbations"]["blur_s1"]["drop"]["roc_auc"])
    # lower-is-better metrics rank ascending
    eer_rows = leaderboard_table(results, "eer", source="folder")
    assert [r["eer"] for r in eer_rows] == sorted(r["eer"] for r in eer_rows)
    # a perturbation's metrics; filters for the app
    blur = leaderboard_table(results, perturbation="blur_s1")
    assert len(blur) == 4 and all(r["perturbation"] == "blur_s1" for r in blur)
    assert leaderboard_table(results, perturbation="jpeg_q50") == []
    assert perturbations_of(results) == ["clean", "blur_s1"] and sources_of(results) == ["folder", "other"]
    df = leaderboard_dataframe(results, source=["other"])
    assert list(df["model"]) == ["models/mid"]
    with pytest.raises(KeyError, match="roc_auc"):
        leaderboard_table(results, "roc_aux")


def test_render_markdown_and_csv(results_dir):
    rows = leaderboard_table(load_results(results_dir), source="folder")
    md = render_table(rows, "markdown")
    assert md.splitlines()[0].startswith("| rank | model |") and "roc_auc (ranked)" in md
    assert len(md.strip().splitlines()) == 2 + 3
    csv_text = render_table(rows, "csv")
    assert csv_text.splitlines()[1].startswith("1,models/good,")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.pop("model"), r"missing required field\(s\) \['model'\]"),
        (lambda r: r.update(protocol_version=0), "protocol_version 0 is not supported"),
        (lambda r: r.update(extra_field=1), "unknown key.*extra_field"),
        (lambda r: r["timing"].update(seconds="fast"), "timing.seconds: expected a number"),
        (lambda r: r["model"].update(weights_sha256=None), "unpinned revision.*no weights_sha256"),
        (lambda r: r["model"].update(kind="hub", revision="main"), "unpinned revision.*without a commit revision"),
        (lambda r: r["dataset"].update(fingerprint=None), "unpinned revision.*has no fingerprint"),
        (lambda r: r.update(primary_metric="mean_iou"), "primary_metric 'mean_iou' is not among the metrics"),
    ],
)
def test_malformed_results_are_rejected_with_the_problem(tmp_path, mutate, message):
    good = make_result("models/good", 0.6)
    bad = copy.deepcopy(good)
    mutate(bad)
    path = write(tmp_path / "bad.json", bad)
    with pytest.raises(ResultError, match=message) as err:
        load_results(path)
    assert str(path) in str(err.value)


def test_invalid_json_and_duplicates(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ResultError, match="x.json: not a readable JSON"):
        load_results(tmp_path / "x.json")
    r = make_result("models/good", 0.6)
    a, b = write(tmp_path / "d" / "a.json", r), write(tmp_path / "d" / "b.json", r)
    with pytest.raises(ResultError, match="b.json: duplicate result: .*a.json"):
        load_results([a, b])
    clean_only = copy.deepcopy(r)
    clean_only["perturbations"] = {}  # another run of the same weights on the same data: still a duplicate
    c = write(tmp_path / "d2" / "c.json", clean_only)
    with pytest.raises(ResultError, match="c.json: duplicate result"):
        load_results([a, c])
    other_split = copy.deepcopy(r)
    other_split["dataset"]["split"] = "validation"
    assert len(load_results([a, write(tmp_path / "d2" / "v.json", other_split)])) == 2
    with pytest.raises(FileNotFoundError, match="nope"):
        load_results(tmp_path / "nope.json")


def test_unpinned_results_can_be_kept_flagged(tmp_path):
    r = make_result("tiny.test", 0.6, kind="registry")
    r["model"]["random_init"] = True
    path = write(tmp_path / "u.json", r)
    with pytest.raises(ResultError, match="random initialisation"):
        load_results(path)
    kept = load_results(path, allow_unpinned=True)
    assert kept[0]["_meta"]["pinned"] is False
    assert leaderboard_table(kept)[0]["pinned"] is False


def test_cli_leaderboard(results_dir, tmp_path, capsys):
    assert main(["leaderboard", str(results_dir), "--source", "folder", "--metric", "f1"]) == 0
    out = capsys.readouterr().out
    assert "Ranked by f1 on clean data (3 of 4 results)" in out and "f1 (ranked)" in out
    assert main(["leaderboard", str(results_dir / "a.json"), "--format", "csv", "--output",
                 str(tmp_path / "t.csv")]) == 0
    assert (tmp_path / "t.csv").read_text().startswith("rank,model,")
    bad = write(tmp_path / "bad.json", {**make_result("m/x", 0.5), "protocol_version": 99})
    assert main(["leaderboard", str(bad)]) == 2
    assert "protocol_version 99" in capsys.readouterr().err


def test_submission_layout(tmp_path):
    hub = make_result("org/detector", 0.6, kind="hub", revision="a" * 40)
    local = make_result("/ckpt/my model", 0.5)
    assert model_path(hub["model"]) == "org/detector" and model_path(local["model"]) == "local/my-model"
    files = stage_submission([hub, local], tmp_path)
    rel = sorted(str(p.relative_to(tmp_path)) for p in files)
    assert "requests/org/detector_eval_request.json" in rel
    assert any(p.startswith("results/org/detector/results_folder_") and p.endswith(".json") for p in rel)
    req = json.loads((tmp_path / "requests/org/detector_eval_request.json").read_text())
    assert req["status"] == "FINISHED" and req["revision"] == "a" * 40
    assert len(load_results(tmp_path / "results")) == 2  # the staged files read back
    with pytest.raises(ValueError, match="status"):
        make_request(hub, status="DONE")


def test_push_to_local_hub(hub_server, results_dir):
    code = (
        "from hubdet.eval.leaderboard import push_results, load_results_from_hub\n"
        f"url = push_results({str(results_dir)!r}, 'board/results')\n"
        "print('URL', url)\n"
        "print('N', len(load_results_from_hub('board/results')))\n"
    )
    proc = run_with_hub(hub_server, code)
    assert "N 4" in proc.stdout
    files = hub_server.files("dataset", "board/results")
    results = sorted(p for p in files if p.startswith("results/"))
    assert len(results) == 4 and all(p.endswith(".json") for p in results)
    assert "requests/local/good_eval_request.json" in files  # a local folder goes under local/
    pushed = json.loads(files[next(p for p in results if p.startswith("results/local/good/"))])
    assert pushed["model"]["id"] == "models/good" and "_meta" not in pushed


def test_push_refuses_unpinned(hub_server, tmp_path):
    r = make_result("m/x", 0.6)
    r["dataset"]["fingerprint"] = None
    path = write(tmp_path / "u.json", r)
    code = (
        "from hubdet.eval.leaderboard import push_results\n"
        f"push_results([{str(path)!r}], 'board/results')\n"
    )
    proc = run_with_hub(hub_server, code, check=False)
    assert proc.returncode != 0 and "unpinned revision" in proc.stderr
    assert ("dataset", "board/results") not in hub_server.repos
