"""What an image must be for its pixels to be judged honestly: :class:`InputPolicy` and :data:`DATA_POLICY`.

The input policy of hubdet lives in two places that work together, both in :mod:`hubdet.data`:

- the decoder (:func:`hubdet.data.imageio.open_image`) decides what can be READ: formats, sample formats (float
  samples in [0, 1] are scaled, others refused with :class:`~hubdet._core.errors.UnsupportedImageError`; 16-bit,
  palette, alpha, CMYK and animated images are normalised and noted in ``ImageInfo.notes``) and the pixel budget
  (``HUBDET_MAX_PIXELS``, the decompression-bomb limit, quoted in hubdet's own message);
- an :class:`InputPolicy` decides what can be JUDGED: a minimum size and a maximum aspect ratio. Every detector
  derives its own from its preprocessing (:meth:`hubdet.models.base.Detector.input_policy`: a native-resolution
  crop needs the crop to fit, a resize bounds the upscaling and the distortion, tiles need half a tile); the data
  builders use :data:`DATA_POLICY`, which refuses only degenerate images.

A refusal is a reason (a string), never an exception: callers report it instead of a verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Prefixes of the reasons a refusal starts with (callers may group refusals by them).
TOO_SMALL = "too small"
EXTREME_ASPECT = "extreme aspect ratio"
UNSUPPORTED_FORMAT = "unsupported sample format"


@dataclass(frozen=True)
class InputPolicy:
    """The smallest image and the most elongated one a consumer can judge; ``basis`` says why (one clause, e.g.
    "it looks at a 224x224 crop at native resolution"), quoted in every refusal."""

    min_width: int = 1
    min_height: int = 1
    max_aspect: float = math.inf  # long side / short side
    basis: str = ""

    def refusal(self, width: int, height: int) -> str | None:
        """Why an image of ``width x height`` pixels cannot be judged, or None if it can."""
        why = f" ({self.basis})" if self.basis else ""
        if width < self.min_width or height < self.min_height:
            return (f"{TOO_SMALL}: the image is {width}x{height} pixels, at least {self.min_width}x{self.min_height} "
                    f"are needed{why}")
        aspect = max(width, height) / max(1, min(width, height))
        if aspect > self.max_aspect:
            return (f"{EXTREME_ASPECT}: the image is {width}x{height} pixels ({aspect:.3g}:1), at most "
                    f"{self.max_aspect:g}:1 can be judged{why}")
        return None

    def strictest(self, other: InputPolicy) -> InputPolicy:
        """A policy refusing whatever either refuses (sizes: the larger minimum; aspect: the smaller maximum)."""
        basis = "; ".join(b for b in (self.basis, other.basis) if b)
        return InputPolicy(max(self.min_width, other.min_width), max(self.min_height, other.min_height),
                           min(self.max_aspect, other.max_aspect), basis)

    def describe(self) -> str:
        """One line for cards, logs and the app: ``"at least 224x224 pixels, aspect ratio up to 4:1 (...)"``."""
        aspect = "any aspect ratio" if math.isinf(self.max_aspect) else f"aspect ratio up to {self.max_aspect:g}:1"
        why = f" ({self.basis})" if self.basis else ""
        return f"at least {self.min_width}x{self.min_height} pixels, {aspect}{why}"


#: What the data builders accept: anything but degenerate images (a side under 8 pixels, or longer than 32:1).
DATA_POLICY = InputPolicy(min_width=8, min_height=8, max_aspect=32.0,
                          basis="hubdet's floor for a usable example of any detector")
