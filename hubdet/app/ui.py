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
from hubdet.app.limits import (
    HEAVY,
    AppLimits,
    RateLimiter,
    check_upload_size,
    client_key,
    release_memory,
    tune_allocator,
)
from hubdet.app.pool import MAX_SIDES, MIN_SIDES, AppInputError, DetectorPool
from hubdet.app.provenance import panel_markdown
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
    limits: AppLimits | BatchLimits | None = None,
) -> gr.Blocks:
    """The app for ``detectors`` (specs or a pool; default: :func:`load_detector_specs`), its queue configured by
    ``limits`` (default :class:`AppLimits`; a :class:`BatchLimits` keeps the other defaults). Launch it with
    ``demo.launch(max_file_size=limits.max_upload_bytes, ...)`` (``app.py`` does).

    ``examples`` default to synthetic images generated once into the cache (never downloaded); the leaderboard
    reads ``leaderboard_dir`` (default: ``HUBDET_RESULTS_DIR`` or ``leaderboard/``). Building loads no model.
    """
    if limits is None:
        limits = AppLimits()
    elif isinstance(limits, BatchLimits):
        limits = AppLimits(batch=limits)
    pool = detectors if isinstance(detectors, DetectorPool) else DetectorPool(
        load_detector_specs() if detectors is None else detectors)
    example_paths = [str(p) for p in (ensure_examples() if examples is None else examples)]
    board_dir = Path(leaderboard_dir) if leaderboard_dir is not None else results_dir()
    guard = _Guard(limits)
    tune_allocator()  # image-sized buffers go back to the system when freed (the Space's memory budget)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO + "\n\n_" + limits.describe() + "_")
        if not pool.names():
            gr.Markdown("**No detector is available.** Set `HUBDET_DETECTORS` (comma-separated folders, Hub ids "
                        "or registry names) or add checkpoints listed in `defaults/detectors.yaml`.")
        compare_tab(demo, pool, example_paths, guard)
        batch_tab(pool, guard)
        leaderboard_tab(demo, board_dir)
        detectors_tab(pool)
    demo.queue(default_concurrency_limit=limits.heavy_jobs, max_size=limits.max_queue)
    return demo


class _Guard:
    """The app's limits applied to one request: the per-client rate, then the upload's size (raises
    :class:`AppInputError` with the reason)."""

    def __init__(self, limits: AppLimits) -> None:
        self.limits = limits
        self.rate = RateLimiter(limits.rate_limit, limits.rate_window)

    def admit(self, request: Any, paths: Sequence[str | None] = ()) -> None:
        refusal = self.rate.refusal(client_key(request))
        if refusal:
            raise AppInputError(refusal)
        for path in paths:
            check_upload_size(path, self.limits, name=_display_name(path))


# ---------------------------------------------------------------------------------------------------- Compare
def _run_compare(pool: DetectorPool, guard: _Guard, request: Any, file: Any, chosen: list[str] | None,
                 explain_it: bool | None, stability: bool | None = False
                 ) -> tuple[Comparison | None, str, dict[str, Any] | None]:
    """The comparison, or None, the reason it was refused and the upload's provenance record when it was read (every
    refusal is a message, never an exception)."""
    path = _file_path(file)
    try:
        guard.admit(request, [path])
        return compare(pool, path, chosen, explain_it=bool(explain_it), name=_display_name(path),
                       max_pixels=guard.limits.max_pixels, stability=bool(stability)), "", None
    except BadImageError as exc:
        return None, f"Cannot analyse `{exc.path}`: {exc.reason}.", getattr(exc, "provenance", None)
    except AppInputError as exc:
        return None, str(exc), None
    except Exception as exc:  # a bug must still reach the caller as a reason, not Gradio's generic error
        logger.exception("compare failed")
        return None, f"internal error: {type(exc).__name__}: {exc}", None
    finally:
        release_memory()


def _optional_choice(component: gr.CheckboxGroup) -> gr.CheckboxGroup:
    """Let an API caller send ``null`` for ``component`` (the handler then applies the documented default) and name
    detectors the app does not offer (the handler refuses them with the list of those it does), instead of
    Gradio's generic "component-processing" error."""
    component.preprocess = (  # type: ignore[method-assign]
        lambda payload: None if payload is None else [payload] if isinstance(payload, str) else list(payload))
    return component


