"""Exact reproduction of recorded trials on CPU, from the experiment folder alone.

A real 2-trial experiment (ml-100k, tiny model, variant icc with gamma = 0.5 so the cluster
constraint is part of what must reproduce, and the control of `--seeds` must switch it off): the
first trial (lr 0.005) finishes, the second (lr 1e-4) is stopped by ASHA after its first epoch.
Both must re-run to the recorded validation NDCG@10 exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from test_results import build_small_experiment

pytestmark = pytest.mark.slow

SPACE = {"variant": "icc", "gamma": 0.5, "n_clusters": {"type": "categorical", "values": [4, 8]},
         "lr": {"type": "categorical", "values": [0.0001, 0.005]}}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    return build_small_experiment(tmp_path_factory.mktemp("reproduce"), num_samples=2, search_seed=7,
                                  space=SPACE)


@pytest.fixture(scope="module")
def trials(experiment):
    from results.load import load_experiment

    table = load_experiment(experiment)
    assert sorted(table["state"]) == ["stopped_early", "terminated"], table[["trial_id", "state", "lr"]]
    return table


def test_best_trial_reproduces_exactly_with_seeds_and_control(experiment, trials):
    from results.orchestration.reproduce import reproduce

    out = reproduce(str(experiment), "best", seeds=1, progress=False)
    best = trials.sort_values("valid_ndcg_10", ascending=False).iloc[0]
    assert out["device"] == "cpu" and out["tolerance"] == 0.0
    assert out["recorded"]["trial_id"] == best["trial_id"]
    assert out["recorded"]["valid_ndcg_10"] == best["valid_ndcg_10"]
    assert out["reproduced"]["valid_ndcg_10"] == best["valid_ndcg_10"]       # bit for bit
    assert out["match"] is True and out["abs_diff"] == 0.0 and out["best_epoch_match"]
    assert out["reproduced"]["test"]["test_ndcg_10"] == best["test_ndcg_10"]
    assert out["test_max_abs_diff"] == 0.0
    assert out["budget"] == {"epochs": 2, "patience": 0, "rule": "own budget"}

    seeds = out["seeds"]
    assert seeds["seeds"] == [42, 43]
    assert [r["gamma"] for r in seeds["control_runs"]] == [0.0, 0.0]
    assert [r["seed"] for r in seeds["control_runs"]] == [42, 43]
    config_test = seeds["config"]["test_ndcg_10"]
    assert config_test["values"][0] == best["test_ndcg_10"]
    assert math.isclose(config_test["mean"], sum(config_test["values"]) / 2)
    control_test = [r["test"]["test_ndcg_10"] for r in seeds["control_runs"]]
    assert seeds["control"]["test_ndcg_10"]["values"] == control_test
    test = seeds["paired_test"]
    assert test["test"].startswith("paired two-sided t-test") and test["n"] == 2
    differences = {a - b for a, b in zip(config_test["values"], control_test)}
    if len(differences) == 1:
        assert test["p_value"] is None and test["statistic"] is None
    else:
        from scipy import stats

        expected = stats.ttest_rel(config_test["values"], control_test)
        assert test["statistic"] == pytest.approx(float(expected.statistic), rel=1e-12)
        assert test["p_value"] == pytest.approx(float(expected.pvalue), rel=1e-12)


def test_asha_stopped_trial_reproduces_over_the_epochs_it_ran(experiment, trials):
    from results.orchestration.reproduce import reproduce

    stopped = trials[trials["state"] == "stopped_early"].iloc[0]
    out = reproduce(str(experiment), str(stopped["trial_id"]), progress=False)
    assert out["budget"]["epochs"] == stopped["epochs"] == 1
    assert out["budget"]["rule"] == "epochs the trial ran"
    assert out["reproduced"]["valid_ndcg_10"] == stopped["valid_ndcg_10"]
    assert out["match"] is True and out["seeds"] is None
    assert out["recorded"]["test"] == {}


def test_bad_requests(experiment, trials):
    from results.orchestration.reproduce import reproduce
    from results.load import ExperimentError

    with pytest.raises(ExperimentError, match="allowed: best or one of"):
        reproduce(str(experiment), "nosuchid", progress=False)
    with pytest.raises(ValueError, match="seeds: got -1"):
        reproduce(str(experiment), "best", seeds=-1, progress=False)


def test_a_run_reproduces_on_another_machine_given_where_its_data_lies(tmp_path, capsys):
    """A run file saves the data paths of the machine that trained it; `--set data.<location>=PATH`
    says where they lie here, and nothing else may change (or it would not be a reproduction)."""
    import json

    import launch
    from conftest import SHARED_DATA, TEST_CACHE
    from model.pipeline import train_once
    from tuning.config import config_to_dict, load_config

    config = load_config(None, [
        "data.name=ml-100k", f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}",
        "model.hidden_size=16", "model.max_len=10", "model.num_blocks=1", "model.adapter_hidden=32",
        "model.loss=ce", "model.teacher=epoch", "train.epochs=1", "train.batch_size=256", "train.device=cpu"])
    result = train_once(config)
    elsewhere = config.replace({"data.data_root": "/ran/elsewhere/data", "data.cache_dir": "/ran/elsewhere/cache"})
    run = tmp_path / "seed-42.json"
    run.write_text(json.dumps({"config": config_to_dict(elsewhere), "test": result.test,
                               "best_epoch": result.best_epoch}, default=str))
    assert launch.main(["reproduce", str(run), "--json", "--set", f"data.data_root={SHARED_DATA}",
                        "--set", f"data.cache_dir={TEST_CACHE}"]) == 0
    outcome = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert outcome["match"] is True and outcome["max_abs_diff"] == 0.0
    assert not Path("/ran/elsewhere").exists()
    for bad in ("train.lr=0.1", "data.data_root", "data.pca_dim=8"):
        assert launch.main(["reproduce", str(run), "--set", bad]) == 2
        assert f"reproduce --set {bad!r}: only where the data lies may change" in capsys.readouterr().err


_LOCATION_KEYS = ["data.cache_dir", "data.data_root", "data.path", "data.item_text_path", "data.embedding_path"]


@given(st.one_of(st.text(max_size=30),
                 st.builds("{}={}".format, st.sampled_from([*_LOCATION_KEYS, "train.lr", "data.name", " data.path "]),
                           st.text(max_size=20))))
def test_reproduce_may_set_where_the_data_lies_and_nothing_else(text):
    from datasets.config import LOCATIONS
    from results.orchestration.reproduce import relocated
    from settings import ConfigError
    from tuning.config import load_config

    assert _LOCATION_KEYS == [f"data.{key}" for key in LOCATIONS]
    config = load_config(None, [])
    key, sep, value = text.partition("=")
    if sep and key.strip() in _LOCATION_KEYS and value.strip():
        moved = relocated(config, [text])
        assert getattr(moved.data, key.strip().removeprefix("data.")) == value.strip()
        assert moved.replace({key.strip(): getattr(config.data, key.strip().removeprefix("data."))}) == config
    else:
        with pytest.raises(ConfigError, match="only where the data lies may change"):
            relocated(config, [text])
