"""Build the Gradio app from a list of detectors: one function per tab (Compare, Batch, Leaderboard, Detectors).

The per-detector columns are rendered in a loop over the detectors the user chose (``gr.render``); the last
comparison of each browser session lives in a ``gr.State``. Named API endpoints (``/compare``, ``/detectors``,
``/batch``, ``/leaderboard``) serve scripts and tests through ``gradio_client``. The logic behind each tab lives in
its own module of :mod:`hubdet.app` (compare, batch, leaderboard, pool); this module only wires it to components.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from hubdet._core.errors import BadImageError
from hubdet.app import leaderboard as board_lib
from hubdet.app.batch import BATCH_COLUMNS, batch, rows_to_csv
from hubdet.app.compare import Comparison, compare
from hubdet.app.config import DetectorSpec, load_detector_specs, results_dir
from hubdet.app.examples import ensure_examples
from hubdet.app.pool import MAX_SIDES, MIN_SIDES, AppInputError, DetectorPool
from hubdet.app.uploads import BatchLimits

logger = logging.getLogger(__name__)

TITLE = "hubdet: real or AI-generated?"
INTRO = (
    "# hubdet: real or AI-generated?\n"
    "Drop an image and compare what several detectors think: the calibrated probability that it is fake, "
    "a verdict (real / fake / uncertain), where a box head believes it was inpainted, and which regions drove "
    "each decision. Scores are calibrated on held-out data but no detector is reliable on images unlike its "
    "training data: read the model cards."
)


def build_demo(
    detectors: Sequence[DetectorSpec] | DetectorPool | None = None,
    *,
    examples: Sequence[str | os.PathLike] | None = None,
    leaderboard_dir: str | os.PathLike | None = None,
    limits: BatchLimits = BatchLimits(),
) -> gr.Blocks:
    """The app for ``detectors`` (specs or a pool; default: :func:`load_detector_specs`).

    ``examples`` default to synthetic images generated once into the cache (never downloaded); the leaderboard
    reads ``leaderboard_dir`` (default: ``HUBDET_RESULTS_DIR`` or ``leaderboard/``). Building loads no model.
    """
    pool = detectors if isinstance(detectors, DetectorPool) else DetectorPool(
        load_detector_specs() if detectors is None else detectors)
    example_paths = [str(p) for p in (ensure_examples() if examples is None else examples)]
    board_dir = Path(leaderboard_dir) if leaderboard_dir is not None else results_dir()
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        if not pool.names():
            gr.Markdown("**No detector is available.** Set `HUBDET_DETECTORS` (comma-separated folders, Hub ids "
                        "or registry names) or add checkpoints listed in `defaults/detectors.yaml`.")
        compare_tab(demo, pool, example_paths)
        batch_tab(pool, limits)
        leaderboard_tab(demo, board_dir)
        detectors_tab(pool)
    return demo


# ---------------------------------------------------------------------------------------------------- Compare
def _run_compare(pool: DetectorPool, file: Any, chosen: list[str] | None,
                 explain_it: bool) -> tuple[Comparison | None, str]:
    """The comparison, or None and the reason it was refused."""
    path = _file_path(file)
    try:
        return compare(pool, path, chosen, explain_it=bool(explain_it), name=_display_name(path)), ""
    except BadImageError as exc:
        return None, f"Cannot analyse `{exc.path}`: {exc.reason}."
    except AppInputError as exc:
        return None, str(exc)


def compare_tab(demo: gr.Blocks, pool: DetectorPool, example_paths: Sequence[str]) -> None:
    """The Compare tab (one column per chosen detector) and the ``/compare`` endpoint."""
    names = pool.names()
    default_choice = names[:MAX_SIDES]

    def api_compare(file: Any, chosen: list[str] | None, explain_it: bool = False) -> dict[str, Any]:
        comparison, error = _run_compare(pool, file, chosen, explain_it)
        return comparison.to_dict() if comparison is not None else _error_payload(error)

    def ui_compare(file: Any, chosen: list[str] | None, explain_it: bool) -> tuple[Any, Any, str, dict[str, Any]]:
        comparison, error = _run_compare(pool, file, chosen, explain_it)
        if comparison is None:
            gr.Warning(error)
            return None, None, f"**{error}**", _error_payload(error)
        notes = "".join(f"\n\n_{n}_" for n in comparison.image["notes"])
        state = {
            "image": comparison.image,
            "results": [{**r.to_dict(), "box_image": r.box_image, "heatmap_image": r.heatmap_image,
                         "mask_image": r.mask_image} for r in comparison.results],
        }
        return state, comparison.preview, comparison.summary["text"] + notes, comparison.to_dict()

    def load_example(request: gr.Request) -> tuple[Any, Any, Any, str, dict[str, Any]]:
        """``?example=N`` in the page URL runs example N on load (links and the browser test use it)."""
        raw = request.query_params.get("example") if request is not None else None
        if raw is None or not example_paths:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        try:
            path = example_paths[int(raw) % len(example_paths)]
        except ValueError:
            return gr.update(), gr.update(), gr.update(), f"**?example={raw}: expected a number**", gr.update()
        state, preview, text, payload = ui_compare(path, default_choice, True)
        servable = any(Path(path).resolve().is_relative_to(Path(d).resolve()) for d in (tempfile.gettempdir(), "."))
        return (path if servable else gr.update()), state, preview, text, payload

    state = gr.State(None)  # this session's last comparison
    with gr.Tab("Compare"):
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Image (any format; decoded by hubdet)", type="filepath",
                                 elem_id="hubdet-upload")
                chooser = gr.CheckboxGroup(choices=names, value=default_choice,
                                           label=f"Detectors ({min(MIN_SIDES, len(names))} to {MAX_SIDES})",
                                           elem_id="hubdet-detectors")
                explain_box = gr.Checkbox(value=True, label="Explanation heatmaps (Grad-CAM or occlusion)")
                mask_toggle = gr.Checkbox(value=True, label="Show inpainting masks (detectors that draw one)",
                                          elem_id="hubdet-mask-toggle")
                compare_btn = gr.Button("Compare", variant="primary", elem_id="hubdet-compare")
                if example_paths:
                    gr.Examples(examples=[[p] for p in example_paths], inputs=[upload], label="Examples")
            with gr.Column(scale=2):
                preview = gr.Image(label="Decoded image", type="pil", interactive=False, height=320)
                summary = gr.Markdown(elem_id="hubdet-summary")

        @gr.render(inputs=[state, mask_toggle])
        def render_columns(current: dict[str, Any] | None, show_masks: bool = True) -> None:
            if not current:
                return
            with gr.Row(equal_height=False):
                for res in current["results"]:  # one column per chosen detector
                    with gr.Column(min_width=220):
                        _detector_column(res, show_mask=bool(show_masks))

        with gr.Accordion("Raw results (JSON)", open=False):
            raw = gr.JSON(label="comparison")
        compare_btn.click(ui_compare, [upload, chooser, explain_box], [state, preview, summary, raw],
                          api_visibility="private")
        api_btn = gr.Button(visible=False)
        api_btn.click(api_compare, [upload, chooser, explain_box], [raw], api_name="compare",
                      api_description="Run the chosen detectors on one image file; returns per-detector JSON.")
        demo.load(load_example, None, [upload, state, preview, summary, raw], api_visibility="private")


def _detector_column(res: dict[str, Any], *, show_mask: bool = True) -> None:
    """One detector's column: its text, its mask with one box per region (mask detectors, when shown) or its box
    picture, its heatmap."""
    gr.Markdown(_column_markdown(res), elem_classes=["hubdet-side"])
    if res.get("mask_image") is not None:
        if show_mask:
            gr.Image(value=res["mask_image"], interactive=False, type="pil",
                     label=f"{res['detector']}: inpainted pixels and regions (confidence, share of the image)")
    elif res.get("box_image") is not None:
        gr.Image(value=res["box_image"], label=f"{res['detector']}: predicted box", interactive=False, type="pil")
    elif res.get("supports_boxes"):
        gr.Markdown("_no box predicted_")
    if res.get("heatmap_image") is not None:
        gr.Image(value=res["heatmap_image"], interactive=False, type="pil",
                 label=f"{res['detector']}: {res['explanation']}")


def _column_markdown(res: dict[str, Any]) -> str:
    """The text of one detector's column."""
    head = f"### {res['detector']}"
    if res.get("error"):
        return f"{head}\n**error:** {res['error']}"
    lines = [head, f"verdict: **{str(res['verdict']).upper()}**", f"fake probability: **{res['prob_fake']:.3f}**",
             f"time: {1000 * float(res['seconds']):.0f} ms"]
    if res.get("shared_members"):
        shared = ", ".join(f"{member} from {src}" for member, src in res["shared_members"].items())
        lines.append(f"shared member predictions: {shared} (not run again; the time is the fusion plus the members "
                     "run here)")
    if res.get("predicts_masks"):
        regions = res.get("regions") or []
        lines.append(f"flagged as inpainted: **{100 * float(res.get('flagged_fraction') or 0):.1f}%** of the image, "
                     f"{len(regions)} region(s)")
        lines += [f"region #{k + 1}: confidence {r['score']:.2f}, {100 * r['area_fraction']:.1f}% of the image, "
                  f"box {', '.join(f'{v:.0f}' for v in r['box'])}" for k, r in enumerate(regions[:5])]
    elif res.get("supports_boxes") and res.get("box"):
        box = ", ".join(f"{v:.0f}" for v in res["box"])
        lines.append(f"box (xmin, ymin, xmax, ymax): {box}")
    if res.get("family"):
        lines.append(f"family: `{res['family']}`")
    return "\n\n".join(lines)


