"""Tail-aware multi-objective search: tune.objectives, the Pareto set, its hypervolume, and a
real Ray Tune + Optuna + ASHA run on MovieLens-100K with two objectives."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model import contract
from model.contract import ERRORED, STOPPED_EARLY, TERMINATED, UNFINISHED, pareto_front
from results.pareto import hypervolume, hypervolume_history
from settings import ConfigError
from tuning.config import load_config

TWO = ["valid_ndcg_10", "valid_tail_item_ndcg_10"]


# ---- configuration ------------------------------------------------------------------------------
def test_one_objective_is_the_default_and_prunes_on_it():
    tune = load_config(None, []).tune
    assert tune.objectives == [contract.METRIC] and tune.pruned_on == contract.METRIC


def test_prune_metric_defaults_to_the_first_objective():
    tune = load_config(None, [f"tune.objectives=[{TWO[1]},{TWO[0]}]"]).tune
    assert tune.pruned_on == TWO[1]
    assert load_config(None, [f"tune.objectives=[{TWO[1]},{TWO[0]}]",
                              "tune.prune_metric=valid_hit_10"]).tune.pruned_on == "valid_hit_10"


@pytest.mark.parametrize("override, message", [
    ("tune.objectives=[valid_ndcg_10,valid_tail_ndcg_10]", "tune.objectives: got 'valid_tail_ndcg_10'; allowed"),
    ("tune.objectives=[test_ndcg_10]", "tune.objectives: got 'test_ndcg_10'; allowed"),
    ("tune.objectives=[]", r"tune.objectives: got \[\]; allowed: a non-empty list"),
    ("tune.objectives=[valid_ndcg_10,valid_ndcg_10]", "allowed: a non-empty list of distinct"),
    ("tune.prune_metric=valid_n_users", "tune.prune_metric: got 'valid_n_users'; allowed"),
])
def test_a_bad_objective_is_one_line_naming_it_and_the_allowed(override, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(None, [override])
    assert "\n" not in str(caught.value) and "valid_[sampled_][GROUP_]{hit,ndcg}_{5,10,20}" in str(caught.value)


def test_bohb_takes_one_objective():
    with pytest.raises(ConfigError, match="tune.objectives: got 2 objectives with tune.sampler bohb"):
        load_config(None, [f"tune.objectives=[{','.join(TWO)}]", "tune.sampler=bohb", "tune.scheduler=hyperband"])


def test_the_allowed_names_are_exactly_what_the_evaluator_reports():
    """validation_metrics() is written out in model.contract (no torch to import a config); the
    evaluator's own summary of some ranks must have the same metric names, or they drifted."""
    from model.evaluate import summarize

    ranks = {"full": np.array([1, 5, 30]), "sampled": np.array([2, 3, 4])}
    groups = {g: np.array([True, False, True]) for g in contract.EVAL_GROUPS}
    reported = {f"valid_{k}" for k in summarize(ranks, groups, contract.EVAL_KS) if not k.startswith("n_")}
    assert reported == set(contract.validation_metrics())


def test_epoch_metrics_report_every_validation_metric_at_the_best_epoch():
    from types import SimpleNamespace

    report = SimpleNamespace(epoch=3, train_loss=1.0, best_valid_ndcg_10=0.3, best_epoch=2, seconds=1.0,
                             loss_parts={}, loss_shares={}, valid={"ndcg_10": 0.2, "tail_item_ndcg_10": 0.1},
                             best_valid={"ndcg_10": 0.3, "tail_item_ndcg_10": 0.05})
    metrics = contract.epoch_metrics(report)
    assert metrics[contract.at_best("valid_tail_item_ndcg_10")] == 0.05          # not the epoch's 0.1
    assert contract.at_best(contract.METRIC) == contract.BEST_SO_FAR and metrics[contract.BEST_SO_FAR] == 0.3


def test_asha_stops_on_the_prune_metric_and_the_search_on_every_objective():
    """Ray's schedulers take one metric: the Tuner's (ASHA's) is tune.prune_metric."""
    from test_tuning import tiny_config

    from tuning.runner import _tune_config

    config = tiny_config(Path("/tmp"), "x", SPACE, extra=(f"tune.objectives=[{','.join(TWO)}]",
                                                          "tune.prune_metric=valid_tail_item_hit_10"))
    assert _tune_config(config, None, None).metric == "valid_tail_item_hit_10"
    assert _tune_config(config.replace({"tune.prune_metric": ""}), None, None).metric == TWO[0]


