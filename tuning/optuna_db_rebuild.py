"""Rebuild an experiment's Optuna database from Ray's trial records when optuna.db is gone or broken.

Without this, a deleted or corrupt optuna.db made the experiment unresumable: the searcher that
Ray restores opens the study by name and fails (KeyError) on every try. Ray's own records (the
experiment state, read with ExperimentAnalysis, on local or cloud storage) still hold every
trial's sampled values, status and results, so at `--resume` the study is recreated from them:
finished trials COMPLETE with each objective at their best epoch, ASHA-stopped ones PRUNED, errored
ones FAIL, and trials Ray will continue RUNNING, each with its per-epoch values and the
`ray_trial_id` the restored searcher uses to find it again (StudySearch.restore). The damaged
file is kept beside it. Imports Ray and Optuna: only the runner's resume path imports this.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from model.contract import METRIC, MODE, STOPPED_EARLY, TERMINATED, TIME_ATTR, UNFINISHED, at_best
from tuning.space import SearchSpace
from tuning.optuna_db import OPTUNA_DB, load_optuna_study, optuna_storage
from tuning.summary import trial_state

logger = logging.getLogger(__name__)


def optuna_db_problem(folder: Path, name: str) -> str | None:
    """Why the study of experiment `name` in `folder` cannot be used (None when it can)."""
    if not (folder / OPTUNA_DB).is_file():
        return "the file is missing"
    try:
        load_optuna_study(folder, name).get_trials(deepcopy=False)
    except KeyError:
        return f"it holds no study named {name!r}"
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/sqlite errors of a damaged file
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return None


def _set_aside(path: Path) -> Path | None:
    if not path.exists():
        return None
    kept = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    path.rename(kept)
    return kept


def _optuna_state(state: str, score: Any) -> Any:
    from optuna.trial import TrialState

    if state == TERMINATED and score is not None:
        return TrialState.COMPLETE
    return {STOPPED_EARLY: TrialState.PRUNED, UNFINISHED: TrialState.RUNNING}.get(state, TrialState.FAIL)


def _intermediate(analysis: Any, trial_id: str, objectives: tuple[str, ...]) -> dict[int, float]:
    """The per-epoch values of the one objective (a multi-objective study takes none)."""
    frame = analysis.trial_dataframes.get(trial_id)
    metric = objectives[0]
    if len(objectives) > 1 or frame is None or metric not in getattr(frame, "columns", ()) \
            or TIME_ATTR not in frame.columns:
        return {}
    rows = frame[[TIME_ATTR, metric]].dropna()
    return {int(step): float(value) for step, value in zip(rows[TIME_ATTR], rows[metric])}


def study_trial(trial: Any, space: SearchSpace, analysis: Any, objectives: tuple[str, ...] = (METRIC,)) -> Any:
    """One Ray trial as an Optuna FrozenTrial (raw parameters replayed from its flat values)."""
    import optuna

    last = trial.last_result or {}
    state = trial_state(trial.status, last)
    values = [last.get(at_best(name)) for name in objectives]
    optuna_state = _optuna_state(state, None if None in values else values)
    params, distributions = space.raw(dict((trial.config or {}).get("params", {})))
    complete = optuna_state == optuna.trial.TrialState.COMPLETE
    return optuna.trial.create_trial(
        state=optuna_state, values=[float(v) for v in values] if complete else None, params=params,
        distributions=distributions, intermediate_values=_intermediate(analysis, trial.trial_id, objectives),
        user_attrs={"ray_trial_id": trial.trial_id, "ray_state": "running" if state == UNFINISHED else state,
                    "rebuilt_from_ray_records": True})


def rebuild_optuna_db(folder: Path, name: str, experiment_path: str, searched: SearchSpace, problem: str,
                  objectives: tuple[str, ...] = (METRIC,)) -> str:
    """Recreate the study from Ray's records; return the one line that says what happened."""
    import optuna
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(experiment_path)
    kept = _set_aside(folder / OPTUNA_DB)
    study = optuna.create_study(study_name=name, storage=optuna_storage(folder),
                                directions=["maximize" if MODE == "max" else "minimize"] * len(objectives))
    for trial in analysis.trials:
        study.add_trial(study_trial(trial, searched, analysis, objectives))
    where = f"; the damaged file is kept as {kept.name}" if kept else ""
    return (f"the Optuna study {str(folder / OPTUNA_DB)!r} could not be used ({problem}); rebuilt it from "
            f"{len(analysis.trials)} Ray trial records{where}")


def ensure_optuna_db(folder: Path, name: str, experiment_path: str, space: SearchSpace,
                 objectives: tuple[str, ...] = (METRIC,)) -> str | None:
    """Before a resume: rebuild the study if it cannot be used; the warning line, or None."""
    problem = optuna_db_problem(folder, name)
    if problem is None:
        return None
    message = rebuild_optuna_db(folder, name, experiment_path, space, problem, objectives)
    logger.warning(message)
    return message
