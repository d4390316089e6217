"""Conditional search spaces and the ICC weight as a share of the loss.

A parameter that does not matter in a trial is neither sampled nor written into its config; a
space whose conditions cannot work, or that searches a dimension no trial can use, fails before
Ray starts; icc_share calibrates gamma deterministically without moving the run's random streams.
"""

from __future__ import annotations

import optuna
import pytest

from model.icc import icc_on, without_icc
from settings import ConfigError
from tuning.config import load_config
from tuning.space import ZERO_SUFFIX, SearchSpace, flat_params, trial_config
from tuning.space_checks import validate_space

BASE = load_config(None, ["data.name=ml-100k"])
ICC = load_config(None, ["data.name=ml-100k", "model.variant=icc"])

#: the issue's example: each clustering knob only under its method, the weight as a loss share
CLUSTER_SPACE = {
    "icc_share": {"type": "float", "low": 0.005, "high": 0.5, "log": True},
    "cluster_method": {"type": "categorical", "values": ["kmeans", "hdbscan"]},
    "n_clusters": {"type": "int", "low": 8, "high": 256, "log": True, "when": {"cluster_method": "kmeans"}},
    "min_cluster_size": {"type": "int", "low": 3, "high": 50, "log": True, "when": {"cluster_method": "hdbscan"}},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
}


def sample(space, base, n=60, seed=0):
    """(Optuna's raw params, resolved flat params) of n random trials of a validated space."""
    validate_space(space, base)
    search = SearchSpace(space, flat_params(base))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    out = []
    for _ in range(n):
        trial = study.ask()
        search(trial)
        out.append((dict(trial.params), search.resolve(trial.params)))
        study.tell(trial, 0.0)
    return search, out


def test_a_clustering_knob_is_sampled_only_under_its_method():
    _, trials = sample(CLUSTER_SPACE, ICC)
    methods = {params["cluster_method"] for _, params in trials}
    assert methods == {"kmeans", "hdbscan"}
    for raw, params in trials:
        kmeans = params["cluster_method"] == "kmeans"
        assert ("n_clusters" in raw) == kmeans and ("n_clusters" in params) == kmeans
        assert ("min_cluster_size" in raw) == (not kmeans) and ("min_cluster_size" in params) == (not kmeans)
        assert 0.005 <= params["icc_share"] <= 0.5 and "gamma" not in params
        config = trial_config(ICC, params)
        assert config.model.icc_share == params["icc_share"] and config.model.gamma == 0.0   # calibrated later
        assert config.clusters.method == params["cluster_method"]


def test_without_icc_no_clustering_parameter_is_sampled():
    space = {**CLUSTER_SPACE, "icc_share": {**CLUSTER_SPACE["icc_share"], "include_zero": True}}
    _, trials = sample(space, BASE.replace({"model.gamma": 0.0}))
    off = [(raw, params) for raw, params in trials if params["icc_share"] == 0.0]
    on = [(raw, params) for raw, params in trials if params["icc_share"] > 0]
    assert off and on
    for raw, params in off:
        assert not {"cluster_method", "n_clusters", "min_cluster_size"} & (set(raw) | set(params))
        assert not icc_on(trial_config(BASE.replace({"model.gamma": 0.0}), params).model)
    assert all("cluster_method" in params for _, params in on)


def test_a_zero_icc_share_switches_icc_off_over_a_base_gamma():
    """The demo's space over the default gamma 0.1: a trial with icc_share 0 has no ICC (writing
    icc_share makes gamma 0), so no clustering parameter may be sampled for it."""
    config = load_config("configs/demo.yaml")
    assert config.model.gamma > 0
    _, trials = sample(config.tune.space, config, n=40)
    off = [params for _, params in trials if params["icc_share"] == 0.0]
    assert off and all("n_clusters" not in params for params in off)
    assert all(not icc_on(trial_config(config, params).model) for params in off)


def test_a_searched_variant_decides_what_is_active():
    space = {"variant": {"type": "categorical", "values": ["llmesr", "icc"]}, **CLUSTER_SPACE}
    _, trials = sample(space, BASE)
    for raw, params in trials:
        icc = params["variant"] == "icc"
        assert ("icc_share" in params) == icc and ("cluster_method" in params) == icc
        assert icc_on(trial_config(BASE, params).model) == icc


def test_tau_is_sampled_only_with_the_view_contrast_on():
    space = {"lambda_cl": {"type": "float", "low": 0.01, "high": 1.0, "log": True, "include_zero": True},
             "tau": {"type": "float", "low": 0.05, "high": 1.0, "log": True}}
    _, trials = sample(space, BASE)
    assert {params["lambda_cl"] > 0 for _, params in trials} == {True, False}
    for raw, params in trials:
        assert ("tau" in raw) == (params["lambda_cl"] > 0)


