"""The Optuna study of an experiment: SQLite inside the experiment folder, readable without Ray.

optuna-dashboard opens it with `optuna-dashboard sqlite:///<experiment>/optuna.db`.
Each study trial carries the user attributes `ray_trial_id` and `ray_state` (running,
terminated, stopped_early, errored, lost), so the study and Ray's results join on the trial id.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

#: The one place the optimised metric, its direction and the time attribute are defined.
METRIC = "valid_ndcg_10"
MODE = "max"
BEST_METRIC = "best_valid_ndcg_10"
TIME_ATTR = "epoch"
FINISHED = "finished"          # reported True by a trial that stopped by itself (not by ASHA)
DB_NAME = "optuna.db"


def rank_key(trial_id: Any, state: Any, score: Any) -> tuple[float, str] | None:
    """The one definition of "best", used by `launch.py tune`'s summary and by every results
    table: the highest best-epoch validation NDCG@10 first, the smaller trial id on ties. An
    errored trial, or one without a finite score, is never ranked (None), whatever it reported."""
    if state == "errored" or isinstance(score, bool) or not isinstance(score, numbers.Real):
        return None
    if not math.isfinite(score):
        return None
    return (-float(score), str(trial_id))


def study_storage(folder: str | Path) -> Any:
    """The SQLite study storage in `folder` (created if missing)."""
    import optuna

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(f"sqlite:///{(folder / DB_NAME).resolve()}")


def load_study(folder: str | Path, name: str) -> Any:
    """Open an experiment's study (folder holding optuna.db, study name = experiment name)."""
    import optuna

    if not (Path(folder) / DB_NAME).is_file():
        raise FileNotFoundError(f"no Optuna study {DB_NAME} in {str(folder)!r}")
    return optuna.load_study(study_name=name, storage=study_storage(folder))


def reconcile(study: Any, rows: list[dict]) -> int:
    """Close study trials still RUNNING after the run: tell them their Ray state, or FAIL as "lost".

    A driver killed between a trial's end and the searcher's next save leaves its study trial
    RUNNING; trials suggested but never recorded by Ray are lost. Returns how many were closed.
    """
    from optuna.trial import TrialState

    by_id = {row["trial_id"]: row for row in rows}
    closed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        row = by_id.get(trial.user_attrs.get("ray_trial_id"))
        state = row["state"] if row else "lost"
        if state == "unfinished":
            continue
        values = None
        optuna_state = {"terminated": TrialState.COMPLETE, "stopped_early": TrialState.PRUNED}.get(
            state, TrialState.FAIL)
        if optuna_state == TrialState.COMPLETE:
            if row["best_valid_ndcg_10"] is None:
                optuna_state = TrialState.FAIL
            else:
                values = row["best_valid_ndcg_10"]
        study._storage.set_trial_user_attr(trial._trial_id, "ray_state", state)
        if trial.state == TrialState.WAITING:       # enqueued, never asked: Optuna refuses to tell it
            study._storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING)
        study.tell(trial.number, values, state=optuna_state)
        closed += 1
    return closed
