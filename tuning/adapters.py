"""Every private attribute of Ray Tune and Optuna that icc-tune uses, and nowhere else.

Neither library offers public API for these: the storage behind an Optuna study, the storage id
of a trial, the Ray trial records behind a ResultGrid (their status and error file), and the
state OptunaSearch keeps per Ray trial (which StudySearch extends). tests/test_adapters.py checks
each on the installed versions, so an upgrade that removes one fails there, by name, instead of
deep inside a run. Imports neither library: the callers pass their objects in.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


# ---- Optuna -----------------------------------------------------------------------------------
def study_storage_of(study: Any) -> Any:
    """The storage of an optuna.Study (`Study._storage`)."""
    return study._storage


@contextlib.contextmanager
def storage_url_moved(storage_class: Any, old_url: str, new_url: str) -> Iterator[None]:
    """While active, an optuna RDBStorage (`storage_class`) unpickled with `old_url` opens
    `new_url` instead (`__setstate__` connects to the pickled `url`): Ray's pickled searcher of an
    experiment carried to another path reopens the study where the experiment now is."""
    original = storage_class.__setstate__

    def moved(self: Any, state: dict) -> None:
        original(self, {**state, "url": new_url} if state.get("url") == old_url else state)

    storage_class.__setstate__ = moved
    try:
        yield
    finally:
        storage_class.__setstate__ = original


def storage_trial_id(trial: Any) -> int:
    """The storage id of an optuna Trial or FrozenTrial (`_trial_id`; `number` is per study)."""
    return trial._trial_id


# ---- Ray Tune ---------------------------------------------------------------------------------
def grid_trials(grid: Any) -> list:
    """The ray.tune.experiment.Trial records behind a ResultGrid (`_experiment_analysis`): status,
    last result and error file of every trial, which the public Result objects do not carry."""
    return grid._experiment_analysis.trials


# ---- OptunaSearch (the state StudySearch works with) --------------------------------------------
def search_trials(searcher: Any) -> dict[str, Any]:
    """Ray trial id -> its optuna.Trial (`OptunaSearch._ot_trials`)."""
    return searcher._ot_trials


def search_completed(searcher: Any) -> set[str]:
    """Ray trial ids already told to the study (`OptunaSearch._completed_trials`)."""
    return searcher._completed_trials


def search_study(searcher: Any) -> Any:
    """The optuna.Study the searcher asks and tells (`OptunaSearch._ot_study`)."""
    return searcher._ot_study


def set_search_study(searcher: Any, study: Any) -> None:
    searcher._ot_study = study


def search_study_name(searcher: Any) -> str:
    """The study name the searcher was given (`OptunaSearch._study_name`)."""
    return searcher._study_name


def search_space(searcher: Any) -> Any:
    """The search space the searcher was given (`OptunaSearch._space`)."""
    return searcher._space


# ---- AsyncHyperBandScheduler (its rungs, which tuning.asha keeps across a resume) -----------------
def asha_rungs(scheduler: Any) -> list[list[tuple[float, dict[str, float]]]]:
    """Per bracket, its rungs as (milestone, {trial id: recorded score}), copied
    (`AsyncHyperBandScheduler._brackets`, `_Bracket._rungs`)."""
    return [[(milestone, dict(recorded)) for milestone, recorded in bracket._rungs]
            for bracket in scheduler._brackets]


def set_asha_rungs(scheduler: Any, rungs: list) -> bool:
    """Put saved rung records back into the scheduler's own dicts (the brackets' trials keep
    pointing at them); False, changing nothing, when the milestones differ."""
    brackets = scheduler._brackets
    milestones = [[m for m, _ in bracket._rungs] for bracket in brackets]
    if milestones != [[m for m, _ in saved] for saved in rungs]:
        return False
    for bracket, saved in zip(brackets, rungs):
        for (_, recorded), (_, values) in zip(bracket._rungs, saved):
            recorded.clear()
            recorded.update(values)
    return True
