"""A kept copy of a trial's previous checkpoint, for --resume after a driver killed mid-checkpoint.

When a trial reports a new checkpoint, Ray's driver records it and at once deletes the previous
one (`CheckpointConfig(num_to_keep=1)`); the experiment state that names the new checkpoint is
saved at the end of that driver step, a few seconds later on a busy machine. A driver killed in
between leaves a state naming a deleted checkpoint, and the resume errors that trial ("does not
exist on storage anymore"): a search loses a trial it had trained for minutes.

`hold` hard-links the previous checkpoint to `held_<name>` beside it just before Ray records the
new one (no bytes copied); `tuning.state_backup.StateBackup` releases the copy once a saved state
names the new one; `put_back` moves a copy whose checkpoint is gone back into place before a resume.
"""

from __future__ import annotations

import logging
import os
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
