"""The look-up-table normalisation and the channels-last batch give exactly the element-wise values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hubdet.models.config import PreprocessConfig
from hubdet.models.preprocessing import stack_channels_last, to_batch, to_tensor


def _reference(img: Image.Image, pre: PreprocessConfig) -> torch.Tensor:
    """The original element-wise formula: ((x / 255) - mean) / std in float32."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1).div_(255.0)
    return t.sub_(torch.tensor(pre.mean).view(3, 1, 1)).div_(torch.tensor(pre.std).view(3, 1, 1))


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("norm", [((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                                  ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_to_tensor_and_batch_match_elementwise(mode: str, norm: tuple) -> None:
    pre = PreprocessConfig(input_size=(16, 24), mean=norm[0], std=norm[1])
    rng = np.random.default_rng(0)
    shape = (16, 24, 3) if mode == "RGB" else (16, 24)
    images = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode) for _ in range(3)]
    refs = torch.stack([_reference(im, pre) for im in images])
    assert torch.equal(torch.stack([to_tensor(im, pre) for im in images]), refs)
    batch = to_batch(images, pre)
    assert batch.shape == (3, 3, 16, 24)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch, refs)
    stacked = stack_channels_last([to_tensor(im, pre) for im in images])
    assert stacked.is_contiguous(memory_format=torch.channels_last) and torch.equal(stacked, refs)


def test_to_batch_rejects_mixed_sizes() -> None:
    pre = PreprocessConfig(input_size=(8, 8))
    with pytest.raises(ValueError, match="one size"):
        to_batch([Image.new("RGB", (8, 8)), Image.new("RGB", (9, 8))], pre)


def test_thread_map_keeps_order_and_raises_the_first_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from hubdet.models.preprocessing import preprocess_threads, thread_map

    monkeypatch.setenv("HUBDET_PREPROCESS_THREADS", "3")
    assert preprocess_threads() == 3
    assert thread_map(lambda x: x * x, list(range(20))) == [x * x for x in range(20)]

    def fail_on_odd(x: int) -> int:
        if x % 2:
            raise ValueError(f"bad {x}")
        return x

    with pytest.raises(ValueError, match="bad 1"):
        thread_map(fail_on_odd, [0, 1, 2, 3])
    monkeypatch.setenv("HUBDET_PREPROCESS_THREADS", "nope")
    with pytest.raises(ValueError, match="HUBDET_PREPROCESS_THREADS"):
        preprocess_threads()
