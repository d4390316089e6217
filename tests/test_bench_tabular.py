"""The tabular benchmark (bench/tabular.py): a tiny real table on ml-100k, recorded by worker
processes, replayed through tuning.runner.run_experiment, and every reported number traced to it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

import tabular as B  # noqa: E402
import tabular_stats as S  # noqa: E402
import tabular_table as T  # noqa: E402
from tabular_replay import Event, available_methods, run_replay  # noqa: E402


@pytest.fixture(scope="module")
def ray_session():
    import ray

    from tabular_replay import start_ray

    assert start_ray(2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def smoke(ray_session, tmp_path_factory):
    """`bench/tabular.py --smoke`, end to end, in a fresh output folder."""
    out = tmp_path_factory.mktemp("tabular")
    args = ["--smoke", "--out", str(out)]
    assert B.main(args) == 0
    parsed = B.parse_args(args)
    folder = T.table_folder(out, B.base_config(parsed), parsed.preset["space"])
    return parsed, folder, T.load_table(folder)


def _recorded_best(folder: Path) -> float:
    """The best validation NDCG@10 in the record files, read without the benchmark's code."""
    values = [e["valid_ndcg_10"] for path in folder.glob("*.json") if path.name != "table.json"
              for e in json.loads(path.read_text())["epochs"]]
    return max(values)


@pytest.mark.slow
def test_smoke_records_every_distinct_model_with_full_curves(smoke):
    args, folder, table = smoke
    # gamma 0 makes n_clusters irrelevant: 2 backbones x (1 + 1 gamma x 2 n_clusters) = 6 models
    assert len(table["records"]) == 6 == len(list(folder.glob("*-*.json")))
    for record in table["records"].values():
        assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3]
        assert len(record["test"]) == 3 and all("ndcg_10" in t for t in record["test"])
        assert all(s > 0 for s in record["epoch_cpu_seconds"])
        assert record["recorded"]["torch_threads"] == 1
    assert not list(folder.glob(".*tmp*"))                       # atomic writes left nothing behind


@pytest.mark.slow
def test_smoke_report_numbers_come_from_the_table(smoke):
    args, folder, table = smoke
    grid = S.grid_figures(table, table["epochs"], 0, B.WORKERS)
    assert grid["best"] == _recorded_best(folder)                 # the grid's best is the table's best
    assert grid["epochs"] == 6 * 3
    best = table["records"][grid["best_key"]]
    assert grid["test"] == best["test"][best["epochs"][-1]["best_epoch"] - 1]["ndcg_10"]
    text = (folder / "report.md").read_text()
    assert f"grid's best valid NDCG@10 {grid['best']:.4f}" in text
    assert "| grid (every model) | 1/1 | 18 | 100.0 |" in text
    for method in available_methods():
        assert f"| {method} | " in text
    assert (folder / "anytime.png").stat().st_size > 1000


