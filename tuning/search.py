"""Optuna (TPE or random) behind Ray Tune: trial configs written in, true states told to the study.

Ray's OptunaSearch records a trial that ASHA stopped as COMPLETE with its last value, so the
study cannot tell it from a finished one. `StudySearch` tells Optuna what happened: finished
trials COMPLETE with their best validation NDCG@10 (the weights that get tested), ASHA-stopped
ones PRUNED (Optuna keeps their last intermediate value and TPE learns from them), errored ones
FAIL. With several `tune.objectives` the study is multi-objective (every direction maximise):
a finished trial is told each objective's value at its best epoch (`best_<objective>`: the epoch
of the highest validation NDCG@10, whose weights get tested), so a point of the front is one
model. Optuna takes no intermediate values in a multi-objective study (`Trial.report` raises),
so none are written: a PRUNED trial carries no values there, and ASHA alone (on
`tune.prune_metric`) stops trials. It also turns Optuna's raw parameters into the trial's config,
{"params": flat values, "config": the full nested Config}, which Ray saves in params.json.
Imports Ray: import this module only where Ray is wanted.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from model.contract import ERRORED, FINISHED, METRIC, MODE, STOPPED_EARLY, TERMINATED, TIME_ATTR, at_best
from tuning.adapters import (search_completed, search_space, search_study, search_study_name, search_trials,
                             set_search_study, storage_trial_id, study_storage_of)
from tuning.config import Config, TuneConfig, config_from_dict, config_to_dict
from tuning.space import SearchSpace, flat_params, trial_config
from tuning.optuna_db import optuna_storage

logger = logging.getLogger(__name__)


class StudySearch(OptunaSearch):
    """OptunaSearch that writes full trial configs and true trial states into the study."""

    #: what the study maximises; the class default is what a searcher pickled before objectives existed had
    _objectives: tuple[str, ...] = (METRIC,)

    def __init__(self, space: SearchSpace, base: dict, objectives: tuple[str, ...] = (METRIC,), **kwargs: Any):
        several = len(objectives) > 1
        super().__init__(space=space, metric=list(objectives) if several else objectives[0],
                         mode=[MODE] * len(objectives) if several else MODE, **kwargs)
        self._base = base
        self._objectives = tuple(objectives)

    def suggest(self, trial_id: str) -> dict | None:
        raw = super().suggest(trial_id)
        if raw is None:
            return None
        ot_trial = search_trials(self)[trial_id]
        ot_trial.set_user_attr("ray_trial_id", trial_id)
        ot_trial.set_user_attr("ray_state", "running")
        params = search_space(self).resolve(raw)
        config = trial_config(config_from_dict(self._base), params)
        return {"params": params, "config": config_to_dict(config)}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Intermediate values keyed by epoch (not Ray's iteration), so a resumed trial continues."""
        if trial_id in search_completed(self) or trial_id not in search_trials(self):
            return
        self._report(search_trials(self)[trial_id], result)

    def _report(self, ot_trial: Any, result: dict) -> None:
        value, step = result.get(self._objectives[0]), result.get(TIME_ATTR)
        if len(self._objectives) > 1 or value is None or step is None:
            return
        known = study_storage_of(search_study(self)).get_trial(storage_trial_id(ot_trial)).intermediate_values
        if int(step) not in known:
            ot_trial.report(float(value), int(step))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in search_completed(self) or trial_id not in search_trials(self):
            return
        ot_trial = search_trials(self)[trial_id]
        if error:
            state, values, tag = TrialState.FAIL, None, ERRORED
        elif result and result.get(FINISHED) and (values := self._values(result)) is not None:
            state, tag = TrialState.COMPLETE, TERMINATED
        else:
            state, values, tag = TrialState.PRUNED, None, STOPPED_EARLY
        try:
            if result and not error:
                self._report(ot_trial, result)          # Tune passes the last result only here
            ot_trial.set_user_attr("ray_state", tag)
            search_study(self).tell(ot_trial, values, state=state)
        except Exception as exc:  # noqa: BLE001 - a study write must not stop the experiment
            logger.warning("could not record trial %s in the Optuna study: %s", trial_id, exc)
        search_completed(self).add(trial_id)

    def _values(self, result: dict) -> float | list[float] | None:
        """What a finished trial is told: each objective at its best epoch (one float for one)."""
        found = [result.get(at_best(name)) for name in self._objectives]
        if any(value is None for value in found):
            return None
        return float(found[0]) if len(found) == 1 else [float(value) for value in found]

    def restore(self, checkpoint_path: str) -> None:
        """Ray's restore, then each Ray trial re-found in the study by its `ray_trial_id`: the study
        may have been rebuilt from Ray's records (tuning.optuna_db_rebuild), with new Optuna ids."""
        super().restore(checkpoint_path)
        old = search_study(self)
        study = optuna.load_study(study_name=search_study_name(self), storage=study_storage_of(old),
                                  sampler=old.sampler, pruner=old.pruner)
        by_ray_id = {t.user_attrs.get("ray_trial_id"): t for t in study.get_trials(deepcopy=False)}
        set_search_study(self, study)
        trials = search_trials(self)
        for trial_id in list(trials):
            found = by_ray_id.get(trial_id)
            if found is None:                        # never recorded: its results are not the study's
                del trials[trial_id]
                continue
            trials[trial_id] = optuna.Trial(study, storage_trial_id(found))
            if found.state.is_finished():
                search_completed(self).add(trial_id)


def make_sampler(tune: TuneConfig) -> optuna.samplers.BaseSampler:
    """The seeded Optuna sampler `tune.sampler` names (random is the baseline TPE must beat)."""
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=tune.search_seed)
    with warnings.catch_warnings():        # multivariate and group are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=tune.search_seed, n_startup_trials=tune.n_startup_trials,
                                          multivariate=tune.multivariate, group=tune.multivariate)


def make_searcher(config: Config, optuna_db_folder: str | Path, study_name: str) -> Any:
    """A seeded searcher over `config.tune.space` (validated already), study in SQLite (none for
    bohb: tuning.bohb)."""
    if config.tune.sampler == "bohb":
        from tuning.bohb import make_bohb

        return make_bohb(config)
    sampler = make_sampler(config.tune)
    return StudySearch(
        space=SearchSpace(config.tune.space, flat_params(config)), base=config_to_dict(config),
        objectives=tuple(config.tune.objectives),
        sampler=sampler, study_name=study_name, storage=optuna_storage(optuna_db_folder),
    )
