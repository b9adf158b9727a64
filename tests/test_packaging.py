"""Packaging as downstream users meet it: a wheel whose metadata carries the runtime dependencies and the extras,
ranges that admit the pinned stack, loading and predicting with the core set only, and a light ``import hubdet``."""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
EXTRAS = {"data", "eval", "app", "train", "provenance", "onnx", "clip", "transformers", "dev", "all"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def wheel_requirements(tmp_path_factory) -> dict[str, list[Requirement]]:
    """Build the wheel from a copy of the sources (offline, no isolation) and read its Requires-Dist by extra."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "model_cards", src / "model_cards", ignore=ignore)
    shutil.copytree(REPO / "hubdet", src / "hubdet", symlinks=True, ignore=ignore)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("hubdet-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        names = zf.namelist()
    assert "hubdet/model_cards/model_card.md" in names and "hubdet/cli.py" in names
    assert "Provides-Extra" in text
    by_extra: dict[str, list[Requirement]] = {"": []}
    for line in text.splitlines():
        if line.startswith("Provides-Extra:"):
            by_extra.setdefault(line.split(":", 1)[1].strip(), [])
        elif line.startswith("Requires-Dist:"):
            req = Requirement(line.split(":", 1)[1].strip())
            extra = ""
            if req.marker is not None:
                extra = next((e for e in by_extra if e and req.marker.evaluate({"extra": e})), "")
                req.marker = None
            by_extra[extra].append(req)
    return by_extra


def _installed_closure(names: set[str]) -> set[str]:
    """``names`` and everything they require (without extras), as installed here."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_wheel_declares_core_dependencies_and_extras(wheel_requirements):
    core = {_norm(r.name) for r in wheel_requirements[""]}
    # what `import hubdet`, from_pretrained and predict need for every family
    assert {"torch", "torchvision", "timm", "safetensors", "huggingface-hub", "numpy", "pillow", "scikit-learn",
            "skops", "opencv-contrib-python-headless"} <= core
    # heavy parts are extras, never core
    # (transformers is core since the bundled detectors stand on CLIP towers: pyproject.toml says so)
    assert not core & {"gradio", "accelerate", "optuna", "tensorboard", "datasets", "evaluate", "matplotlib",
                       "c2pa-python", "onnxruntime", "peft", "captum", "pytest"}
    assert EXTRAS <= set(wheel_requirements)
    flat = {e: {_norm(r.name) for r in reqs} for e, reqs in wheel_requirements.items()}
    assert {"gradio", "hubdet"} <= flat["app"] and "c2pa-python" in flat["provenance"]
    assert {"optuna", "tensorboard"} <= flat["train"] and {"onnx", "onnxruntime"} <= flat["onnx"]
    assert "datasets" in flat["data"] and "pytest" in flat["dev"]
    for extra, reqs in wheel_requirements.items():
        for req in reqs:  # compatible ranges: a lower bound on everything, an upper one on all but the dev tools
            assert req.name == "hubdet" or any(s.operator in (">=", "~=", "==") for s in req.specifier), (extra, req)


def test_declared_ranges_admit_the_pinned_stack(wheel_requirements):
    """requirements.txt (what the Space and CI install) is covered by the metadata, and its versions fit the ranges."""
    declared = {_norm(r.name): r for reqs in wheel_requirements.values() for r in reqs if r.name != "hubdet"}
    pinned = [Requirement(line.split("#")[0].strip()) for line in (REPO / "requirements.txt").read_text().splitlines()
              if line.split("#")[0].strip()]
    transitive = _installed_closure({r for r in declared})  # e.g. scipy comes with scikit-learn
    missing = [r.name for r in pinned if _norm(r.name) not in declared and _norm(r.name) not in transitive]
    assert not missing, f"in requirements.txt but declared nowhere in pyproject.toml: {missing}"
    for name, req in declared.items():
        try:
            version = md.version(name)
        except md.PackageNotFoundError:
            continue  # an extra not installed here (e.g. in CI without it)
        assert req.specifier.contains(version, prereleases=True), f"installed {name} {version} is outside {req}"


_CORE_ONLY = r"""
import json, sys
for name in json.loads(sys.argv[1]):  # as if not installed: imports raise, importlib.util.find_spec says None
    sys.modules[name] = None
import torch
from PIL import Image

import hubdet

from hubdet.models import DETECTORS, FAMILIES

img = Image.new("RGB", (96, 80), (120, 60, 30))
out = {}
for name in hubdet.list_detectors("*_tiny.*"):  # every family: build, save, load from the folder, predict
    torch.manual_seed(0)
    needs = FAMILIES.get(DETECTORS.get(name)().family).requires
    if any(sys.modules.get(m, 0) is None for m in needs):  # an adapter of an optional runtime: a clear message
        try:
            hubdet.create_detector(name)
        except ImportError as exc:
            out[name] = str(exc)
            continue
        raise SystemExit(f"{name} built without its optional runtime")
    if DETECTORS.get(name)().args.get("lora_rank"):  # LoRA adapters come with the clip extra (peft)
        try:
            hubdet.create_detector(name)
        except ImportError as exc:
            out[name] = str(exc)
            continue
        raise SystemExit(f"{name} built LoRA adapters without peft")
    det = hubdet.create_detector(name)
    if not det.trains_with_gradients:
        feats = det.extract_features(torch.randn(8, 3, *det.config.preprocess.input_size))
        det.fit_head(feats, torch.tensor([i % 2 for i in range(8)], dtype=torch.float32))
    det.save_pretrained(name)
    out[name] = hubdet.from_pretrained(name).predict([img])[0].prob
print(json.dumps(out))
"""


def test_saving_loading_and_predicting_need_only_the_core_set(wheel_requirements, tmp_path):
    """A tiny detector of every family saves, loads and predicts with every non-core package refused."""
    from hubdet.models import list_families

    core = {r.name for r in wheel_requirements[""]}
    allowed = _installed_closure(core)
    dists = md.packages_distributions()
    extra_only = {_norm(r.name) for e, reqs in wheel_requirements.items() if e for r in reqs} - allowed - {"hubdet"}
    blocked = sorted({mod for mod, owners in dists.items() if any(_norm(o) in extra_only for o in owners)}
                     | {n.replace("-", "_") for n in extra_only})
    assert {"gradio", "accelerate", "optuna", "datasets", "matplotlib", "c2pa", "onnxruntime"} <= set(blocked)
    proc = subprocess.run([sys.executable, "-c", _CORE_ONLY, json.dumps(blocked)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    probs = json.loads(proc.stdout.strip().splitlines()[-1])
    from hubdet.models import DETECTORS

    assert {DETECTORS.get(n)().family for n in probs} == set(list_families())
    extras = {n: msg for n, msg in probs.items() if isinstance(msg, str)}
    # onnxruntime is an extra; transformers is core (the bundled detectors stand on CLIP towers), so its adapter
    # family builds with the core set; LoRA variants need peft (the clip extra)
    assert {DETECTORS.get(n)().family for n in extras if not DETECTORS.get(n)().args.get("lora_rank")} == {"onnx"}
    onnx_msgs = [m for n, m in extras.items() if DETECTORS.get(n)().family == "onnx"]
    assert all("pip install 'hubdet[" in msg for msg in onnx_msgs), extras  # the message names the extra
    assert all(0.0 <= p <= 1.0 for n, p in probs.items() if n not in extras)


_LIGHT = r"""
import json, sys, time
t = time.perf_counter()
import hubdet
after_import = sorted(m for m in ("torch", "datasets", "numpy", "PIL", "timm") if m in sys.modules)
from hubdet.cli import build_parser
help_text = build_parser().format_help()
after_help = sorted(m for m in ("torch", "datasets", "timm", "gradio", "cv2") if m in sys.modules)
print(json.dumps({"import": after_import, "help": after_help, "text": help_text, "s": time.perf_counter() - t}))
"""


def test_import_and_help_stay_light():
    proc = subprocess.run([sys.executable, "-c", _LIGHT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["import"] == [] and result["help"] == []
    assert "predict" in result["text"] and "evaluate" in result["text"]