# ---------------------------------------------------------------------------------------------------- Batch
def batch_tab(pool: DetectorPool, limits: BatchLimits) -> None:
    """The Batch tab (files and zips x detectors, with a CSV) and the ``/batch`` endpoint."""
    names = pool.names()

    def run_batch(files: Any, chosen: list[str] | None) -> tuple[Any, str | None, str]:
        paths = [p for p in (_file_path(f) for f in (files or [])) if p]
        try:
            rows = batch(pool, paths, chosen, limits=limits)
        except AppInputError as exc:
            return [], None, f"**{exc}**"
        import pandas as pd

        table = pd.DataFrame(rows, columns=BATCH_COLUMNS)
        csv_path = rows_to_csv(rows)
        n_bad = len({r["file"] for r in rows if r["error"]})
        n_files = len({r["file"] for r in rows})
        note = f"{n_files} file(s) x {len(list(dict.fromkeys(chosen or [])))} detector(s)"
        note += f"; {n_bad} file(s) with errors (see the error column)." if n_bad else "."
        return table, str(csv_path), note

    with gr.Tab("Batch"):
        gr.Markdown(f"Several images or zip archives (at most {limits.max_files} files, "
                    f"{limits.max_zip_members} per zip, {limits.max_zip_total_bytes // 2**20} MiB uncompressed "
                    "per zip). Files that cannot be read appear as rows with their error.")
        with gr.Row():
            batch_files = gr.File(label="Images or .zip", file_count="multiple", type="filepath")
            batch_chooser = gr.CheckboxGroup(choices=names, value=names, label="Detectors")
        batch_btn = gr.Button("Run batch", variant="primary")
        batch_note = gr.Markdown()
        batch_table = gr.Dataframe(headers=BATCH_COLUMNS, label="Results", interactive=False, wrap=True)
        batch_csv = gr.File(label="CSV download", interactive=False)
        batch_btn.click(run_batch, [batch_files, batch_chooser], [batch_table, batch_csv, batch_note],
                        api_name="batch", api_description="Score several files or zips with every chosen "
                                                          "detector; returns the table and a CSV.")


