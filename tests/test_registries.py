"""Sources and families are discovered from their modules: a new one is one file, a broken one raises, every registry
names a real function in its errors. Throwaway modules are written on a temporary extension of the package path."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

import hubdet.data
import hubdet.models
from hubdet._core.errors import UnknownNameError
from hubdet._core.registry import ModuleDiscovery, Registry, uses_name
from hubdet.data import list_sources, load_source
from hubdet.data._builder import SOURCE_DISCOVERY, SOURCES
from hubdet.models import DETECTORS, FAMILIES, create_detector, from_pretrained, list_detectors, list_families
from hubdet.models._registry import FAMILY_DISCOVERY
from tests.plugins.images import make_image

TOY_SOURCE = '''
"""A throwaway source: real_*.png and fake_*.png side by side in one folder."""
from pathlib import Path

from hubdet.data._builder import HubdetBuilder, Item, register_source
from hubdet.data.schema import FAKE, REAL, ColumnMap


@register_source("toy_flat")
class ToyFlat(HubdetBuilder):
    LAYOUT = "real_*.png and fake_*.png in one folder"
    HUB_COLUMNS = ColumnMap(fake_generator="toy-gen")

    def scan(self, data_dir: Path) -> dict[str, list[Item]]:
        items = [Item(path=p, label=FAKE if p.name.startswith("fake") else REAL,
                      generator="toy-gen" if p.name.startswith("fake") else "natural", file=p.name)
                 for p in sorted(data_dir.glob("*.png"))]
        return {"train": items}
'''

TOY_FAMILY = '''
"""A throwaway family: the classifier under another family name, with its tiny variant."""
from hubdet.models._registry import register_detector, register_family
from hubdet.models.classifier import Classifier


@register_family
class ToyFamily(Classifier):
    family = "toy_family"


register_detector("toy_family_tiny.test", family="toy_family", args=ARGS, preprocess=PREPROCESS)
'''


@pytest.fixture
def extend_package(tmp_path, monkeypatch, request):
    """``extend_package(package, discovery, registries, {module: code})``: write modules on a temporary extension of
    ``package.__path__`` and make ``discovery`` look again; registries and ``sys.modules`` are restored afterwards."""

    def extend(package, discovery: ModuleDiscovery, registries: list[Registry], modules: dict[str, str]) -> Path:
        folder = tmp_path / package.__name__.replace(".", "_")
        folder.mkdir()
        for name, code in modules.items():
            (folder / f"{name}.py").write_text(code)
            request.addfinalizer(lambda n=f"{package.__name__}.{name}": sys.modules.pop(n, None))
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
        monkeypatch.setattr(discovery, "_state", "new")
        for registry in registries:
            monkeypatch.setattr(registry, "_items", dict(registry._items))
        importlib.invalidate_caches()
        return folder

    return extend


def test_a_new_source_is_one_file(extend_package, tmp_path):
    extend_package(hubdet.data, SOURCE_DISCOVERY, [SOURCES], {"toy_flat_source": TOY_SOURCE})
    assert "toy_flat" in list_sources()
    for name, color in (("real_a.png", (200, 10, 10)), ("fake_b.png", (10, 10, 200)), ("fake_c.png", (9, 9, 9))):
        make_image(tmp_path / "toy" / name, (16, 12), color)
    ds = load_source("toy_flat", tmp_path / "toy", split="train", cache_dir=tmp_path / "cache")
    assert sorted(ds["label"]) == [0, 1, 1] and set(ds["source"]) == {"toy_flat"}
    assert SOURCES.get("toy_flat").HUB_COLUMNS.fake_generator == "toy-gen"


def test_a_new_family_is_one_file(extend_package, tmp_path):
    tiny = DETECTORS.get("classifier_tiny.test")()
    code = TOY_FAMILY.replace("ARGS", json.dumps(tiny.args)).replace(
        "PREPROCESS", json.dumps(tiny.preprocess.to_dict()))
    extend_package(hubdet.models, FAMILY_DISCOVERY, [FAMILIES, DETECTORS], {"toy_family": code})
    assert "toy_family" in list_families()
    assert list_detectors("*_tiny.*", family="toy_family") == ["toy_family_tiny.test"]
    det = create_detector("toy_family_tiny.test")
    det.save_pretrained(tmp_path / "toy", card=False)
    loaded = from_pretrained(tmp_path / "toy")
    assert type(loaded).__name__ == "ToyFamily" and loaded.config.family == "toy_family"


def test_a_module_that_fails_to_import_raises_and_others_are_not_touched(extend_package):
    broken = "import hubdet_no_such_package\nfrom hubdet.data._builder import register_source\n" \
             "register_source('never')\n"
    unrelated = "import hubdet_no_such_package  # no register_source call: not a source module, never imported\n"
    private = "from hubdet.data._builder import register_source\nregister_source('private')(object)\n"
    extend_package(hubdet.data, SOURCE_DISCOVERY, [SOURCES],
                   {"broken_source": broken, "unrelated_helper": unrelated, "_private_source": private})
    found = SOURCE_DISCOVERY.modules()
    assert "hubdet.data.broken_source" in found and "hubdet.data.unrelated_helper" not in found
    with pytest.raises(ImportError, match="hubdet.data.broken_source") as err:
        list_sources()
    assert "hubdet_no_such_package" in str(err.value)
    with pytest.raises(ImportError, match="broken_source"):  # again on the next call: never a partial registry
        SOURCES.get("cifake")
    assert "hubdet.data.unrelated_helper" not in sys.modules and "hubdet.data._private_source" not in sys.modules


def test_the_rule_selects_modules_by_the_names_they_call(tmp_path):
    (tmp_path / "a.py").write_text("from x import register_source\n")  # an import alone does not count
    (tmp_path / "b.py").write_text('"""register_source in a docstring"""\n# register_source(\n')
    (tmp_path / "c.py").write_text("@register_source('c')\nclass C: ...\n")
    (tmp_path / "d.py").write_text("import m\nfor n in ('x', 'y'):\n    m.register_detector(n)\n")
    marks = ("register_source", "register_detector")
    assert [uses_name(tmp_path / f"{n}.py", marks) for n in "abcd"] == [False, False, True, True]
    assert SOURCE_DISCOVERY.modules() == sorted(
        f"hubdet.data.{m}" for m in ("cifake", "deepfakeart", "folder", "genimage", "inpaint_boxes", "kaggle_faces",
                                     "ufd"))
    assert set(FAMILY_DISCOVERY.modules()) >= {f"hubdet.models.{m}" for m in
                                               ("classifier", "boxhead", "copymove", "ensemble", "probe")}


def test_every_registry_names_a_real_lister():
    for module in ("hubdet.data._builder", "hubdet.models._registry", "hubdet.data.inpainters"):
        importlib.import_module(module)
    registries = [r for r in Registry.instances() if r.lister]
    assert {"source", "detector", "detector family", "inpainter"} <= {r.kind for r in registries}
    for registry in registries:
        path, attr = registry.lister.removesuffix("()").rsplit(".", 1)
        lister = getattr(importlib.import_module(path), attr)
        assert lister() == registry.names(), registry.kind
        with pytest.raises(UnknownNameError) as err:
            registry.get("no_such_name_at_all")
        assert registry.lister in str(err.value)


def test_unknown_family_error_points_at_list_families(tmp_path):
    create_detector("classifier_tiny.test").save_pretrained(tmp_path, card=False)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["family"] = "clasifier"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnknownNameError) as err:
        from_pretrained(tmp_path)
    assert "did you mean 'classifier'" in str(err.value) and "hubdet.models.list_families()" in str(err.value)
    assert "familys" not in str(err.value)
    assert hubdet.models.list_families() == sorted(FAMILIES)
