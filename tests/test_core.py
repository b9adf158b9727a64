"""The shared machinery: strict configs, the registry, the one image decoder."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from hubdet._core.config import StrictConfig
from hubdet._core.errors import BadImageError, ConfigError, DuplicateNameError, UnknownNameError
from hubdet._core.registry import Registry
from hubdet.data import imageio


@dataclass
class Inner(StrictConfig):
    size: int = 3


@dataclass
class Outer(StrictConfig):
    lr: float = 0.1
    name: str = "x"
    sizes: tuple[int, int] = (1, 2)
    inner: Inner = field(default_factory=Inner)
    maybe: int | None = None


def test_strict_config_rejects_unknown_keys_with_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        Outer.from_dict({"lrr": 0.3})
    with pytest.raises(ConfigError, match="unknown key"):
        Outer.from_dict({"inner": {"sise": 2}})


def test_strict_config_types_and_round_trip():
    cfg = Outer.from_dict({"lr": 1, "sizes": [3, 4], "inner": {"size": 5}, "maybe": None})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.sizes == (3, 4) and cfg.inner.size == 5
    assert Outer.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="expected a number"):
        Outer.from_dict({"lr": "fast"})
    with pytest.raises(ConfigError, match="expected 2 items"):
        Outer.from_dict({"sizes": [1, 2, 3]})
    with pytest.raises(ConfigError, match="true/false|integer"):
        Inner.from_dict({"size": True})


def test_registry_duplicates_and_suggestions():
    reg: Registry[int] = Registry("widget")
    reg.register("resnet50.a1", 1)
    reg.register("resnet18.a1", 2)
    with pytest.raises(DuplicateNameError):
        reg.register("resnet50.a1", 3)
    with pytest.raises(UnknownNameError, match="did you mean 'resnet50.a1'"):
        reg.get("resnet5.a1")
    assert reg.names("resnet1*") == ["resnet18.a1"]


def _png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("RGBA", (8, 6), (10, 20, 30, 0)),
        lambda: Image.new("P", (8, 6)),
        lambda: Image.new("L", (8, 6), 128),
        lambda: Image.new("CMYK", (8, 6), (0, 50, 100, 0)),
        lambda: Image.fromarray(np.full((6, 8), 40000, dtype=np.uint16)),
    ],
    ids=["rgba", "palette", "gray", "cmyk", "16bit"],
)
def test_decoder_normalises_modes_to_rgb(make, tmp_path):
    img = make()
    fmt = "JPEG" if img.mode == "CMYK" else "PNG"
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(_png_bytes(img, fmt))
    out, info = imageio.open_image(path)
    assert out.mode == "RGB" and out.size == (8, 6)
    assert info.format == fmt


def test_decoder_alpha_composited_on_white(tmp_path):
    out = imageio.load_image(Image.new("RGBA", (4, 4), (0, 0, 0, 0)))
    assert np.asarray(out).min() == 255


def test_decoder_16bit_keeps_relative_brightness():
    arr = np.array([[0, 65535]], dtype=np.uint16)
    out = np.asarray(imageio.load_image(Image.fromarray(arr)))
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 255


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty"), (b"not an image at all", "not an image"), (None, "does not exist")],
)
def test_decoder_bad_files_name_file_and_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadImageError, match=reason) as err:
        imageio.load_image(path)
    assert str(path) in str(err.value)


def test_decoder_truncated_file(tmp_path):
    data = _png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError, match="truncated|corrupt"):
        imageio.load_image(path)


def test_decoder_refuses_decompression_bomb(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (3000, 3000)).save(path)  # tiny file, 9 Mpx
    with pytest.raises(BadImageError, match="limit|bomb"):
        imageio.load_image(path, max_pixels=1_000_000)


def test_decoder_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    out, info = imageio.open_image(path)
    assert info.n_frames == 2
    r, g, b = np.asarray(out)[0, 0]
    assert r > 200 and b < 50


def test_jpeg_quality_estimate(tmp_path):
    img = Image.effect_noise((64, 64), 60).convert("RGB")
    for q in (50, 75, 95):
        path = tmp_path / f"q{q}.jpg"
        img.save(path, quality=q)
        assert abs(imageio.open_image(path)[1].jpeg_quality - q) <= 2
    png = tmp_path / "x.png"
    img.save(png)
    assert imageio.open_image(png)[1].jpeg_quality is None


def test_bad_file_report():
    rep = imageio.BadFileReport()
    rep.add("a.jpg", "empty")
    assert len(rep) == 1 and rep.to_dict()["files"][0] == {"path": "a.jpg", "reason": "empty"}
    assert "a.jpg: empty" in rep.summary()
