"""The Optuna database of an experiment (OPTUNA_DB, optuna.db): the SQLite file inside the
experiment folder that holds its Optuna study, readable without Ray.

optuna-dashboard opens it with `optuna-dashboard sqlite:///<experiment>/optuna.db`.
Each study trial carries the user attributes `ray_trial_id` and `ray_state` (running,
terminated, stopped_early, errored, lost), so the study and Ray's results join on the trial id.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from model.contract import BEST_SO_FAR, LOST, STOPPED_EARLY, TERMINATED, UNFINISHED
from tuning.adapters import storage_trial_id, study_storage_of

OPTUNA_DB = "optuna.db"


def optuna_storage(folder: str | Path) -> Any:
    """The SQLite study storage in `folder` (created if missing)."""
    import optuna

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(storage_url(folder))


def storage_url(folder: str | Path) -> str:
    """The SQLAlchemy URL of the study database in `folder` (absolute, as Ray pickles it)."""
    return f"sqlite:///{(Path(folder) / OPTUNA_DB).resolve()}"


def saved_storage_url(experiment: str | Path) -> str | None:
    """The URL of the study database Ray's saved searcher (tuner.pkl) opens on resume, read from
    the pickle's bytes without unpickling it (unpickling connects to it); None when there is
    none. It is absolute: where the experiment started (tuning.runner.optuna_db_moved)."""
    tuner = Path(experiment) / "tuner.pkl"
    found = re.search(rb"sqlite:///[^\x00-\x1f]*?/" + re.escape(OPTUNA_DB.encode()), tuner.read_bytes()) \
        if tuner.is_file() else None
    return found.group(0).decode(errors="replace") if found else None


def load_optuna_study(folder: str | Path, name: str) -> Any:
    """Open an experiment's study (folder holding optuna.db, study name = experiment name)."""
    import optuna

    if not (Path(folder) / OPTUNA_DB).is_file():
        raise FileNotFoundError(f"no Optuna study {OPTUNA_DB} in {str(folder)!r}")
    return optuna.load_study(study_name=name, storage=optuna_storage(folder))


def reconcile(study: Any, rows: list[dict]) -> int:
    """Close study trials still RUNNING after the run: tell them their Ray state, or FAIL as "lost".
    A finished one is told its `values` (tuning.summary.trial_rows: each objective at its best
    epoch; a row without them, its best validation NDCG@10).

    A driver killed between a trial's end and the searcher's next save leaves its study trial
    RUNNING; trials suggested but never recorded by Ray are lost. Returns how many were closed.
    """
    from optuna.trial import TrialState

    by_id = {row["trial_id"]: row for row in rows}
    closed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        row = by_id.get(trial.user_attrs.get("ray_trial_id"))
        state = row["state"] if row else LOST
        if state == UNFINISHED:
            continue
        values = None
        optuna_state = {TERMINATED: TrialState.COMPLETE, STOPPED_EARLY: TrialState.PRUNED}.get(
            state, TrialState.FAIL)
        if optuna_state == TrialState.COMPLETE:
            values = list(row.get("values", [row.get(BEST_SO_FAR)]))
            if len(values) != len(study.directions) or None in values:
                optuna_state, values = TrialState.FAIL, None
        study_storage_of(study).set_trial_user_attr(storage_trial_id(trial), "ray_state", state)
        if trial.state == TrialState.WAITING:       # enqueued, never asked: Optuna refuses to tell it
            study_storage_of(study).set_trial_state_values(storage_trial_id(trial), TrialState.RUNNING)
        study.tell(trial.number, values, state=optuna_state)
        closed += 1
    return closed