def compare_tab(demo: gr.Blocks, pool: DetectorPool, example_paths: Sequence[str], guard: _Guard) -> None:
    """The Compare tab (one column per chosen detector) and the ``/compare`` endpoint.

    ``/compare(file, chosen=<the first four detectors>, explain_it=False)``: omitted or ``null`` arguments take
    these defaults (explanations only when asked); every refusal comes back as ``{"ok": false, "error": reason}``.
    The payload's ``provenance`` is the upload's :class:`~hubdet.provenance.Provenance` record (also with a refusal
    when the file was read); the Provenance panel above the detector columns shows it beside their verdicts.
    """
    names = pool.names()
    default_choice = names[:MAX_SIDES]

    def api_compare(file: Any, chosen: list[str] | None = None, explain_it: bool | None = False,
                    stability: bool | None = False, request: gr.Request = None) -> dict[str, Any]:
        """Run the chosen detectors (default: the first four offered) on one image file; explanation heatmaps only
        with ``explain_it=True``; ``stability=True`` also scores degraded copies (a verdict a copy disagrees with
        becomes "uncertain"). Returns per-detector JSON, or ``ok: false`` and the reason."""
        comparison, error, record = _run_compare(pool, guard, request, file,
                                                 default_choice if chosen is None else chosen, bool(explain_it),
                                                 bool(stability))
        return comparison.to_dict() if comparison is not None else _error_payload(error, record)

    def ui_compare(file: Any, chosen: list[str] | None, explain_it: bool, stability: bool = False,
                   request: gr.Request = None) -> tuple[Any, Any, str, str, dict[str, Any]]:
        comparison, error, record = _run_compare(pool, guard, request, file, chosen, explain_it, stability)
        if comparison is None:
            gr.Warning(error)
            return None, None, f"**{error}**", panel_markdown(record), _error_payload(error, record)
        notes = "".join(f"\n\n_{n}_" for n in comparison.image["notes"])
        state = {
            "image": comparison.image,
            "results": [{**r.to_dict(), "box_image": r.box_image, "heatmap_image": r.heatmap_image,
                         "mask_image": r.mask_image} for r in comparison.results],
        }
        panel = panel_markdown(comparison.provenance, comparison.summary.get("provenance_conflict"))
        return state, comparison.preview, comparison.summary["text"] + notes, panel, comparison.to_dict()

    def ui_add_detector(text: str, chosen: list[str] | None) -> tuple[Any, str]:
        """Add a Hub repo by id (loaded once, cached in the pool) and tick it in the chooser."""
        try:
            name = pool.add(text)
        except AppInputError as exc:
            return gr.update(), f"**{exc}**"
        current = [c for c in (chosen or []) if c != name]
        return gr.update(choices=pool.names(), value=(current + [name])[-MAX_SIDES:]), f"Added `{name}`."

    def api_add_detector(repo_id: str) -> dict[str, Any]:
        """Add a Hub image classifier by id (org/name[@revision]); returns its name or why it was refused."""
        try:
            return {"ok": True, "name": pool.add(repo_id), "error": None, "detectors": pool.names()}
        except AppInputError as exc:
            return {"ok": False, "name": None, "error": str(exc), "detectors": pool.names()}

    def load_example(request: gr.Request) -> tuple[Any, Any, Any, str, str, dict[str, Any]]:
        """``?example=N`` in the page URL runs example N on load (links and the browser test use it)."""
        raw = request.query_params.get("example") if request is not None else None
        if raw is None or not example_paths:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        try:
            path = example_paths[int(raw) % len(example_paths)]
        except ValueError:
            return (gr.update(), gr.update(), gr.update(), f"**?example={raw}: expected a number**", gr.update(),
                    gr.update())
        state, preview, text, panel, payload = ui_compare(path, default_choice, True, False, request)
        servable = any(Path(path).resolve().is_relative_to(Path(d).resolve()) for d in (tempfile.gettempdir(), "."))
        return (path if servable else gr.update()), state, preview, text, panel, payload

    heavy = {"concurrency_id": HEAVY, "concurrency_limit": guard.limits.heavy_jobs}
    state = gr.State(None)  # this session's last comparison
    with gr.Tab("Compare"):
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Image (any format; decoded by hubdet)", type="filepath",
                                 elem_id="hubdet-upload")
                chooser = gr.CheckboxGroup(choices=names, value=default_choice,
                                           label=f"Detectors ({min(MIN_SIDES, len(names))} to {MAX_SIDES})",
                                           elem_id="hubdet-detectors")
                with gr.Row():
                    hub_box = gr.Textbox(label="Add a Hub image classifier (org/name[@revision])", scale=3,
                                         placeholder="umm-maybe/AI-image-detector", elem_id="hubdet-add-id")
                    add_btn = gr.Button("Add", scale=1, elem_id="hubdet-add")
                add_note = gr.Markdown(elem_id="hubdet-add-note")
                explain_box = gr.Checkbox(value=True, label="Explanation heatmaps")
                stability_box = gr.Checkbox(value=False, label="Stability check (JPEG, half size, blur; 4x slower)",
                                            elem_id="hubdet-stability")
                mask_toggle = gr.Checkbox(value=True, label="Show inpainting masks (detectors that draw one)",
                                          elem_id="hubdet-mask-toggle")
                compare_btn = gr.Button("Compare", variant="primary", elem_id="hubdet-compare")
                if example_paths:
                    gr.Examples(examples=[[p] for p in example_paths], inputs=[upload], label="Examples")
            with gr.Column(scale=2):
                preview = gr.Image(label="Decoded image", type="pil", interactive=False, height=320)
                summary = gr.Markdown(elem_id="hubdet-summary")
        # what the file itself declares (C2PA, IPTC source type, generator metadata), above the pixel verdicts
        with gr.Group():
            provenance_panel = gr.Markdown(elem_id="hubdet-provenance", padding=True)

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
        compare_btn.click(ui_compare, [upload, chooser, explain_box, stability_box],
                          [state, preview, summary, provenance_panel, raw],
                          api_visibility="private", **heavy)
        # the API's own inputs: their values are the documented defaults a client gets when it leaves them out
        api_file = gr.File(visible=False, type="filepath")
        api_chosen = _optional_choice(gr.CheckboxGroup(choices=names, value=default_choice, visible=False))
        api_explain = gr.Checkbox(value=False, visible=False)
        api_stability = gr.Checkbox(value=False, visible=False)
        api_btn = gr.Button(visible=False)
        api_btn.click(api_compare, [api_file, api_chosen, api_explain, api_stability], [raw], api_name="compare",
                      api_description="Run the chosen detectors (default: the first four) on one image file; "
                                      "heatmaps only with explain_it=True; stability=True also scores degraded "
                                      "copies. Returns per-detector JSON, or ok=false and the reason.", **heavy)
        demo.load(load_example, None, [upload, state, preview, summary, provenance_panel, raw],
                  api_visibility="private", **heavy)
        add_btn.click(ui_add_detector, [hub_box, chooser], [chooser, add_note], api_visibility="private", **heavy)
    gr.api(api_add_detector, api_name="add_detector", **heavy)


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
    if res.get("prob_fake") is None:
        return f"{head}\n\n**cannot judge** this image: {res.get('reason') or 'no reason given'}"
    lines = [head, f"verdict: **{str(res['verdict']).upper()}**", f"fake probability: **{res['prob_fake']:.3f}**",
             f"time: {1000 * float(res['seconds']):.0f} ms"]
    stab = res.get("stability")
    if stab:
        copies = ", ".join(f"{name} {c['verdict']} ({c['prob_fake']:.2f})" for name, c in stab["checks"].items()
                           if c.get("prob_fake") is not None)
        lines.append(("stable: every degraded copy agrees" if stab["stable"] else
                      f"**unstable**: was {stab['original_verdict']}, a degraded copy disagrees") + f" ({copies})")
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
def batch_tab(pool: DetectorPool, guard: _Guard) -> None:
    """The Batch tab (files and zips x detectors, with a CSV) and the ``/batch`` endpoint
    (``/batch(files, chosen=<all detectors>)``; omitted or ``null``: every detector)."""
    names = pool.names()
    limits = guard.limits.batch

    def run_batch(files: Any, chosen: list[str] | None = None,
                  request: gr.Request = None) -> tuple[Any, str | None, str]:
        paths = [p for p in (_file_path(f) for f in (files or [])) if p]
        chosen = names if chosen is None else chosen
        try:
            guard.admit(request)
            rows = batch(pool, paths, chosen, limits=limits, max_pixels=guard.limits.max_pixels,
                         max_file_bytes=guard.limits.max_upload_bytes)
        except AppInputError as exc:
            return [], None, f"**{exc}**"
        except Exception as exc:  # a bug must still reach the caller as a reason
            logger.exception("batch failed")
            return [], None, f"**internal error: {type(exc).__name__}: {exc}**"
        finally:
            release_memory()
        import pandas as pd

        table = pd.DataFrame(rows, columns=BATCH_COLUMNS)
        csv_path = rows_to_csv(rows)
        n_bad = len({r["file"] for r in rows if r["error"] and r["verdict"] != "cannot_judge"})
        n_unjudged = len({r["file"] for r in rows if r["verdict"] == "cannot_judge"})
        n_files = len({r["file"] for r in rows})
        note = f"{n_files} file(s) x {len(list(dict.fromkeys(chosen or [])))} detector(s)"
        if n_unjudged:
            note += f"; {n_unjudged} file(s) that some detector cannot judge"
        note += f"; {n_bad} file(s) with errors (see the error column)." if n_bad else "."
        return table, str(csv_path), note

    with gr.Tab("Batch"):
        gr.Markdown(f"Several images or zip archives (at most {limits.max_files} files, "
                    f"{limits.max_zip_members} per zip, {limits.max_zip_total_bytes // 2**20} MiB uncompressed "
                    "per zip). Files that cannot be read appear as rows with their error.")
        with gr.Row():
            batch_files = gr.File(label="Images or .zip", file_count="multiple", type="filepath")
            batch_chooser = _optional_choice(gr.CheckboxGroup(choices=names, value=names, label="Detectors"))
        batch_btn = gr.Button("Run batch", variant="primary")
        batch_note = gr.Markdown()
        batch_table = gr.Dataframe(headers=BATCH_COLUMNS, label="Results", interactive=False, wrap=True)
        batch_csv = gr.File(label="CSV download", interactive=False)
        batch_btn.click(run_batch, [batch_files, batch_chooser], [batch_table, batch_csv, batch_note],
                        api_name="batch", api_description="Score several files or zips with every chosen "
                                                          "detector (default: all); returns the table and a CSV.",
                        concurrency_id=HEAVY, concurrency_limit=guard.limits.heavy_jobs)


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


def _error_payload(message: str, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"ok": False, "error": message, "image": None, "results": [], "summary": None, "provenance": provenance}