# ---- Pareto selection ---------------------------------------------------------------------------
TABLE = [  # trial_id, state, (valid_ndcg_10, valid_tail_item_ndcg_10)
    ("t1", TERMINATED, (0.30, 0.01)),       # best overall: on the front
    ("t2", TERMINATED, (0.20, 0.05)),       # a trade-off: on the front
    ("t3", STOPPED_EARLY, (0.10, 0.08)),    # ASHA-stopped, best tail: on the front
    ("t4", TERMINATED, (0.19, 0.04)),       # dominated by t2
    ("t5", ERRORED, (0.90, 0.90)),          # errored: never on it, dominates nothing
    ("t6", TERMINATED, (0.20, 0.05)),       # equal to t2: both on it
    ("t7", TERMINATED, (0.50, math.nan)),   # a value not finite: never on it
    ("t8", UNFINISHED, (0.10, 0.02)),       # dominated by t2
    ("t9", TERMINATED, (0.40, None)),       # a value missing: never on it
]


def test_pareto_front_of_a_hand_made_table():
    assert pareto_front(TABLE) == ["t1", "t2", "t6", "t3"]


def test_an_errored_trial_is_never_on_the_front_even_alone():
    assert pareto_front([("e", ERRORED, (1.0, 1.0))]) == []
    assert pareto_front([("e", ERRORED, (1.0, 1.0)), ("a", STOPPED_EARLY, (0.1, 0.1))]) == ["a"]


def test_pareto_trials_of_a_results_table_and_reproduce_selection():
    from results.orchestration.reproduce import select_trials
    from results.tables import pareto_table

    trials = pd.DataFrame([{"trial_id": t, "state": s, TWO[0]: v[0], TWO[1]: v[1], "lr": 0.001}
                           for t, s, v in TABLE])
    trials.loc[trials["trial_id"] == "t1", "test_ndcg_10"] = 0.28
    table = pareto_table(trials, TWO)
    assert list(table["trial_id"]) == ["t1", "t2", "t6", "t3"]
    assert list(table.columns[:5]) == ["trial_id", "state", *TWO, "test_ndcg_10"]
    assert [row["trial_id"] for row in select_trials(trials, "pareto", TWO)] == ["t1", "t2", "t6", "t3"]
    assert [row["trial_id"] for row in select_trials(trials, "t4", TWO)] == ["t4"]


# ---- hypervolume --------------------------------------------------------------------------------
def test_hypervolume_of_hand_made_points():
    origin = (0.0, 0.0)
    assert hypervolume([(1.0, 1.0)], origin) == 1.0
    # two boxes overlapping in [0,1]x[0,1]: 2*1 + 1*3 - 1*1
    assert hypervolume([(2.0, 1.0), (1.0, 3.0)], origin) == pytest.approx(4.0)
    # a dominated point and a duplicate add nothing
    assert hypervolume([(2.0, 1.0), (1.0, 3.0), (0.5, 0.5), (1.0, 3.0)], origin) == pytest.approx(4.0)
    # a point not above the reference in every objective adds nothing
    assert hypervolume([(2.0, 0.0), (-1.0, 5.0)], origin) == 0.0
    assert hypervolume([(3.0, 3.0)], (1.0, 2.0)) == pytest.approx(2.0)
    # three objectives: a unit cube and a 2x1x1 box sharing [0,1]^3 -> 2
    assert hypervolume([(1.0, 1.0, 1.0), (2.0, 1.0, 1.0)], (0.0, 0.0, 0.0)) == pytest.approx(2.0)
    assert hypervolume([(1.0, 2.0, 1.0), (2.0, 1.0, 1.0), (1.0, 1.0, 2.0)], (0, 0, 0)) == pytest.approx(4.0)


def test_hypervolume_agrees_with_optunas_on_random_points():
    """Optuna's own (private) WFG implementation as an oracle, on minimised negatives."""
    from optuna._hypervolume import compute_hypervolume

    rng = np.random.default_rng(0)
    for dims in (2, 3, 4):
        points = rng.uniform(0.01, 1.0, size=(25, dims))
        ours = hypervolume(points.tolist(), (0.0,) * dims)
        assert ours == pytest.approx(compute_hypervolume(-points, np.zeros(dims)), rel=1e-12)