def test_parents_are_sampled_before_children_whatever_the_written_order():
    space = {"n_clusters": CLUSTER_SPACE["n_clusters"], "cluster_method": CLUSTER_SPACE["cluster_method"]}
    search = SearchSpace(space, flat_params(ICC))
    assert search.order == ["cluster_method", "n_clusters"]


def test_the_replay_of_resolved_values_gives_the_same_raw_parameters():
    """A lost study is rebuilt from Ray's flat values: the replay must give Optuna's raw params."""
    search, trials = sample(CLUSTER_SPACE, ICC, n=20)
    for raw, params in trials:
        replayed, distributions = search.raw(params)
        assert replayed == raw and set(distributions) == set(raw)


@pytest.mark.parametrize("space, base, fragments", [
    ({"n_clusters": {"type": "int", "low": 4, "high": 8, "when": {"cluster_algo": "kmeans"}}}, ICC,
     ["tune.space.n_clusters.when.cluster_algo", "unknown parent", "cluster_method"]),
    ({**CLUSTER_SPACE, "n_clusters": {"type": "int", "low": 4, "high": 8, "when": {"cluster_method": "dbscan"}}},
     ICC, ["tune.space.n_clusters.when.cluster_method", "'dbscan'", "never taken", "kmeans"]),
    ({"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "when": {"dropout": 0.1}},
      "dropout": {"type": "float", "low": 0.0, "high": 0.5}}, BASE,
     ["tune.space.lr.when.dropout", "continuous range"]),
    ({"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "when": {"loss": "ce"}},
      "loss": {"type": "categorical", "values": ["bce", "ce"], "when": {"backbone": "sasrec"}},
      "backbone": {"type": "categorical", "values": ["sasrec", "gru4rec"], "when": {"loss": "bce"}}}, BASE,
     ["tune.space", "cycle", "backbone", "loss"]),
    ({"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "when": {}}}, BASE, ["tune.space.lr.when", "a mapping"]),
    ({"gamma": {"type": "float", "low": 0.1, "high": 1.0}, "icc_share": {"type": "float", "low": 0.01, "high": 0.5}},
     BASE, ["tune.space.icc_share", "together with gamma", "one of the two"]),
    ({"n_clusters": {"type": "int", "low": 4, "high": 64}}, ICC.replace({"clusters.method": "hdbscan"}),
     ["tune.space.n_clusters", "cluster_method kmeans", "drop it"]),
    ({"cluster_method": {"type": "categorical", "values": ["kmeans", "hdbscan"]}},
     BASE.replace({"model.variant": "llmesr"}), ["tune.space.cluster_method", "no trial can have ICC on"]),
    ({"tau": {"type": "float", "low": 0.05, "high": 1.0}}, BASE, ["tune.space.tau", "lambda_cl above 0"]),
    ({"negatives": {"type": "int", "low": 64, "high": 512, "log": True}}, BASE.replace({"model.loss": "ce"}),
     ["tune.space.negatives", "loss sampled_ce", "drop it"]),
    ({"icc_share": {"type": "float", "low": 0.01, "high": 0.5, "include_zero": True}}, ICC,
     ["tune.space.icc_share", "can be 0", "variant 'icc'"]),
    ({"icc_share": {"type": "float", "low": 0.01, "high": 1.0}}, BASE, ["tune.space", "high 1.0", "model.icc_share"]),
])
def test_bad_conditional_spaces_fail_in_one_line(space, base, fragments):
    with pytest.raises(ConfigError) as info:
        validate_space(space, base)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_search_yaml_uses_the_conditional_space_and_the_loss_share():
    config = load_config("configs/search.yaml")
    validate_space(config.tune.space, config)
    space = config.tune.space
    assert "icc_share" in space and "gamma" not in space
    assert space["n_clusters"]["when"] == {"cluster_method": "kmeans"}
    assert space["min_cluster_size"]["when"] == {"cluster_method": "hdbscan"}


# ---- icc_share as a setting ----------------------------------------------------------------------

def test_icc_share_and_a_nonzero_gamma_exclude_each_other():
    with pytest.raises(ConfigError, match=r"model.icc_share: got 0.2 with model.gamma 0.5"):
        load_config(None, ["model.gamma=0.5", "model.icc_share=0.2"])
    config = load_config(None, ["model.icc_share=0.2"])
    assert (config.model.icc_share, config.model.gamma) == (0.2, 0.0) and icc_on(config.model)
    # a higher-priority source writing one weight replaces the other one of a lower source
    assert load_config("configs/default.yaml", ["model.icc_share=0.3"]).model.gamma == 0.0
    assert config.replace({"model.gamma": 0.4}).model.icc_share == 0.0
    with pytest.raises(ConfigError, match="model.icc_share"):
        load_config(None, ["model.icc_share=1.0"])


def test_without_icc_switches_off_every_way_of_weighting_it():
    for overrides in (["model.variant=icc", "model.icc_share=0.2"], ["model.variant=icc", "model.gamma=0.3"],
                      ["model.gamma=0.3"]):
        config = load_config(None, overrides)
        control = without_icc(config)
        assert icc_on(config.model) and not icc_on(control.model)
        assert control.model.variant == ("llmesr" if config.model.variant == "icc" else config.model.variant)
        assert control.train == config.train and control.clusters == config.clusters


def test_calibrated_gamma_gives_the_share_and_leaves_the_run_otherwise_unchanged(ml100k):
    """gamma from icc_share is deterministic; a run with that gamma written explicitly trains
    identically (the calibration moved no random stream); the share realised over epoch 1 is
    within a factor of 2 of the target (the losses move while training; the calibration is
    measured at initialisation)."""
    import math

    from conftest import TEST_CACHE, user_subset
    from model.pipeline import build_trainer

    small = user_subset(ml100k, 150)
    overrides = ["data.name=ml-100k", f"data.cache_dir={TEST_CACHE}", "model.hidden_size=16", "model.max_len=20",
                 "model.adapter_hidden=32", "model.num_blocks=1", "model.loss=ce", "clusters.n_clusters=16",
                 "clusters.silhouette_sample=0", "train.device=cpu", "train.batch_size=32", "train.epochs=1"]
    shared = load_config(None, [*overrides, "model.icc_share=0.2"])
    first, second = build_trainer(shared, small), build_trainer(shared, small)
    gamma = first.icc_gamma
    assert gamma > 0 and second.icc_gamma == gamma
    fixed = build_trainer(load_config(None, [*overrides, f"model.gamma={gamma!r}"]), small)
    report, fixed_report = first.train_epoch(), fixed.train_epoch()
    assert report.train_loss == fixed_report.train_loss and report.valid == fixed_report.valid
    assert report.icc_gamma == gamma
    assert 0.1 <= report.loss_shares["icc"] <= 0.4 and math.isclose(sum(report.loss_shares.values()), 1.0)


def test_a_clustering_that_constrains_no_item_calibrates_to_gamma_0_instead_of_failing(ml100k):
    """HDBSCAN at min_cluster_size 45 calls every ml-100k item noise: the ICC term is 0 whatever
    its weight. A search sampled that and the trial errored three times (calibration divided by
    0); it now trains as the run it is, gamma 0, with a note saying why."""
    from conftest import TEST_CACHE, user_subset
    from model.pipeline import build_trainer

    config = load_config(None, [
        "data.name=ml-100k", f"data.cache_dir={TEST_CACHE}", "model.hidden_size=16", "model.max_len=20",
        "model.adapter_hidden=32", "model.num_blocks=1", "model.variant=icc", "model.icc_share=0.1",
        "clusters.method=hdbscan", "clusters.min_cluster_size=45", "clusters.silhouette_sample=0",
        "train.device=cpu", "train.batch_size=64"])
    trainer = build_trainer(config, user_subset(ml100k, 100))
    assert trainer.icc_gamma == 0.0 and not bool(trainer.model.icc.constrained.any())
    assert any("constrains no item" in note for note in trainer.notes)
    report = trainer.train_epoch()
    assert report.loss_shares["icc"] == 0.0 and report.icc_gamma == 0.0


def test_progress_columns_hold_only_parameters_every_trial_has():
    """Ray's best-trial progress line looks parameters up without a default: a column for a
    conditional parameter ended a real amazon-scientific search with KeyError 'n_clusters'."""
    from tuning.runner import progress_columns

    config = load_config("configs/tail-search-scientific.yaml")
    assert sorted(progress_columns(config).values()) == ["lr"]      # gamma, icc_share, n_clusters are conditional
    demo = load_config("configs/demo.yaml")
    assert sorted(progress_columns(demo).values()) == ["backbone", "icc_share", "lr"]


def test_negatives_are_sampled_only_under_the_sampled_loss():
    """model.negatives counts sampled_ce's negatives: under ce or bce it changes nothing, so a
    searched negatives is inactive there (not sampled, blank in tables)."""
    from tuning.conditions import is_active

    assert is_active("negatives", {"loss": "sampled_ce"})
    assert not is_active("negatives", {"loss": "ce"}) and not is_active("negatives", {"loss": "bce"})
    space = {"loss": {"type": "categorical", "values": ["ce", "sampled_ce"]},
             "negatives": {"type": "int", "low": 64, "high": 512, "log": True}}
    validate_space(space, BASE)                                   # some trial can use it: fine