TWO = ["valid_ndcg_10", "valid_tail_item_ndcg_10"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tpe+asha", "bohb", "tpe+pareto-asha"])
def test_replayed_trials_report_their_recorded_curves(smoke, method):
    if method not in [*available_methods(), "tpe+pareto-asha"]:
        pytest.skip("bohb needs the bohb extra (hpbandster, ConfigSpace)")
    args, folder, table = smoke
    tune = {"grace_period": 1, "reduction_factor": 2.0, **({"objectives": TWO} if "pareto" in method else {})}
    replay = run_replay(table, method, 0, tune, 3, 0, 6, 2)
    assert replay.trials == 6 and replay.events
    by_trial: dict[str, list[Event]] = {}
    for event in replay.events:
        by_trial.setdefault(event.trial, []).append(event)
        recorded = table["records"][event.key]["epochs"][event.epoch - 1]
        assert event.value == recorded["valid_ndcg_10"] and event.seconds == recorded["epoch_seconds"]
        assert event.point == ([recorded[f"best_{name}"] for name in TWO] if "pareto" in method else [])
    stopped = 0
    for events in by_trial.values():                              # paused (bohb) trials resume, not restart
        assert [e.epoch for e in events] == list(range(1, len(events) + 1))
        assert events[-1].finished == (events[-1].epoch == 3)
        stopped += events[-1].epoch < 3
    assert stopped >= 1                                           # the scheduler stopped someone early
    assert replay.best_key == max(by_trial.values(), key=lambda es: max(e.value for e in es))[0].key


def test_final_report_carries_the_test_of_the_best_epoch():
    from tuning.replay import replayed_reports

    record = {"epochs": [{"epoch": 1, "best_epoch": 1, "valid_ndcg_10": 0.2},
                         {"epoch": 2, "best_epoch": 1, "valid_ndcg_10": 0.1},
                         {"epoch": 3, "best_epoch": 1, "valid_ndcg_10": 0.1}],
              "test": [{"ndcg_10": 0.5}, {"ndcg_10": 0.4}, {"ndcg_10": 0.3}]}
    full = list(replayed_reports(record, epochs=3, patience=0))
    assert [r["epoch"] for r in full] == [1, 2, 3] and full[-1]["test_ndcg_10"] == 0.5
    assert full[-1]["finished"] and not any("test_ndcg_10" in r for r in full[:-1])
    patient = list(replayed_reports(record, epochs=3, patience=1))   # stops as the trainer would
    assert [r["epoch"] for r in patient] == [1, 2] and patient[-1]["finished"]


def test_costs_to_target_follow_the_events():
    events = [Event("a", 1, 0.5, 10.0, "A", False, 0.0), Event("b", 1, 0.6, 1.0, "B", False, 1.0),
              Event("a", 2, 0.9, 10.0, "A", True, 2.0), Event("b", 2, 1.0, 1.0, "B", True, 3.0)]
    assert S.epochs_to_target(events, 0.99) == 4 and S.epochs_to_target(events, 2.0) is None
    assert S.epoch_end_times(events, 1) == [10.0, 21.0, 20.0, 22.0]     # b waits for a
    assert S.epoch_end_times(events, 2) == [10.0, 1.0, 20.0, 2.0]       # side by side
    assert S.wall_to_target(events, 0.95, 2) == 2.0
    assert S.greedy_makespan([10, 1, 1, 5], 2) == 10
    assert S.quartiles([1, 2, None]) == (2.0, 1.5, float("inf"))     # q3 interpolates towards "never"
    assert S.quartiles([3, None])[1] == float("inf") and S.quartiles([None]) == (float("inf"),) * 3


def test_full_space_has_enough_distinct_models():
    models = T.distinct_models(B.FULL["space"])
    assert len(models) >= 60
    assert len(T.distinct_models(B.ML100K["space"])) == 30 == 2 * 3 * (1 + 2 * 2)      # gamma 0 has no clusters
    assert B.parse_args(["--preset", "ml-100k"]).preset is B.ML100K
    assert sum(m["gamma"] == 0 for m in models) == 3 * 3              # one per backbone and lr


def test_sampler_and_scheduler_settings_are_typed():
    import optuna

    from settings import ConfigError
    from tuning.config import load_config
    from tuning.search import make_sampler

    config = load_config(None, ["tune.sampler=random", "tune.scheduler=none", "tune.search_seed=3"])
    assert isinstance(make_sampler(config.tune), optuna.samplers.RandomSampler)
    tpe = make_sampler(load_config(None, ["tune.multivariate=true"]).tune)
    assert isinstance(tpe, optuna.samplers.TPESampler) and tpe._multivariate
    with pytest.raises(ConfigError, match="tune.sampler: got 'grid'; allowed: one of 'tpe', 'random', 'bohb'"):
        load_config(None, ["tune.sampler=grid"])
    with pytest.raises(ConfigError, match="tune.scheduler: got 'hyperband' with tune.sampler 'tpe'"):
        load_config(None, ["tune.scheduler=hyperband"])
    with pytest.raises(ConfigError, match="tune.scheduler: got 'asha' with tune.sampler 'bohb'"):
        load_config(None, ["tune.sampler=bohb"])


def test_bohb_reads_the_same_space():
    pytest.importorskip("hpbandster")
    from tuning.bohb import config_space

    cs = config_space({"backbone": {"type": "categorical", "values": ["sasrec", "gru4rec"]}, "max_len": 20,
                       "gamma": {"type": "float", "low": 0.01, "high": 1.0, "log": True, "include_zero": True}}, 0)
    assert sorted(cs.keys()) == ["backbone", "gamma", "gamma_is_zero"]         # the fixed max_len is not searched
    assert cs["gamma"].log and list(cs["backbone"].choices) == ["sasrec", "gru4rec"]


def _synthetic_table() -> dict:
    def record(best: float) -> dict:
        return {"epochs": [{"epoch": 1, "best_epoch": 1, "valid_ndcg_10": best, "best_valid_ndcg_10": best,
                            "epoch_seconds": 1.0}], "test": [{"ndcg_10": best / 2}]}
    return {"epochs": 1, "space": {"backbone": ["a", "b"]}, "records": {"A": record(0.5), "B": record(1.0)}}


def test_tuner_grid_keeps_a_knob_only_when_it_reaches_the_target_sooner(monkeypatch):
    """The selection logic of --tuner-grid on fake replays: grace_period 1 reaches the target
    after 2 trial-epochs, everything else after 5; the choice is then judged on fresh seeds."""
    from tabular_replay import Replay

    calls = []

    def fake_replays(table, method, seeds, tune, args):
        calls.append((method, list(seeds), dict(tune)))
        hit = 2 if tune.get("grace_period") == 1 else 5
        events = [Event(f"t{i}", 1, 1.0 if i == hit else 0.1, 1.0, "B" if i == hit else "A", True, float(i))
                  for i in range(1, hit + 1)]
        return [Replay(method, seed, events, "B", hit, dict(tune)) for seed in seeds]

    monkeypatch.setattr(B, "replays", fake_replays)
    args = B.parse_args(["--smoke", "--seeds", "3"])
    table = _synthetic_table()
    grid = S.grid_figures(table, 1, 0, B.WORKERS)
    text, notes = B.tune_the_tuner(table, grid, args)
    assert "chosen: {'grace_period': 1}" in notes[0]
    fresh = [c for c in calls if c[1][0] >= B.HELD_OUT_SEED]
    assert [c[2] for c in fresh] == [{}, {"grace_period": 1}]
    assert all(method == "tpe+asha" for method, _, _ in calls)
    assert "| grace_period=1 | 3/3 | 2 [2, 2] |" in text and "| defaults | 3/3 | 5 [5, 5] |" in text


def test_goal_2_is_met_only_when_the_test_says_tpe_is_faster():
    """The report said "60 vs 62 -> met" while Mann-Whitney gave p = 0.90 (issue 24): a lower
    median of 20 seeds is no win. Goal 2 now needs the lower median and p < 0.05."""
    import tabular_report as R
    from scipy.stats import mannwhitneyu

    grid = {"epochs": 756}
    tied = {"tpe+asha": [{"epochs_to_target": e} for e in (30, 40, 50, 60, 60, 70, 80, 90, 200)],
            "random+asha": [{"epochs_to_target": e} for e in (32, 38, 52, 58, 62, 68, 85, 95, 210)]}
    line = R.goal_lines(tied, grid)[1]
    p = mannwhitneyu([30, 40, 50, 60, 60, 70, 80, 90, 200], [32, 38, 52, 58, 62, 68, 85, 95, 210]).pvalue
    assert line == (f"goal 2, TPE + ASHA needs fewer trial-epochs to target than random + ASHA: medians 60 vs "
                    f"62, Mann-Whitney U two-sided p = {p:.2f} (9 + 9 seeds) -> NOT met (no difference at p < 0.05)")
    faster = {"tpe+asha": [{"epochs_to_target": e} for e in range(10, 30, 2)],
              "random+asha": [{"epochs_to_target": e} for e in (*range(100, 190, 10), None)]}
    line = R.goal_lines(faster, grid)[1]
    assert line.endswith("(10 + 10 seeds) -> met") and "medians 19 vs 145" in line
    slower = {"tpe+asha": faster["random+asha"], "random+asha": faster["tpe+asha"]}
    assert R.goal_lines(slower, grid)[1].endswith("-> NOT met")
    assert S.mann_whitney([1, 2], [None, None]) == pytest.approx(mannwhitneyu([1, 2], [3, 3]).pvalue)
    assert S.mann_whitney([5], [6, 7]) is None and S.mann_whitney([4, 4], [4, 4]) is None


def test_a_table_is_keyed_by_the_epoch_choice_but_keeps_its_key_at_the_default(monkeypatch):
    """train.select_metric changes which epoch a curve's report takes, so a table recorded under
    one choice does not replay another; at its default it stays out of the key, so the tables
    recorded before the setting existed keep theirs."""
    import tuning.config
    from tuning.config import config_from_dict
    from tuning.replay import settings_key

    default = config_from_dict({})
    tail = config_from_dict({"train": {"select_metric": "tail_item_ndcg_10"}})
    assert settings_key(default, ["lr"]) != settings_key(tail, ["lr"])
    dict_of = tuning.config.config_to_dict
    before = lambda config: {**dict_of(config), "train": {k: v for k, v in dict_of(config)["train"].items()  # noqa: E731
                                                          if k != "select_metric"}}
    key = settings_key(default, ["lr"])
    monkeypatch.setattr(tuning.config, "config_to_dict", before)     # a config from before the setting
    assert settings_key(default, ["lr"]) == key


def test_front_figures_follow_each_trials_point_at_its_best_epoch():
    import tabular_front as F

    events = [Event("a", 1, 0.5, 1.0, "A", False, 0.0, [0.5, 0.1]),
              Event("b", 1, 0.2, 1.0, "B", False, 1.0, [0.2, 0.4]),
              Event("a", 2, 0.6, 1.0, "A", True, 2.0, [0.6, 0.1])]       # a's point moves to its new best
    assert F.hypervolume_curve(events) == pytest.approx([0.05, 0.05 + 0.2 * 0.3, 0.06 + 0.2 * 0.3])
    replay = B.Replay("x", 0, events, "A", 2)
    assert F.front_figures(replay, 0.12)["epochs_to_target"] == 3
    assert F.front_figures(replay, 0.2) == pytest.approx({"epochs_to_target": None, "final_share": 0.6, "epochs_total": 3})
    table = {"records": {k: {"epochs": [{"epoch": 1, "best_epoch": 1, "valid_ndcg_10": v[0], "best_valid_ndcg_10": v[0],
                                          "best_valid_tail_item_ndcg_10": v[1]}]} for k, v in
                         {"A": (0.6, 0.1), "B": (0.2, 0.4)}.items()}}
    assert F.grid_hypervolume(table, 1, 0, TWO) == pytest.approx(0.12)


def test_the_pareto_method_needs_two_objectives(capsys):
    with pytest.raises(SystemExit):
        B.parse_args(["--smoke", "--methods", "tpe+pareto-asha"])
    assert "tpe+pareto-asha needs two objectives" in capsys.readouterr().err
    assert "tpe+pareto-asha" not in available_methods()
    assert B.parse_args(["--smoke", "--methods", "tpe+pareto-asha", "--set", f"tune.objectives=[{','.join(TWO)}]"])