# ---------------------------------------------------------------------------------------------------- Leaderboard
def leaderboard_tab(demo: gr.Blocks, board_dir: Path) -> None:
    """The Leaderboard tab (result files re-read on every change) and the ``/leaderboard`` endpoint."""

    def show_leaderboard(source: str | None, perturbation: str | None, metric: str | None) -> tuple[Any, str]:
        results, message = board_lib.load_leaderboard(board_dir)
        try:
            return board_lib.leaderboard_frame(results, source=source, perturbation=perturbation,
                                               metric=metric), message
        except Exception as exc:  # an unknown filter value typed by hand, a metric the results lack...
            return board_lib.leaderboard_frame(None), f"{message} Cannot build the table: {exc}"

    def leaderboard_filters() -> tuple[Any, Any, Any, Any, str]:
        results, message = board_lib.load_leaderboard(board_dir)
        choices = board_lib.leaderboard_choices(results)
        metric = choices["default_metric"] or choices["metric"][0]
        table = board_lib.leaderboard_frame(results, metric=metric) if results else board_lib.leaderboard_frame(None)
        return (table, gr.update(choices=choices["source"], value=board_lib.ALL),
                gr.update(choices=choices["perturbation"], value="clean"),
                gr.update(choices=choices["metric"], value=metric), message)

    with gr.Tab("Leaderboard"):
        with gr.Row():
            initial = board_lib.leaderboard_choices(board_lib.load_leaderboard(board_dir)[0])
            # custom values allowed: result files added after start-up bring new sources and perturbations
            source_dd = gr.Dropdown(choices=initial["source"], value=board_lib.ALL, label="Source",
                                    allow_custom_value=True)
            pert_dd = gr.Dropdown(choices=initial["perturbation"], value="clean", label="Perturbation",
                                  allow_custom_value=True)
            metric_dd = gr.Dropdown(choices=initial["metric"], value=initial["default_metric"] or "roc_auc",
                                    label="Ranked by")
            refresh_btn = gr.Button("Refresh")
        board_note = gr.Markdown()
        board = gr.Dataframe(label="Leaderboard", interactive=False)
        filters = [source_dd, pert_dd, metric_dd]
        for dropdown in filters:
            dropdown.input(show_leaderboard, filters, [board, board_note], api_visibility="private")
        refresh_btn.click(show_leaderboard, filters, [board, board_note], api_name="leaderboard",
                          api_description="The leaderboard for a source ('All'), a perturbation ('clean') and "
                                          "a metric.")
        demo.load(leaderboard_filters, None, [board, *filters, board_note], api_visibility="private")