def test_hypervolume_history_never_falls_and_ignores_errored_trials():
    trials = pd.DataFrame([{"trial_id": t, "state": s, TWO[0]: v[0], TWO[1]: v[1]} for t, s, v in TABLE])
    history = hypervolume_history(trials, TWO)
    assert list(history["trial_id"]) == [t for t, _, _ in TABLE]
    assert history["hypervolume"].is_monotonic_increasing
    assert history["hypervolume"].iloc[0] == pytest.approx(0.30 * 0.01)
    front = [(0.30, 0.01), (0.20, 0.05), (0.10, 0.08)]
    assert history["hypervolume"].iloc[-1] == pytest.approx(hypervolume(front, (0, 0)))
    by_id = history.set_index("trial_id")["hypervolume"]
    assert by_id["t5"] == by_id["t4"]                       # the errored trial's (0.9, 0.9) adds nothing


def test_hypervolume_history_follows_the_start_time_not_the_random_trial_ids():
    """Ray's trial ids are random hex: the history must follow when each trial started."""
    rows = [("f1", 3.0, (0.30, 0.01)), ("a2", 1.0, (0.10, 0.08)), ("c3", 2.0, (0.20, 0.05))]
    trials = pd.DataFrame([{"trial_id": t, "state": TERMINATED, "started": at, TWO[0]: v[0], TWO[1]: v[1]}
                           for t, at, v in rows])
    history = hypervolume_history(trials, TWO)
    assert list(history["trial_id"]) == ["a2", "c3", "f1"]
    assert history["hypervolume"].iloc[0] == pytest.approx(0.10 * 0.08)


# ---- a real multi-objective run -----------------------------------------------------------------
SPACE = {
    "backbone": {"type": "categorical", "values": ["sasrec", "gru4rec"]},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
}


@pytest.fixture(scope="module")
def two_objective_run(ray_session, tmp_path_factory):
    from test_tuning import tiny_config
    from tuning.runner import run_experiment

    storage = tmp_path_factory.mktemp("runs")
    config = tiny_config(storage, "pareto", SPACE, extra=(f"tune.objectives=[{','.join(TWO)}]",))
    summary = run_experiment(config, progress=False)
    return config, summary, Path(summary["experiment"])


def _last(folder: Path, trial_id: str) -> dict:
    lines = (folder / f"trial_{trial_id}" / "result.json").read_text().splitlines()
    return json.loads(lines[-1])


