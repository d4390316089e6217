"""A last readable copy of Ray's experiment state, for --resume after a crash mid-write.

Ray rewrites `experiment_state-*.json` (and the searcher's `search_gen_state-*.json` and
`searcher-state-*.pkl`) in place as a run goes on; a driver killed during such a write leaves an
empty or truncated file, and Tuner.restore then silently starts the whole experiment over. `StateBackup` (a Tune callback in the driver) copies each state file aside
whenever it changed and parses, and `repair` puts that copy back before a restore. It also
keeps each trial's previous checkpoint (`tuning.checkpoint_hold`) until a state it backed up names
the new one, since both copies of the state may name the previous one until then.
"""

from __future__ import annotations

import json
import logging
import os
import pickletools
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from runtime import write_atomic
from tuning.checkpoint_hold import hold, release

logger = logging.getLogger(__name__)


def _whole_pickle(data: bytes) -> None:
    """Raise unless `data` is one complete pickle stream, without unpickling it: loading the
    searcher's state would build its Optuna storage, which recreates a deleted optuna.db."""
    *_, (last, _, _) = pickletools.genops(data)
    if last.name != "STOP":
        raise ValueError("pickle stream without STOP")


#: Ray's driver-side state files, each with the parser that tells a whole file from a cut one
PATTERNS = {"experiment_state-*.json": json.loads, "search_gen_state-*.json": json.loads,
            "searcher-state-*.pkl": _whole_pickle}
SUFFIX = ".last-good"


def _state_files(folder: Path) -> list[tuple[Path, Any]]:
    return [(path, parse) for pattern, parse in PATTERNS.items() for path in folder.glob(pattern)]


def _readable(path: Path, parse: Any = json.loads) -> bytes | None:
    """The file's bytes if they parse (our own run's files), else None."""
    try:
        data = path.read_bytes()
        parse(data)
    except Exception:                                # a cut file raises ValueError, JSONDecodeError, ...
        return None
    return data


class StateBackup(Callback):
    """Copies every changed, readable experiment state file to `<name>.last-good` (atomically),
    and holds each trial's superseded checkpoint until both copies name its successor."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._seen: dict[str, int] = {}
        self._held: list[tuple[int, Path]] = []      # (when held, the copy), oldest first

    def __setstate__(self, state: dict) -> None:
        """Ray restores callbacks from the Tuner pickled when the experiment started, possibly by
        older code: fill what that code did not have yet."""
        self.__dict__.update({"_seen": {}, "_held": [], **state})

    def save(self) -> None:
        files = _state_files(self.folder)
        for path, parse in files:
            try:
                stamp = path.stat().st_mtime_ns
            except OSError:
                continue
            if self._seen.get(path.name) == stamp:
                continue
            data = _readable(path, parse)
            if data is None:                       # mid-write: try again on the next result
                continue
            try:
                write_atomic(path.with_name(path.name + SUFFIX), data)
            except OSError as exc:                 # e.g. a full disk: the copy is a safeguard, the
                logger.warning("could not keep a copy of %s (%s)", path.name, exc)   # run goes on
                continue
            self._seen[path.name] = stamp
        states = [path.name for path, _ in files if path.name.startswith("experiment_state-")]
        self._release_named_in_backup(max(states, default=None))     # Ray resumes from the newest name

    def _release_named_in_backup(self, state: str | None) -> None:
        """Release the copies held before the experiment state `state` was last backed up: that
        state was written after Ray recorded their successors (the driver is one thread), and
        the live file is at least as new."""
        backed_up = self._seen.get(state) if state else None
        if backed_up is None:
            return
        while self._held and self._held[0][0] < backed_up:
            release(self._held.pop(0)[1])

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        """Ray calls this just before it records `checkpoint` and deletes the trial's previous one."""
        previous = trial.checkpoint
        if previous is None or previous.filesystem.type_name != "local":
            return
        try:
            held = hold(Path(previous.path))
        except OSError as exc:                      # never let a safeguard fail Ray's checkpoint
            logger.warning("could not keep a copy of checkpoint %s (%s)", previous.path, exc)
            return
        if held is not None:
            self._held.append((time.time_ns(), held))   # file times are coarse and lag: a state
                                                         # stamped later was written later

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.save()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.save()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.save()                                 # after Ray's final state: the last copies go


def repair(folder: str | Path) -> list[str]:
    """Replace each unreadable state file by its last good copy; return their names."""
    repaired = []
    for path, parse in _state_files(Path(folder)):
        backup = path.with_name(path.name + SUFFIX)
        if _readable(path, parse) is None and backup.is_file() and _readable(backup, parse) is not None:
            os.replace(backup, path)
            logger.warning("experiment state %s was unreadable (a crash while Ray wrote it); "
                           "resuming from its last good copy", path)
            repaired.append(path.name)
    return repaired
