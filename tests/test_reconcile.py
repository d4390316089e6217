"""tuning.optuna_db.reconcile against real Optuna studies (in memory and the SQLite file the runner
uses): study trials left open after a run are closed with their Ray fate, nothing else changes."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from tuning.optuna_db import reconcile, optuna_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Ray trial id -> (its row in the run's summary or None when Ray never recorded it,
#:                  expected Optuna state, expected value, expected ray_state)
OPEN = {
    "t-done": ({"state": "terminated", "best_valid_ndcg_10": 0.125}, TrialState.COMPLETE, 0.125, "terminated"),
    "t-asha": ({"state": "stopped_early", "best_valid_ndcg_10": 0.05}, TrialState.PRUNED, None, "stopped_early"),
    "t-raised": ({"state": "errored", "best_valid_ndcg_10": 0.07}, TrialState.FAIL, None, "errored"),
    "t-noscore": ({"state": "terminated", "best_valid_ndcg_10": None}, TrialState.FAIL, None, "terminated"),
    "t-lost": (None, TrialState.FAIL, None, "lost"),
}


@pytest.fixture(params=["memory", "sqlite"])
def study(request, tmp_path):
    storage = None if request.param == "memory" else optuna_storage(tmp_path)
    return optuna.create_study(study_name="exp", storage=storage, direction="maximize")


def open_trial(study, ray_id: str | None):
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    if ray_id is not None:
        trial.set_user_attr("ray_trial_id", ray_id)
        trial.set_user_attr("ray_state", "running")
    return trial


def by_ray_id(study) -> dict:
    return {t.user_attrs.get("ray_trial_id", f"#{t.number}"): t for t in study.get_trials()}


def test_open_trials_get_their_ray_fate(study):
    for ray_id in OPEN:
        open_trial(study, ray_id)
    rows = [{"trial_id": ray_id, **row} for ray_id, (row, *_) in OPEN.items() if row is not None]
    assert reconcile(study, rows) == len(OPEN)
    trials = by_ray_id(study)
    for ray_id, (_, state, value, ray_state) in OPEN.items():
        trial = trials[ray_id]
        assert (trial.state, trial.value, trial.user_attrs["ray_state"]) == (state, value, ray_state), ray_id


def test_unfinished_and_closed_trials_are_left_alone(study):
    running = open_trial(study, "t-running")
    told = open_trial(study, "t-told")
    study.tell(told, 0.3)
    rows = [{"trial_id": "t-running", "state": "unfinished", "best_valid_ndcg_10": 0.2},
            {"trial_id": "t-told", "state": "errored", "best_valid_ndcg_10": None}]
    assert reconcile(study, rows) == 0
    trials = by_ray_id(study)
    assert trials["t-running"].state == TrialState.RUNNING and trials["t-running"].number == running.number
    assert trials["t-told"].state == TrialState.COMPLETE and trials["t-told"].value == 0.3


def test_trial_without_a_ray_id_is_lost(study):
    open_trial(study, None)
    assert reconcile(study, [{"trial_id": "other", "state": "terminated", "best_valid_ndcg_10": 0.1}]) == 1
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["ray_state"] == "lost"


def test_enqueued_never_asked_trial_is_closed_as_lost(study):
    """A WAITING trial (enqueued, never asked) cannot be told; it is closed all the same."""
    study.enqueue_trial({"lr": 1e-3})
    assert reconcile(study, []) == 1
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["ray_state"] == "lost"


def test_second_reconcile_changes_nothing(study):
    for ray_id in OPEN:
        open_trial(study, ray_id)
    rows = [{"trial_id": ray_id, **row} for ray_id, (row, *_) in OPEN.items() if row is not None]
    reconcile(study, rows)
    before = [(t.number, t.state, t.value, dict(t.user_attrs)) for t in study.get_trials()]
    assert reconcile(study, rows) == 0
    assert [(t.number, t.state, t.value, dict(t.user_attrs)) for t in study.get_trials()] == before
