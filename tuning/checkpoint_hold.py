"""A kept copy of a trial's previous checkpoint, for --resume after a driver killed mid-checkpoint.

When a trial reports a new checkpoint, Ray's driver records it and at once deletes the previous
one (`CheckpointConfig(num_to_keep=1)`); the experiment state that names the new checkpoint is
saved at the end of that driver step, a few seconds later on a busy machine. A driver killed in
between leaves a state naming a deleted checkpoint, and the resume errors that trial ("does not
exist on storage anymore"): a search loses a trial it had trained for minutes.

`hold` hard-links the previous checkpoint to `held_<name>` beside it just before Ray records the
new one (no bytes copied); `tuning.state_backup.StateBackup` releases the copy once a saved state
names the new one; `put_back` moves a copy whose checkpoint is gone back into place before a resume.
`stand_in_for_missing` covers a checkpoint gone with no copy (a folder carried without them).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

PREFIX = "held_"


def _link_or_copy(source: str, target: str) -> None:
    """A hard link where the file system has them, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def hold(checkpoint: Path) -> Path | None:
    """Keep `checkpoint` (a folder) as `held_<name>` beside it; None when it is not there."""
    if not checkpoint.is_dir():
        return None
    held = checkpoint.with_name(PREFIX + checkpoint.name)
    if held.is_dir():
        return held
    partial = checkpoint.with_name(f".{held.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(checkpoint, partial, copy_function=_link_or_copy)
    os.replace(partial, held)                          # whole or absent, never half a copy
    return held


def release(held: Path) -> None:
    shutil.rmtree(held, ignore_errors=True)


def put_back(experiment: str | Path) -> list[str]:
    """Before a resume: move each held copy whose checkpoint is gone back to its name (the saved
    state may name it), drop the others; return the checkpoints put back. A copy the state no
    longer needed comes back too: at worst one spare checkpoint folder, never a lost trial."""
    restored = []
    for partial in Path(experiment).glob(f"*/.{PREFIX}*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
    for held in sorted(Path(experiment).glob(f"*/{PREFIX}checkpoint_*")):
        original = held.with_name(held.name.removeprefix(PREFIX))
        if original.exists():
            release(held)
            continue
        os.replace(held, original)
        logger.warning("checkpoint %s was deleted by a driver that ended before it saved the experiment "
                       "state; put back its kept copy so the trial resumes from it", original)
        restored.append(str(original))
    return restored


#: trial states a resume runs again (Ray's Trial.status values)
TO_RUN = ("RUNNING", "PAUSED", "PENDING")


def stand_in_for_missing(experiment: str | Path) -> list[str]:
    """Before a resume, after `put_back`: an empty folder at each checkpoint the saved state names
    for a trial still to run that is gone with no kept copy (a study folder carried to a fresh
    machine without its checkpoints, which .gitignore leaves out, or one deleted by hand). Ray
    errors a trial whose checkpoint is missing; given the empty folder, the trial finds it
    unreadable and restarts from scratch (tuning.trainable), so the search keeps its budget.
    Returns the folders made. Reads the newest experiment state; imports Ray to unpickle it."""
    folder = Path(experiment)
    states = sorted(folder.glob("experiment_state-*.json"))
    if not states:
        return []
    made = []
    for trial_json, runtime_json in json.loads(states[-1].read_text()).get("trial_data", []):
        trial, runtime = json.loads(trial_json), json.loads(runtime_json)
        named = _latest_checkpoint(runtime) if trial.get("status") in TO_RUN else None
        if named is None:
            continue
        stand_in = folder / Path(named).parent.name / Path(named).name
        if not stand_in.exists():
            stand_in.mkdir(parents=True)
            logger.warning("checkpoint %s of trial %s is missing (carried without checkpoints, or deleted): "
                           "the trial restarts from scratch", stand_in, trial.get("trial_id"))
            made.append(str(stand_in))
    return made


def _latest_checkpoint(runtime: dict) -> str | None:
    """The path of the newest checkpoint in a trial's saved checkpoint manager (None: none yet)."""
    manager = runtime.get("checkpoint_manager", {}).get("value")
    latest = pickle.loads(bytes.fromhex(manager)).latest_checkpoint_result if manager else None
    return latest.checkpoint.path if latest is not None and latest.checkpoint is not None else None
