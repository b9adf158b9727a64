"""The one metric table: rows, compute_metrics, and the places that read directions and names from it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from hubdet._core.errors import ConfigError, UnknownNameError
from hubdet.eval import leaderboard, metric_table
from hubdet.eval.metric_table import (
    KINDS,
    METRICS,
    Records,
    compute_metrics,
    get_metric,
    metric_direction,
    metric_drops,
    metric_names,
    model_kinds,
)
from hubdet.eval.metrics import binary_metrics, box_metrics, pixel_metrics


@pytest.fixture
def records() -> Records:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60).tolist()
    p = np.clip(0.4 * np.array(y) + 0.6 * rng.random(60), 0, 1).tolist()
    true_boxes = [[[0, 0, 10, 10], [20, 20, 30, 30]] if yi else [] for yi in y]
    pred_boxes = [[19, 19, 29, 31] if yi else None for yi in y]
    true_masks = [np.pad(np.ones((4, 4)), 2) if yi else None for yi in y]
    pred_masks = [rng.random((8, 8)) for _ in y]
    return Records(labels=y, probs=p, logits=[None] * 60, pred_boxes=pred_boxes, true_boxes=true_boxes,
                   pred_masks=pred_masks, true_masks=true_masks)


def test_rows_are_unique_typed_and_headlines_are_scores() -> None:
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    assert {m.kind for m in METRICS} == set(KINDS)
    for m in METRICS:
        assert m.direction in ("higher", "lower", None) and m.definition
        assert not m.headline or m.scored
    assert metric_direction("eer") == "lower" and metric_direction("roc_auc") == "higher"
    with pytest.raises(UnknownNameError, match="count"):
        metric_direction("n")
    with pytest.raises(UnknownNameError, match="roc_auc"):
        get_metric("roc_aoc")


def test_compute_metrics_gives_every_row_of_the_kinds(records: Records) -> None:
    for kinds in (("binary",), ("binary", "boxes"), KINDS):
        out = compute_metrics(records, threshold=0.5, kinds=kinds)
        assert list(out) == metric_names(kinds)
    out = compute_metrics(records, threshold=0.6, kinds=KINDS)
    y, p = np.asarray(records.labels), np.asarray(records.probs)
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.6)) and out["threshold"] == 0.6
    assert out["loss"] == pytest.approx(skm.log_loss(y, p))
    assert out["mean_iou"] == pytest.approx(90 / 130)  # best match with the second box (union box: 0.1)
    assert out["n_masks"] == int(y.sum()) and out["pixel_f1"] <= out["pixel_f1_best"]
    with pytest.raises(UnknownNameError, match="kind"):
        compute_metrics(records, threshold=0.5, kinds=("pixels",))


def test_the_per_kind_functions_are_the_table(records: Records) -> None:
    table = compute_metrics(records, threshold=0.4, kinds=KINDS)
    assert binary_metrics(records.labels, records.probs, threshold=0.4) == {
        k: table[k] for k in metric_names(["binary"])}
    assert box_metrics(records.pred_boxes, records.true_boxes) == {k: table[k] for k in metric_names(["boxes"])}
    assert pixel_metrics(records.pred_masks, records.true_masks) == {k: table[k] for k in metric_names(["masks"])}


def test_records_round_trip_through_rows(records: Records) -> None:
    again = Records.from_rows(records.rows())
    assert again.labels == records.labels and again.pred_boxes == records.pred_boxes
    with pytest.raises(ValueError, match="unknown column"):
        Records.from_rows([{"label": 1}])


def test_directions_drive_drops_ranking_and_training_monitors() -> None:
    from hubdet.training import metric_mode

    for name in metric_names(headline=True):
        worse = {"higher": 0.2, "lower": 0.8}[metric_direction(name)]
        assert metric_drops({name: 0.5}, {name: worse})[name] == pytest.approx(0.3)  # positive = worse
        assert metric_mode(f"val_{name}") == ("max" if metric_direction(name) == "higher" else "min")
    assert metric_mode("train_loss") == "min" and metric_mode("val_roc_auc", "min") == "min"
    with pytest.raises(ConfigError, match="did you mean 'val_loss'"):
        metric_mode("val_los")
    results = [_result("a", 0.1), _result("b", 0.3)]
    assert [r["model"] for r in leaderboard.leaderboard_table(results, "eer")] == ["models/a", "models/b"]
    assert [r["model"] for r in leaderboard.leaderboard_table(results, "roc_auc")] == ["models/b", "models/a"]
    assert leaderboard.TABLE_METRICS == tuple(metric_names(headline=True))


def _result(model: str, value: float) -> dict:
    return {"model": {"id": f"models/{model}"}, "dataset": {"name": "d"}, "metrics": {"eer": value, "roc_auc": value}}


def test_model_kinds_follow_the_family_attributes() -> None:
    class Boxes:
        supports_boxes = True

    class Masks:
        predicts_masks = True

    assert model_kinds(object()) == ("binary",)
    assert model_kinds(Boxes()) == ("binary", "boxes") and model_kinds(Masks()) == ("binary", "masks")
    assert metric_table.PIXEL_THRESHOLD == 0.5
