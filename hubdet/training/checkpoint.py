"""Checkpoints and model folders of a run.

Resumable checkpoints are accelerate's own: ``ProjectConfiguration(automatic_checkpoint_naming=True,
total_limit=keep)`` and ``save_state``/``load_state`` write ``<output_dir>/checkpoints/checkpoint_<i>`` (model,
optimizer, schedulers, RNG states of every rank, the step counter of gradient accumulation) and prune the oldest.
Beside accelerate's files each checkpoint holds ``trainer_state.json`` (:class:`TrainerState`: epoch, batches of
the epoch already trained, best value, history ...), written last, so a checkpoint without it is incomplete and
never resumed from. Model folders (``best/``, ``model/``) are written to a temporary folder and renamed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubdet._core.errors import ConfigError

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
CHECKPOINTS = "checkpoints"


@dataclasses.dataclass
class TrainerState:
    """What the loop needs to continue: ``epoch`` (epochs finished), ``batches_done`` (of the current epoch),
    optimizer steps, the best and early-stopping references, the epoch's partial loss sums and the history."""

    epoch: int = 0
    batches_done: int = 0
    global_step: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    es_best: float | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    partial_sums: list[float] | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def save(self, folder: Path) -> None:
        (folder / STATE_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=1))

    @classmethod
    def load(cls, folder: Path) -> TrainerState:
        return cls(**json.loads((folder / STATE_FILE).read_text()))


def _number(folder: Path) -> int:
    return int(re.findall(r"(\d+)$", folder.name)[0])


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """``checkpoints/checkpoint_<i>`` folders, oldest first (complete or not)."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"checkpoint_\d+", p.name)), key=_number)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (one with its trainer state) of a run, or ``None``."""
    done = [p for p in checkpoint_folders(output_dir) if (p / STATE_FILE).is_file()]
    return done[-1] if done else None


def project_configuration(output_dir: str | Path, *, keep: int) -> Any:
    """accelerate's ``ProjectConfiguration`` of a run: automatic checkpoint naming, the newest ``keep`` kept, and
    numbering that continues after the checkpoints already there (so a resumed run never overwrites one)."""
    from accelerate.utils import ProjectConfiguration

    existing = checkpoint_folders(output_dir)
    return ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(Path(output_dir) / "logs"),
                                automatic_checkpoint_naming=True, total_limit=keep,
                                iteration=_number(existing[-1]) + 1 if existing else 0)


def save_checkpoint(accelerator: Any, state: TrainerState) -> Path:
    """``accelerator.save_state()`` on every rank, then the trainer state (main process), then a barrier."""
    accelerator.wait_for_everyone()
    folder = Path(accelerator.save_state())
    if accelerator.is_main_process:
        state.save(folder)
    accelerator.wait_for_everyone()
    return folder


def resume(accelerator: Any, spec: str | None, output_dir: str | Path) -> TrainerState:
    """Load the checkpoint ``spec`` (``latest`` or a folder) into the prepared objects and return its trainer
    state; a fresh state without ``spec`` or when ``latest`` finds nothing."""
    if not spec:
        return TrainerState()
    folder = latest_checkpoint(output_dir) if spec == "latest" else Path(spec)
    if folder is None:
        logger.warning("resume=latest but no checkpoint under %s: starting fresh", Path(output_dir) / CHECKPOINTS)
        return TrainerState()
    if not (folder / STATE_FILE).is_file():
        raise ConfigError(f"{folder}: not a complete checkpoint (no {STATE_FILE})")
    accelerator.load_state(str(folder))
    state = TrainerState.load(folder)
    logger.info("resumed from %s (epoch %d, batch %d, step %d)", folder, state.epoch, state.batches_done,
                state.global_step)
    return state


def write_folder(final: Path, write: Callable[[Path], Any]) -> Path:
    """Run ``write(tmp)`` into ``<final>.tmp``, then swap it in for ``final`` (renames; the old copy is removed)."""
    tmp, old = final.with_name(final.name + ".tmp"), final.with_name(final.name + ".old")
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    write(tmp)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


def save_best(accelerator: Any, detector: Any, output_dir: Path) -> None:
    """The detector's weights (no card) to ``<output_dir>/best`` on the main process."""
    if accelerator.is_main_process:
        write_folder(output_dir / "best", lambda tmp: detector.save_pretrained(tmp, card=False))
    accelerator.wait_for_everyone()


def load_best(detector: Any, output_dir: Path) -> None:
    """Load ``<output_dir>/best`` into the detector (strictly), if it was written."""
    from hubdet.models.base import WEIGHTS_NAME

    folder = output_dir / "best"
    if (folder / WEIGHTS_NAME).is_file():
        detector.load_extra(folder)
        detector.load_weights(folder / WEIGHTS_NAME)
