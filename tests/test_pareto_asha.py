"""ASHA over every objective at once (tune.prune_metric: pareto, tuning.pareto_asha): its fronts,
its rule at a rung, its rungs against Ray's, its records across a resume, and a real Ray Tune +
Optuna run on MovieLens-100K with it."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st
from ray.tune.schedulers import TrialScheduler

from settings import ConfigError
from tuning.config import load_config
from tuning.pareto_asha import ParetoASHA, asha_milestones, front_levels, survives

TWO = ["valid_ndcg_10", "valid_tail_item_ndcg_10"]
PARETO_SETS = [f"tune.objectives=[{','.join(TWO)}]", "tune.prune_metric=pareto"]
values = st.floats(0, 1, allow_nan=False)
points = st.lists(st.tuples(values, values), max_size=12)


def test_front_levels_of_hand_made_points():
    #            0: best overall  1: best tail  2: beaten by 0  3: beaten by 2 and 0  4: equal to 1
    assert front_levels([(0.3, 0.1), (0.1, 0.3), (0.2, 0.05), (0.1, 0.01), (0.1, 0.3)]) == [0, 0, 1, 2, 0]
    assert front_levels([(0.5, math.nan), (0.1, 0.1)]) == [0, 0]          # NaN counts as the worst value
    assert front_levels([(0.5, math.nan), (0.5, 0.1)]) == [1, 0]


def test_a_tail_strong_trial_continues_where_one_metric_would_stop_it():
    """At a rung of trials better overall, the one with the best tail is on the first front."""
    recorded = [(0.30, 0.010), (0.28, 0.012), (0.27, 0.011), (0.26, 0.013), (0.25, 0.009)]
    assert survives((0.10, 0.050), recorded, 3)
    assert not survives((0.10, 0.005), recorded, 3)                  # beaten by all five: stops
    assert sum(r[0] > 0.10 for r in recorded) >= math.ceil(6 / 3)     # overall alone would stop both


def test_the_first_trial_at_a_rung_always_continues():
    assert survives((0.0, 0.0), [], 3)


@given(points, st.tuples(values, values), st.sampled_from([2, 3, 4]))
def test_a_trial_no_recorded_trial_dominates_continues(recorded, point, rf):
    from model.contract import dominates

    if not any(dominates(r, point) for r in recorded):
        assert survives(point, recorded, rf)


@given(points, st.tuples(values, values), st.tuples(values, values), st.sampled_from([2, 3, 4]))
def test_a_better_trial_survives_wherever_a_worse_one_does(recorded, worse, gain, rf):
    better = (worse[0] + gain[0], worse[1] + gain[1])
    if survives(worse, recorded, rf):
        assert survives(better, recorded, rf)


@given(st.lists(values, max_size=12), values, st.sampled_from([2, 3, 4]))
def test_on_one_objective_it_keeps_a_trial_that_fewer_than_n_over_rf_beat(recorded, value, rf):
    n = len(recorded) + 1
    expected = not recorded or sum(r > value for r in recorded) < math.ceil(n / rf)
    assert survives((value,), [(r,) for r in recorded], rf) == expected


@given(st.integers(1, 5), st.integers(1, 100), st.sampled_from([2, 3, 4, 2.5]))
def test_the_rungs_are_rays_asha_rungs(grace, extra, rf):
    from ray.tune.schedulers.async_hyperband import _Bracket

    max_t = grace + extra
    assert asha_milestones(grace, max_t, rf) == [m for m, _ in _Bracket(grace, max_t, rf, 0)._rungs]


# ---- the scheduler ------------------------------------------------------------------------------
def _scheduler() -> ParetoASHA:
    return ParetoASHA(TWO, time_attr="epoch", max_t=30, grace_period=3, reduction_factor=3)


def _report(scheduler: ParetoASHA, trial_id: str, epoch: int, ndcg: float, tail: float) -> str:
    return scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial_id),
                                     {"epoch": epoch, TWO[0]: ndcg, TWO[1]: tail})


def test_trials_are_judged_once_per_rung_against_those_before_them():
    scheduler = _scheduler()
    assert _report(scheduler, "a", 1, 0.1, 0.1) == TrialScheduler.CONTINUE      # before the first rung
    assert _report(scheduler, "a", 3, 0.30, 0.010) == TrialScheduler.CONTINUE   # first at rung 3
    assert _report(scheduler, "b", 3, 0.10, 0.050) == TrialScheduler.CONTINUE   # a trade-off: front 0
    assert _report(scheduler, "c", 3, 0.20, 0.030) == TrialScheduler.CONTINUE   # front 0 too
    assert _report(scheduler, "d", 3, 0.05, 0.001) == TrialScheduler.STOP       # 3 of 4 ahead: >= ceil(4/3)
    assert _report(scheduler, "a", 4, 0.0, 0.0) == TrialScheduler.CONTINUE      # recorded at 3, not at 9 yet
    assert _report(scheduler, "a", 30, 0.4, 0.02) == TrialScheduler.STOP        # the budget's end
    assert [len(r) for _, r in scheduler.rungs] == [0, 0, 4]
    assert scheduler.stopped == 2


def test_a_result_without_every_objective_is_not_judged():
    scheduler = _scheduler()
    action = scheduler.on_trial_result(None, SimpleNamespace(trial_id="a"), {"epoch": 3, TWO[0]: 0.1})
    assert action == TrialScheduler.CONTINUE and all(not r for _, r in scheduler.rungs)


def test_its_rungs_survive_a_resume_through_the_rung_keeper():
    import pickle

    from tuning.asha import RungKeeper

    before = _scheduler()
    for trial_id, ndcg, tail in (("a", 0.3, 0.01), ("b", 0.1, 0.05), ("c", 0.2, 0.005)):
        _report(before, trial_id, 3, ndcg, tail)
    state = pickle.loads(pickle.dumps(RungKeeper(before).get_state()))
    after = _scheduler()
    RungKeeper(after).set_state(state)
    assert after.rungs == before.rungs
    assert _report(after, "d", 3, 0.05, 0.001) == _report(before, "d", 3, 0.05, 0.001) == TrialScheduler.STOP
    other = ParetoASHA(TWO, time_attr="epoch", max_t=12, grace_period=2, reduction_factor=3)
    assert not other.restore_rungs(state["rungs"])                      # other milestones: refused


# ---- configuration ------------------------------------------------------------------------------
def test_pareto_prunes_on_every_objective_and_gives_ray_the_first():
    from test_tuning import tiny_config

    from tuning.runner import _scheduler as make_scheduler, _tune_config

    config = tiny_config(Path("/tmp"), "x", {}, extra=tuple(PARETO_SETS))
    assert config.tune.prunes_on_front and config.tune.pruned_on == TWO[0]
    scheduler = make_scheduler(config)
    assert isinstance(scheduler, ParetoASHA) and scheduler.metrics == TWO
    assert _tune_config(config, None, scheduler).metric == TWO[0]


@pytest.mark.parametrize("extra", [["tune.prune_metric=pareto"],
                                   [*PARETO_SETS, "tune.scheduler=none"]])
def test_pareto_needs_two_objectives_and_asha(extra):
    with pytest.raises(ConfigError, match=r"^tune.prune_metric: got 'pareto' .*allowed: pareto with two or more"):
        load_config(None, extra)


# ---- a real run ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_two_objective_search_prunes_on_the_front_and_keeps_every_trial(ray_session, tmp_path):
    """Through Ray Tune and Optuna: trials stop at the rungs, the stopped ones are PRUNED, the
    others COMPLETE with both objectives, and each stopped trial was behind at its rung."""
    from optuna.trial import TrialState

    from model.contract import STOPPED_EARLY, TERMINATED
    from test_multiobjective import SPACE
    from test_tuning import tiny_config
    from tuning.optuna_db import load_optuna_study
    from tuning.runner import run_experiment

    config = tiny_config(tmp_path, "front", SPACE, extra=tuple(PARETO_SETS), num_samples=6)
    summary = run_experiment(config, progress=False)
    states = summary["trial_states"]
    assert summary["finished"] == 6 and set(states.values()) <= {STOPPED_EARLY, TERMINATED}, states
    assert STOPPED_EARLY in states.values(), states
    study = load_optuna_study(Path(summary["experiment"]), config.tune.name)
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    for trial_id, state in states.items():
        expected = TrialState.PRUNED if state == STOPPED_EARLY else TrialState.COMPLETE
        assert by_ray_id[trial_id].state == expected


# ---- the first rung of a finished search, replayed (results.rung_replay) --------------------------
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=15), st.sampled_from([2, 3, 4]))
def test_the_replayed_one_metric_rule_is_rays_asha_at_one_rung(values, rf):
    from ray.tune.schedulers.async_hyperband import _Bracket

    from results.rung_replay import asha_keeps

    bracket = _Bracket(3, 30, rf, 0)
    ray = [bracket.on_result(SimpleNamespace(trial_id=str(i)), 3, v) == TrialScheduler.CONTINUE
           for i, v in enumerate(values)]
    assert asha_keeps(values, rf) == ray


def test_the_committed_beauty_search_replays_to_what_asha_did_there():
    """The first rung of the Beauty study's LLM-ESR search: Ray's rule replayed in arrival order
    stops exactly the trials that stopped at epoch 3; the Pareto rule keeps every trial there on
    the rung's first front."""
    from results.rung_replay import first_rung_replay, replay_row

    replay = first_rung_replay(Path(__file__).resolve().parents[1] / "docs/studies/amazon-beauty/search/llmesr-sasrec")
    arrivals, row = replay["arrivals"], replay_row(replay)
    assert replay["rung"] == 3 and row["trials"] == 20 == len(arrivals)
    assert row["replay_matches"] == 20
    assert 0 < row["asha_keeps"] < 20 and (~arrivals["asha"]).sum() == arrivals["stopped_there"].sum()
    points = arrivals[TWO].to_numpy().tolist()
    levels = [front_levels(points[: i + 1])[-1] for i in range(len(points))]
    assert all(kept for kept, level in zip(arrivals["pareto"], levels) if level == 0)