@pytest.mark.slow
def test_study_is_multi_objective_with_true_states(two_objective_run):
    """COMPLETE trials hold each objective at their best epoch, ASHA-stopped ones are PRUNED
    without values or intermediate values (Optuna takes none in a multi-objective study)."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    from tuning.optuna_db import load_optuna_study

    config, summary, folder = two_objective_run
    study = load_optuna_study(folder, config.tune.name)
    assert study.directions == [StudyDirection.MAXIMIZE] * 2
    assert summary["stopped_early"] >= 1 and summary["terminated"] >= 1, summary["trial_states"]
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert set(by_ray_id) == set(summary["trial_states"])
    for trial_id, state in summary["trial_states"].items():
        trial, last = by_ray_id[trial_id], _last(folder, trial_id)
        assert trial.intermediate_values == {}
        if state == TERMINATED:
            assert trial.state == TrialState.COMPLETE
            assert trial.values == [last[f"best_{name}"] for name in TWO]
        else:
            assert (state, trial.state, trial.values) == (STOPPED_EARLY, TrialState.PRUNED, None)


@pytest.mark.slow
def test_tune_report_and_reproduce_agree_on_the_front(two_objective_run):
    from results.report import write_report
    from results.load import load_experiment
    from results.pareto import front_ids

    config, summary, folder = two_objective_run
    trials = load_experiment(folder)
    front = [row["trial_id"] for row in summary["pareto"]]
    assert front and front == front_ids(trials, TWO)
    for row in summary["pareto"]:          # the values at the best epoch, as the table reads them
        recorded = trials.set_index("trial_id").loc[row["trial_id"]]
        assert [row[name] for name in TWO] == [recorded[name] for name in TWO]
    report = write_report(folder)
    assert report["pareto"] == front and report["hypervolume"] > 0
    assert {"pareto_front", "hypervolume"} <= set(report["plots"])
    page = Path(report["html"]).read_text()
    assert all(f'id="{part}"' in page for part in ("section-pareto", "plot-pareto_front", "plot-hypervolume"))
    table = pd.read_csv(report["tables"]["pareto"])
    assert list(table["trial_id"]) == front
    finished = table[table["state"] == TERMINATED]
    assert finished["test_ndcg_10"].notna().all() and finished["test_tail_item_ndcg_10"].notna().all()
    history = pd.read_csv(report["tables"]["hypervolume"])
    assert len(history) == len(trials) and history["hypervolume"].iloc[-1] == pytest.approx(report["hypervolume"])


@pytest.mark.slow
def test_reproduce_pareto_reruns_every_front_trial_exactly(two_objective_run):
    from results.orchestration.reproduce import reproduce

    _, summary, folder = two_objective_run
    outcome = reproduce(str(folder), trial="pareto", progress=False)
    assert outcome["pareto"] == [row["trial_id"] for row in summary["pareto"]]
    assert outcome["match"] and outcome["abs_diff"] == 0.0, outcome


@pytest.mark.slow
def test_an_errored_trial_is_failed_in_the_study_and_off_the_front(ray_session, tmp_path):
    from optuna.trial import TrialState

    from test_tuning import tiny_config
    from tuning.runner import AllTrialsErrored, run_experiment
    from tuning.optuna_db import load_optuna_study

    config = tiny_config(tmp_path, "nan", {"lr": 1e30}, num_samples=1, max_failures=0,
                         extra=(f"tune.objectives=[{','.join(TWO)}]",))
    with pytest.raises(AllTrialsErrored) as failed:          # its only trial errored: the run fails
        run_experiment(config, progress=False)
    summary = failed.value.summary
    assert summary["errored"] == 1 and summary["pareto"] == []
    (trial,) = load_optuna_study(Path(summary["experiment"]), "nan").trials
    assert trial.state == TrialState.FAIL and trial.values is None


@pytest.mark.slow
def test_a_lost_study_is_rebuilt_multi_objective_from_rays_records(two_objective_run, tmp_path):
    from tuning.space import SearchSpace, flat_params
    from tuning.optuna_db import load_optuna_study
    from tuning.optuna_db_rebuild import rebuild_optuna_db

    config, _, folder = two_objective_run
    rebuild_optuna_db(tmp_path, "copy", str(folder), SearchSpace(config.tune.space, flat_params(config)), "a test",
                  tuple(TWO))
    rebuilt = {t.user_attrs["ray_trial_id"]: t for t in load_optuna_study(tmp_path, "copy").trials}
    original = {t.user_attrs["ray_trial_id"]: t for t in load_optuna_study(folder, config.tune.name).trials}
    assert len(load_optuna_study(tmp_path, "copy").directions) == 2 and set(rebuilt) == set(original)
    for trial_id, trial in original.items():
        assert (rebuilt[trial_id].state, rebuilt[trial_id].values) == (trial.state, trial.values), trial_id


def test_tune_prints_the_pareto_set_as_its_own_table(capsys):
    import launch

    summary = {"name": "x", "trials": 3, "objectives": TWO,
               "pareto": [{"trial_id": "t1", "state": TERMINATED, TWO[0]: 0.3, TWO[1]: 0.01},
                          {"trial_id": "t3", "state": STOPPED_EARLY, TWO[0]: 0.1, TWO[1]: 0.08}]}
    launch.emit_summary("experiment x", summary, as_json=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert "Pareto set over valid_ndcg_10, valid_tail_item_ndcg_10 (each at the trial's best epoch): 2 trials" in lines
    assert "t1  terminated  0.3000  0.0100" in lines and "t3  stopped_early  0.1000  0.0800" in lines
    assert not any(line.startswith("pareto ") for line in lines)           # not in the two-column table
    assert json.loads(lines[-1])["pareto"] == summary["pareto"]


def test_front_positions_follow_the_one_rule_ties_kept_nan_never():
    """results.pareto.front_indices (the study's arm fronts) is model.contract.pareto_front on
    positions: two trials with equal scores are both on the front, a NaN score never is."""
    from results.pareto import front_indices

    points = [(0.09, 0.03), (0.08, 0.04), (0.09, 0.03), (0.07, 0.02), (float("nan"), 0.5), (0.06, 0.05)]
    assert front_indices(points) == [0, 2, 1, 5]
