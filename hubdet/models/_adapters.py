"""What the adapter families (transformers, timm, ONNX) share: which output classes mean "fake", the fake logit, and
a clear error when an optional package is missing.

The label rule: each class name is split into words (``ai_generated`` -> ``ai generated``, ``RealImage`` -> ``real
image``); a word from :data:`FAKE_WORDS` makes it a fake class, one from :data:`REAL_WORDS` a real class, and a
negation (``not``, ``non``, ``no``) swaps the two (``non-ai`` is real). Every class must be one or the other, with at
least one of each (a single-output head: its one class says whether the logit is the fake or the real one);
otherwise the labels are ambiguous and :class:`AmbiguousLabelsError` lists them: never a guess. ``fake_labels=``
names the fake classes explicitly (by name or index); all other classes are then real.

The fake logit of a multi-class head is ``logsumexp(fake logits) - logsumexp(real logits)``: the log-odds of "fake"
under the head's softmax (for two classes, the difference of their logits).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from hubdet._core.errors import ConfigError

FAKE_WORDS = frozenset({
    "ai", "aigc", "aigenerated", "artificial", "fake", "fakes", "generated", "synthetic", "synthesized", "deepfake",
    "deepfakes", "gan", "diffusion", "manipulated", "forged", "forgery", "tampered", "cgi", "machine",
})
REAL_WORDS = frozenset({
    "real", "reals", "human", "natural", "authentic", "genuine", "original", "pristine", "camera", "photograph",
    "nature", "organic",
})
NEGATIONS = frozenset({"not", "non", "no"})


class AmbiguousLabelsError(ConfigError):
    """The class names of an outside classifier do not say which classes are fake; pass ``fake_labels=``."""


def label_kind(label: str) -> str | None:
    """``"fake"``, ``"real"`` or None (neither, or both) for one class name, by the rule of the module docstring."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(label))
    words = set(re.split(r"[^a-z0-9]+", spaced.lower())) - {""}
    fake, real = bool(words & FAKE_WORDS), bool(words & REAL_WORDS)
    if words & NEGATIONS:
        fake, real = real, fake
    if fake == real:
        return None
    return "fake" if fake else "real"


def resolve_fake_labels(labels: Sequence[str], fake_labels: Sequence[Any] | None = None, *,
                        where: str) -> tuple[list[int], list[int]]:
    """Indices of the fake and the real classes among ``labels`` (class names in output order).

    ``fake_labels``: the fake classes by name (case-insensitive) or index; the others are real. Without it the
    label rule decides, and anything it cannot decide raises :class:`AmbiguousLabelsError` listing the labels.
    """
    labels = [str(x) for x in labels]
    n = len(labels)
    if n == 0:
        raise ConfigError(f"{where}: the model has no output classes")
    if fake_labels:
        fake: set[int] = set()
        lower = {lab.lower(): i for i, lab in enumerate(labels)}
        for item in fake_labels:
            key = str(item).strip()
            if key.lower() in lower:
                fake.add(lower[key.lower()])
            elif key.lstrip("-").isdigit() and 0 <= int(key) < n:
                fake.add(int(key))
            else:
                raise ConfigError(f"{where}: fake label {item!r} is not one of the model's labels {labels}")
        real = [i for i in range(n) if i not in fake]
        if n > 1 and not real:
            raise ConfigError(f"{where}: fake_labels {list(fake_labels)} name every class of {labels}; at least one "
                              "must mean real")
        return sorted(fake), real
    kinds = [label_kind(lab) for lab in labels]
    fake_idx = [i for i, k in enumerate(kinds) if k == "fake"]
    real_idx = [i for i, k in enumerate(kinds) if k == "real"]
    unknown = [labels[i] for i, k in enumerate(kinds) if k is None]
    if not unknown and (n == 1 or (fake_idx and real_idx)):
        return fake_idx, real_idx
    if unknown:
        reason = f"{unknown} name neither fake nor real images"
    else:
        reason = "no class means fake" if not fake_idx else "no class means real"
    raise AmbiguousLabelsError(
        f"{where}: cannot tell which output classes mean 'fake' from the labels {labels} ({reason}). Name the fake "
        f"classes: fake_labels=[...] (CLI: --fake-label LABEL), e.g. fake_labels=[{labels[0]!r}]"
    )


def fake_logit(logits: torch.Tensor, fake: Sequence[int], real: Sequence[int]) -> torch.Tensor:
    """``[B, C]`` class logits -> ``[B]`` fake logits (see the module docstring); one class: that logit, negated
    when it is the real class."""
    logits = logits.reshape(logits.shape[0], -1).float()
    if logits.shape[1] == 1:
        return logits[:, 0] if list(fake) == [0] else -logits[:, 0]
    return torch.logsumexp(logits[:, list(fake)], dim=1) - torch.logsumexp(logits[:, list(real)], dim=1)


def require(module: str, extra: str, family: str) -> Any:
    """Import ``module`` or raise an ImportError that says which hubdet extra provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"the {family!r} detector family needs the Python package {module.split('.')[0]!r}: "
                          f"pip install 'hubdet[{extra}]'") from exc


def bce_output(logits: torch.Tensor, labels: torch.Tensor | None) -> Any:
    """The :class:`~hubdet.models.output.DetectorOutput` of fake logits, with the BCE loss when ``labels`` are
    given."""
    import torch.nn.functional as F

    from hubdet.models.output import DetectorOutput

    out = DetectorOutput(logits=logits, probs=torch.sigmoid(logits))
    if labels is not None:
        target = labels.to(device=logits.device, dtype=logits.dtype).view(-1)
        out.loss = F.binary_cross_entropy_with_logits(logits, target)
        out.losses = {"classification": out.loss.detach()}
    return out
