"""Dataset push (hubdet.data.push): parquet shards + a dataset card, uploaded to the local fake Hub."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from hubdet.data.synth import make_inpainting_benchmark
from tests.plugins.hub import run_with_hub
from tests.plugins.images import make_corrupt_files, make_image

SCHEMA = ["image", "label", "boxes", "mask", "generator", "source", "orig_format", "orig_jpeg_quality",
          "orig_width", "orig_height", "file"]


def _front_matter(readme: str) -> tuple[dict, str]:
    assert readme.startswith("---\n")
    head, body = readme[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """A tiny synth benchmark (4 photos -> 2 real, 2 inpainted) made from photos with one bad file."""
    photos = tmp_path / "photos"
    for i in range(4):
        make_image(photos / f"p{i}.png", (32, 24), "checker" if i % 2 else "gradient", seed=i)
    make_corrupt_files(photos, prefix="broken")
    out = tmp_path / "bench"
    make_inpainting_benchmark(photos, out, backend="telea", seed=0, progress=False)
    return out


def _tiny_dataset():
    import datasets

    from hubdet.data.schema import features

    img = Image.fromarray(np.full((16, 20, 3), 90, np.uint8))
    mask = Image.fromarray(np.zeros((16, 20), np.uint8))
    rows = dict(image=[img, img, img], label=[0, 1, 1], boxes=[[], [[1, 2, 5, 6]], [[0, 0, 4, 4]]],
                mask=[None, mask, mask], generator=["natural", "opencv-telea", "patchmatch"], source=["folder"] * 3,
                orig_format=["PNG"] * 3, orig_jpeg_quality=[-1] * 3, orig_width=[20] * 3, orig_height=[16] * 3,
                file=["a.png", "b.png", "c.png"])
    return datasets.Dataset.from_dict(rows, features=features())


def test_saved_folder_is_a_loadable_dataset_repo(tmp_path):
    import datasets

    from hubdet.data.push import save_dataset_folder

    ds = _tiny_dataset()
    folder = save_dataset_folder(datasets.DatasetDict(train=ds, test=ds.select([0])), tmp_path / "repo",
                                 repo_id="org/tiny", bad_files=[{"path": "x.jpg", "reason": "file is empty"}])
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "README.md", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
    meta, body = _front_matter((folder / "README.md").read_text())
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"},
                                                {"split": "test", "path": "data/test-*"}]
    assert [f["name"] for f in meta["dataset_info"]["features"]] == SCHEMA
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == {"train": 3, "test": 1}
    assert "| train | 3 | 1 | 2 |" in body and "| train | patchmatch | fake | 1 |" in body
    assert "`x.jpg` | file is empty" in body and "licences" in body
    back = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert back["train"].features == ds.features
    assert back["train"]["boxes"] == [[], [[1.0, 2.0, 5.0, 6.0]], [[0.0, 0.0, 4.0, 4.0]]]
    assert np.array_equal(np.asarray(back["train"][1]["image"]), np.asarray(ds[1]["image"]))


def test_push_refuses_when_offline():
    from hubdet.data.push import push_dataset

    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        push_dataset(_tiny_dataset(), "org/tiny")


PUSH_AND_READ_BACK = r"""
import json, sys
import datasets
from hubdet.data import load_source
from hubdet.data.push import push_dataset
bench = sys.argv[1]
ds = load_source("folder", bench, cache_dir=sys.argv[2])
url = push_dataset(ds, "org/bench", card_data={"license": "cc-by-4.0"}, pretty_name="Tiny inpainting bench",
                   synth_config=json.load(open(bench + "/synth.json"))["config"])
back = datasets.load_dataset("org/bench", split="train", cache_dir=sys.argv[2] + "/back")
out = {"url": url, "n": len(back), "labels": sorted(back["label"]), "boxes": sorted(map(str, back["boxes"]))}
print(json.dumps(out))
"""


def test_push_to_local_hub_and_read_back(hub_server, bench, tmp_path):
    code = PUSH_AND_READ_BACK.replace("sys.argv[1]", repr(str(bench))).replace("sys.argv[2]", repr(str(tmp_path)))
    proc = run_with_hub(hub_server, code)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["url"].startswith(hub_server.url) and "/datasets/org/bench/commit/" in out["url"]

    files = hub_server.files("dataset", "org/bench")
    assert sorted(files) == ["README.md", "data/train-00000-of-00001.parquet"]
    meta, body = _front_matter(files["README.md"].decode())
    assert meta["license"] == "cc-by-4.0" and meta["pretty_name"] == "Tiny inpainting bench"
    assert [f["name"] for f in meta["dataset_info"]["features"]] == SCHEMA
    assert "| train | 4 | 2 | 2 |" in body and "opencv-telea" in body and '"backend": "telea"' in body

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(files["data/train-00000-of-00001.parquet"]))
    assert table.num_rows == 4 and table.column_names == SCHEMA
    rows = table.to_pylist()
    on_disk = sorted(np.asarray(Image.open(p).convert("RGB")).tobytes() for p in bench.glob("*/*.png")
                     if p.parent.name in ("Real", "Fake"))
    pushed = sorted(np.asarray(Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB")).tobytes() for r in rows)
    assert pushed == on_disk  # image bytes are embedded, not paths
    assert sum(r["mask"] is not None and r["mask"]["bytes"] is not None for r in rows) == 2
    # and `datasets` reads the repository back from the (fake) Hub
    assert out["n"] == 4 and out["labels"] == [0, 0, 1, 1]
    assert out["boxes"].count("[]") == 2
    assert hub_server.commits[-1]["added"] == ["README.md", "data/train-00000-of-00001.parquet"]


def test_data_commands_push_and_info(hub_server, bench, tmp_path):
    save = tmp_path / "saved"
    argv = ["data", "push", "--source", "folder", "--data-dir", str(bench), "--repo-id", "org/cli",
            "--private", "--save-dir", str(save), "--cache-dir", str(tmp_path / "c1")]
    # only the data commands' parser: the full `hubdet` parser would also import the model commands (torch)
    code = ("import argparse, sys; from hubdet.data.commands import add_commands; p = argparse.ArgumentParser(); "
            f"add_commands(p.add_subparsers()); args = p.parse_args({argv!r}); sys.exit(args.func(args))")
    proc = run_with_hub(hub_server, code)
    assert "pushed folder to org/cli" in proc.stdout
    files = hub_server.files("dataset", "org/cli")
    assert hub_server.repo("dataset", "org/cli").private
    assert files["README.md"] == (save / "README.md").read_bytes()
    assert '"generator": "opencv-telea"' in files["README.md"].decode()  # synth.json found beside the data

    from hubdet.cli import main

    assert main(["data", "info", "--source", "folder", "--data-dir", str(bench), "--json",
                 "--cache-dir", str(tmp_path / "c2")]) == 0


def test_data_info_prints_counts(bench, tmp_path, capsys):
    from hubdet.cli import main

    assert main(["data", "info", "--source", "folder", "--data-dir", str(bench), "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train: 4 examples (fake 2, real 2)" in out
    assert "opencv-telea (fake): 2" in out and "natural (real): 2" in out
    assert "bad files: 0 skipped" in out
    (bench / "Real" / "zero.png").write_bytes(b"")  # the builder's bad-file report reaches the command
    assert main(["data", "info", "--source", "folder", "--data-dir", str(bench), "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "bad files: 1 skipped:" in out and "zero.png: file is empty" in out
