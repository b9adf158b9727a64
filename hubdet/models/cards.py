"""Model cards, rendered from ``model_cards/model_card.md`` with huggingface_hub's ``ModelCard``.

The metadata (``model-index`` with one ``EvalResult`` per dataset, split and metric, dataset revision pinned) is
built with ``ModelCardData``, never by concatenating YAML. The text sections come from the detector's config:
family, backbone, starting weights, preprocessing, calibration; training data and configuration, and evaluation
results are passed in (or read from ``config.metadata["dataset" | "training" | "eval_results"]``).

Where the template is found (see :func:`template_path`): ``model_cards/`` is a top-level folder of the
repository (cards are documents, not code). A source checkout or an editable install reads it there; a built
wheel ships it as package data at ``hubdet/model_cards/`` (read through ``importlib.resources``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hubdet._core.errors import ConfigError
from hubdet._core.templates import card_template

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "model_card.md"
TASK_TYPE = "image-classification"
_EXTRA_KEYS = {
    "repo_id", "model_name", "summary", "license", "tags", "extra_limitations", "extra_sections", "template",
    "description", "language",
}


def template_path(name: str = TEMPLATE_NAME) -> Path:
    """Locate a card template (see :func:`hubdet._core.templates.card_template`)."""
    return card_template(name)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, dict)):
        return "`" + json.dumps(value) + "`"
    return str(value)


def _table(rows: Mapping[str, Any]) -> str:
    lines = ["| key | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v).replace('|', '/')} |" for k, v in rows.items()]
    return "\n".join(lines)


def eval_results_from(items: Sequence[Any] | None) -> list[EvalResult]:
    """``EvalResult`` objects from EvalResults or mappings.

    A mapping is either EvalResult's own fields, or ``{"dataset": id, "split": ..., "revision": ...,
    "metrics": {name: value}, "dataset_name": ..., "config": ...}`` (one EvalResult per metric). Every result must
    pin its dataset revision (a Hub commit, or a content fingerprint of a local folder).
    """
    results: list[EvalResult] = []
    for item in items or []:
        if isinstance(item, EvalResult):
            results.append(item)
        elif isinstance(item, Mapping) and "metrics" in item:
            unknown = set(item) - {"dataset", "dataset_name", "split", "revision", "config", "metrics", "task"}
            if unknown:
                raise ConfigError(f"eval result: unknown key(s) {sorted(unknown)}")
            if "dataset" not in item or "split" not in item:
                raise ConfigError(f"eval result needs 'dataset' and 'split': {dict(item)}")
            for metric, value in item["metrics"].items():
                results.append(EvalResult(
                    task_type=item.get("task", TASK_TYPE), dataset_type=str(item["dataset"]),
                    dataset_name=str(item.get("dataset_name") or item["dataset"]), dataset_split=str(item["split"]),
                    dataset_revision=item.get("revision"), dataset_config=item.get("config"),
                    metric_type=str(metric), metric_value=float(value) if isinstance(value, (int, float)) else value,
                ))
        elif isinstance(item, Mapping):
            try:
                results.append(EvalResult(**item))
            except TypeError as exc:
                raise ConfigError(f"eval result: {exc}") from exc
        else:
            raise ConfigError(f"eval result must be an EvalResult or a mapping, got {type(item).__name__}")
    for r in results:
        if not r.dataset_revision:
            raise ConfigError(
                f"eval result {r.dataset_type}/{r.dataset_split}/{r.metric_type} has no dataset revision: pin it "
                "(a Hub commit sha, or a content fingerprint for a local folder)"
            )
    return results


def _eval_text(results: list[EvalResult]) -> str:
    if not results:
        return "No evaluation results were recorded with this checkpoint."
    lines = ["| dataset | split | revision | metric | value |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.dataset_name} (`{r.dataset_type}`) | {r.dataset_split} | `{r.dataset_revision}` | "
                     f"{r.metric_type} | {_fmt(r.metric_value)} |")
    return "\n".join(lines) + "\n\nThe same results are in the card's `model-index` metadata."


def _dataset_text(dataset: Any) -> tuple[str, list[str]]:
    """Markdown for the training data, and the Hub dataset ids for ``datasets:`` metadata."""
    if not dataset:
        return "Not recorded (this checkpoint was saved without training-data information).", []
    if isinstance(dataset, str):
        return f"`{dataset}`", [dataset] if dataset.count("/") == 1 and not dataset.startswith((".", "/")) else []
    if isinstance(dataset, Mapping):
        ident = str(dataset.get("id") or dataset.get("name") or "")
        hub_ids = [ident] if ident.count("/") == 1 and not ident.startswith((".", "/")) else []
        return _table(dataset), hub_ids
    if isinstance(dataset, Sequence):
        texts, ids = zip(*(_dataset_text(d) for d in dataset), strict=True) if dataset else ((), ())
        return "\n\n".join(texts), [i for sub in ids for i in sub]
    raise ConfigError(f"dataset must be a string, a mapping or a list, got {type(dataset).__name__}")


def _calibration_text(cal: Any) -> str:
    if cal.method == "none":
        return ("Not calibrated: `prob_fake = sigmoid(logit)`. Fit temperature scaling on a validation split "
                "(`detector.calibrate(logits, labels)`) before trusting the probabilities.")
    rows: dict[str, Any] = {"method": cal.method, "temperature": cal.temperature,
                            **({"bias": cal.bias} if cal.bias else {}), "fitted on": cal.fitted_on or "not recorded",
                            "threshold (fake at or above)": cal.threshold, "uncertain below": cal.uncertain_low,
                            **({"threshold rule": cal.threshold_rule} if cal.threshold_rule else {})}
    if cal.nll_before is not None:
        rows["validation NLL before"] = cal.nll_before
    if cal.nll_after is not None:
        rows["validation NLL after"] = cal.nll_after
    formula = "sigmoid(logit / T + b)` with T and b" if cal.method == "platt" else "sigmoid(logit / T)` with T"
    return f"`prob_fake = {formula} fitted on a validation split.\n\n{_table(rows)}"


def _weights_text(detector: Any) -> str:
    """The weights' SHA-256 (:func:`hubdet.models.integrity.weights_sha256` of the files listed in config.json, checked
    when the folder loads) and, for a detector trained from another checkpoint, which one."""
    from hubdet.models.integrity import weights_sha256

    config = detector.config
    if not config.file_sha256:
        return "not recorded (saved without a file manifest)"
    parts = {**(getattr(config, "external_weights", None) or {}), **detector.component_sha256()}
    members = len(detector.component_sha256())
    text = (f"SHA-256 `{weights_sha256(config.file_sha256, parts)}` over {len(config.file_sha256)} file(s) listed "
            "with their digests in `config.json` (`file_sha256`), checked when the folder loads"
            + (f", and the {members} members' digests (`member_sha256`)" if members else ""))
    init = (config.metadata or {}).get("init_from")
    if isinstance(init, Mapping) and init.get("sha256"):
        where = init.get("id") or init.get("spec")
        text += f"; trained from `{where}`" + (f"@`{init['revision']}`" if init.get("revision") else "") + \
            f" (SHA-256 `{init['sha256']}`)"
    return text


def _base_model(weights_source: str) -> str | None:
    prefix = "timm Hub weights ("
    if weights_source.startswith(prefix) and weights_source.endswith(")"):
        ident = weights_source[len(prefix):-1]
        return ident if ident.count("/") == 1 else None
    return None


def render_card(
    detector: Any,
    *,
    eval_results: Sequence[Any] | None = None,
    training: Mapping[str, Any] | None = None,
    dataset: Any = None,
    **extra: Any,
) -> ModelCard:
    """Render a detector's model card.

    ``eval_results``: see :func:`eval_results_from`; ``training``: the training configuration (a mapping, shown as
    a table); ``dataset``: a Hub id, a mapping (``id``/``name``, ``revision``, splits, sizes ...) or a list of them.
    Each defaults to ``config.metadata`` of the same name. ``extra``: ``repo_id`` (for the usage example),
    ``model_name``, ``summary``, ``description``, ``license``, ``language``, ``tags``, ``extra_limitations``
    (list of str), ``extra_sections`` (list of ``(title, markdown)``), ``template`` (a template path).
    Families may add a ``card_details() -> dict`` method to override template values (e.g. ``backbone``).
    """
    from hubdet import __version__

    unknown = set(extra) - _EXTRA_KEYS
    if unknown:
        raise ConfigError(f"render_card: unknown argument(s) {sorted(unknown)}; valid: {sorted(_EXTRA_KEYS)}")
    config = detector.config
    meta = config.metadata or {}
    results = eval_results_from(eval_results if eval_results is not None else meta.get("eval_results"))
    training = training if training is not None else meta.get("training")
    dataset = dataset if dataset is not None else meta.get("dataset")
    dataset_text, dataset_ids = _dataset_text(dataset)
    repo_id = extra.get("repo_id") or meta.get("repo_id") or "REPO_ID"
    model_name = extra.get("model_name") or (repo_id.split("/")[-1] if repo_id != "REPO_ID" else None) \
        or config.name or f"hubdet-{config.family}"
    args = getattr(detector, "args", None)
    backbone = getattr(args, "backbone", None)
    tags = ["hubdet", "image-classification", "ai-generated-image-detection", "image-forensics", config.family]
    if getattr(detector, "timm_compatible", False):
        tags.append("timm")
    if getattr(detector, "supports_boxes", False):
        tags.append("inpainting-localization")
    tags += [t for t in extra.get("tags", []) if t not in tags]
    card_data = ModelCardData(
        model_name=model_name,
        library_name="hubdet",
        license=extra.get("license"),
        language=extra.get("language"),
        tags=tags,
        pipeline_tag="image-classification",
        datasets=dataset_ids or None,
        base_model=_base_model(config.weights_source),
        metrics=sorted({r.metric_type for r in results}) or None,
        eval_results=results or None,
    )
    n_params = sum(p.numel() for p in detector.parameters())
    n_trainable = sum(p.numel() for p in detector.parameters() if p.requires_grad)
    pre, cal = config.preprocess, config.calibration
    values: dict[str, Any] = {
        "model_name": model_name,
        "summary": extra.get("summary") or (
            f"A hubdet `{config.family}` detector that tells real images from AI-generated or inpainted ones"
            + (" and localizes the inpainted region." if getattr(detector, "supports_boxes", False) else ".")
        ),
        "description": extra.get("description") or meta.get("description", ""),
        "family": config.family,
        "family_note": "",
        "registry_name": config.name or "(custom)",
        "backbone": f"`{backbone}` (timm)" if backbone else "see the family's configuration",
        "weights_source": config.weights_source,
        "weights_text": _weights_text(detector),
        "supports_boxes": bool(getattr(detector, "supports_boxes", False)),
        "timm_compatible": bool(getattr(detector, "timm_compatible", False)),
        "input_size": list(pre.input_size), "resize": pre.resize, "interpolation": pre.interpolation,
        "mean": list(pre.mean), "std": list(pre.std),
        "n_params": f"{n_params / 1e6:.2f} M" if n_params >= 1e5 else str(n_params),
        "n_trainable": f"{n_trainable / 1e6:.2f} M" if n_trainable >= 1e5 else str(n_trainable),
        "hubdet_version": config.hubdet_version or __version__,
        "repo_id": repo_id,
        "dataset_text": dataset_text,
        "training_text": _table({"family arguments": config.args, **dict(training)}) if training
        else _table({"family arguments": config.args}) + "\n\nNo training run was recorded with this checkpoint.",
        "eval_text": _eval_text(results),
        "calibration_text": _calibration_text(cal),
        "temperature": cal.temperature, "threshold": cal.threshold,
        "uncertain_low": cal.uncertain_low, "uncertain_high": cal.uncertain_high,
        "extra_limitations": list(extra.get("extra_limitations", [])),
        "extra_sections": [tuple(s) for s in extra.get("extra_sections", [])],
    }
    details = getattr(detector, "card_details", None)
    if callable(details):
        values.update(details())
    path = Path(extra["template"]) if extra.get("template") else template_path()
    return ModelCard.from_template(card_data, template_path=str(path), **values)