# ---------------------------------------------------------------------------------------------------- Detectors
def _detectors_markdown(pool: DetectorPool) -> str:
    lines = ["| detector | source | description |", "|---|---|---|"]
    for row in pool.describe():
        desc = row.get("description", "") or ""
        if not row["available"]:
            desc = f"unavailable: {row.get('error', '')}"
        lines.append(f"| {row['name']} | `{row['source']}` | {desc} |")
    return "\n".join(lines)


def detectors_tab(pool: DetectorPool) -> None:
    """The Detectors tab (what is configured and why one is unavailable) and the ``/detectors`` endpoint."""

    def api_detectors() -> list[dict[str, Any]]:
        """The configured detectors: name, source, description, availability (details once loaded)."""
        return pool.describe()

    with gr.Tab("Detectors"):
        gr.Markdown(_detectors_markdown(pool))
    gr.api(api_detectors, api_name="detectors")


# ---------------------------------------------------------------------------------------------------- helpers
def _file_path(value: Any) -> str | None:
    """The local path of a ``gr.File`` value (a path string, a FileData-like object or None)."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    for attr in ("path", "name"):
        if getattr(value, attr, None):
            return str(getattr(value, attr))
    if isinstance(value, dict) and value.get("path"):
        return str(value["path"])
    return str(value)


def _display_name(path: str | None) -> str | None:
    """The uploaded file's name without gradio's cache folders."""
    return Path(path).name if path else None


def _error_payload(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message, "image": None, "results": [], "summary": None}
