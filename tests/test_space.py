"""The search space: bad input fails before Ray starts, naming parameter, value and what is allowed."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from settings import ConfigError
from tuning.config import config_from_dict, config_to_dict, load_config
from tuning.space import PARAMETERS, ZERO_SUFFIX, SearchSpace, trial_config
from tuning.space_checks import validate_space

BASE = load_config(None, ["data.name=ml-100k"])


@pytest.mark.parametrize("space, fragments", [
    ({"gamma": {"type": "float", "low": 1.0, "high": 0.1}}, ["tune.space.gamma", "empty range", "low=1.0"]),
    ({"n_clusters": {"type": "int", "low": 16, "high": 16}}, ["tune.space.n_clusters", "empty range"]),
    ({"gamma": {"type": "float", "low": 0.0, "high": 1.0, "log": True}},
     ["tune.space.gamma", "log range must be positive", "low=0.0", "include_zero"]),
    ({"lr": {"type": "float", "low": -1e-3, "high": 1e-2, "log": True}}, ["tune.space.lr", "low=-0.001"]),
    ({"backbone": {"type": "categorical", "values": ["sasrec", "transformer"]}},
     ["tune.space.backbone", "'transformer'", "model.backbone", "'sasrec'", "'bert4rec'", "'gru4rec'"]),
    ({"backbone": "lstm"}, ["tune.space.backbone", "fixed value 'lstm'", "'gru4rec'"]),
    ({"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
     ["tune.space.learning_rate", "unknown parameter", "lr", "gamma", "n_clusters"]),
    ({"lr": {"type": "uniform", "low": 1e-4, "high": 1e-2}}, ["tune.space.lr.type", "'uniform'", "categorical, float, int"]),
    ({"lr": {"type": "float", "low": 1e-4, "hi": 1e-2}}, ["tune.space.lr.hi", "unknown key", "high"]),
    ({"dropout": {"type": "float", "low": 0.1, "high": 1.0}}, ["tune.space.dropout", "high 1.0", "model.dropout", "[0, 1)"]),
    ({"n_clusters": {"type": "float", "low": 4, "high": 64}}, ["tune.space.n_clusters.type", "int field"]),
    ({"n_clusters": {"type": "int", "low": 1, "high": 64, "log": True}}, ["tune.space.n_clusters", "low 1", "clusters.n_clusters"]),
    ({"tau": {"type": "float", "low": 0.05, "high": 1.0, "include_zero": True}}, ["tune.space.tau", "include_zero value 0.0"]),
    ({"lr": {"type": "float", "low": "small", "high": 1e-2}}, ["tune.space.lr.low", "'small'", "finite number"]),
    ({"loss": {"type": "categorical", "values": []}}, ["tune.space.loss.values", "non-empty list"]),
    ({"loss": ["bce", "ce"]}, ["tune.space.loss", "categorical"]),
    ({"cluster_method": {"type": "categorical", "values": ["kmeans", "dbscan"]}}, ["'dbscan'", "'hdbscan'"]),
    ({"gamma": {"type": "float", "low": 1e-3, "high": 1.0, "log": "yes"}}, ["tune.space.gamma.log", "'yes'"]),
])
def test_bad_space_names_parameter_value_and_allowed(space, fragments):
    with pytest.raises(ConfigError) as info:
        validate_space(space, BASE)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_bad_space_fails_before_ray_starts(tmp_path):
    """run_experiment checks the space first: no Ray session, no experiment folder."""
    import ray

    from tuning.runner import run_experiment

    config = load_config(None, [f"tune.storage_path={tmp_path}", "tune.name=bad",
                                "tune.space={gamma: {type: float, low: 0, high: 1, log: true}}"])
    assert not ray.is_initialized()
    with pytest.raises(ConfigError, match="tune.space.gamma"):
        run_experiment(config, progress=False)
    assert not ray.is_initialized()
    assert not (tmp_path / "bad").exists()


def test_config_file_space_is_validated():
    for path in ("configs/search.yaml", "configs/demo.yaml"):
        config = load_config(path)
        validate_space(config.tune.space, config)


#: every search parameter: the config field it must land in, written out here (not read from
#: tuning.space.PARAMETERS) and a value other than that field's default
LANDS_IN = {
    "variant": ("model", "variant", "plain"),
    "backbone": ("model", "backbone", "gru4rec"),
    "gamma": ("model", "gamma", 0.37),
    "icc_share": ("model", "icc_share", 0.2),
    "n_clusters": ("clusters", "n_clusters", 12),
    "cluster_method": ("clusters", "method", "hdbscan"),
    "min_cluster_size": ("clusters", "min_cluster_size", 9),
    "min_samples": ("clusters", "min_samples", 12),
    "alpha": ("model", "alpha", 0.25),
    "lambda_cl": ("model", "lambda_cl", 0.3),
    "tau": ("model", "tau", 0.7),
    "lr": ("train", "lr", 0.0037),
    "weight_decay": ("train", "weight_decay", 1e-4),
    "dropout": ("model", "dropout", 0.15),
    "hidden_size": ("model", "hidden_size", 24),
    "max_len": ("model", "max_len", 17),
    "batch_size": ("train", "batch_size", 33),
    "loss": ("model", "loss", "ce"),
    "negatives": ("model", "negatives", 64),
    "cross_residual": ("model", "cross_residual", False),
}


def test_every_parameter_lands_in_the_field_it_names_and_nowhere_else():
    from model.config import VARIANT_SWITCHES
    from tuning.config import config_to_dict

    assert set(LANDS_IN) == set(PARAMETERS)
    base = config_to_dict(BASE)
    for name, (section, field, value) in LANDS_IN.items():
        assert base[section][field] != value, f"{name}: pick a value other than the default"
        changed = config_to_dict(trial_config(BASE, {name: value}))
        assert changed[section][field] == value, name
        decided = set(VARIANT_SWITCHES.get(value, {})) if name == "variant" else set()
        decided |= {"gamma"} if name == "icc_share" else set()       # calibrated: stored as 0
        moved = {(s, f) for s in base for f in base[s] if base[s][f] != changed[s][f]}
        assert moved - {("model", f) for f in decided} == {(section, field)}, (name, moved)


#: what a parameter needs beside it to be active (tuning.conditions): HDBSCAN's own knobs
CONTEXT = {"min_cluster_size": {"cluster_method": "hdbscan"}, "min_samples": {"cluster_method": "hdbscan"},
           "negatives": {"loss": "sampled_ce"}}


#: what a Trainer built from the trial config shows of each value (the objects training reads)
def _probes() -> dict:
    def weight_of(part):
        def probe(trainer, value):
            import torch

            torch.manual_seed(0)
            total, parts = trainer.model.calculate_loss(trainer.batches.batch(torch.arange(20)))
            weights = trainer.model.loss_weights()
            rest = parts["rec"] + sum(weights[k] * parts[k] for k in ("sd", "icc", "cl") if k != part)
            return ((total - rest) / parts[part]).item() == pytest.approx(value, rel=1e-3)
        return probe

    def realised_share(trainer, value):
        from model.icc import mean_parts_at_init

        parts = mean_parts_at_init(trainer.model, trainer.batches, trainer.train_cfg.batch_size,
                                   trainer.train_cfg.seed + 2, 4)
        cfg, gamma = trainer.model_cfg, trainer.icc_gamma
        rest = parts["rec"] + cfg.alpha * parts["sd"] + cfg.lambda_cl * parts["cl"]
        return gamma > 0 and gamma * parts["icc"] / (rest + gamma * parts["icc"]) == pytest.approx(value, rel=1e-6)

    def hdbscan_changed(trainer, value, field):
        """HDBSCAN's clusters (items sharing one target) differ from those of its defaults (and,
        for min_cluster_size, every cluster is at least that large)."""
        from cluster_prep.build import compute_clusters
        from cluster_prep.config import ClusterConfig
        from model.llmesr import pca_matrix

        default = compute_clusters(trainer.data, ClusterConfig(method="hdbscan", silhouette_sample=0),
                                   pca_matrix(trainer.data, trainer.model_cfg.hidden_size))
        labels = np.asarray(default.labels)
        default_groups = {frozenset(np.flatnonzero(labels == label)) for label in set(labels[1:-1].tolist()) - {-1}}
        groups = item_groups(trainer)
        big_enough = field != "min_cluster_size" or min(len(group) for group in groups) >= value
        return big_enough and groups != default_groups

    def item_groups(trainer):
        """The clusters a model's ICC term holds: each set of constrained items with one target."""
        targets, constrained = trainer.model.icc.targets.numpy(), trainer.model.icc.constrained.numpy()
        items = np.flatnonzero(constrained)
        _, group = np.unique(targets[items], axis=0, return_inverse=True)
        return {frozenset(items[group.ravel() == g]) for g in range(group.max() + 1)}

    def distinct_targets(trainer):
        targets, constrained = trainer.model.icc.targets, trainer.model.icc.constrained
        return len({tuple(row) for row in targets[constrained].tolist()})

    return {
        "variant": lambda t, v: not t.model.semantic and t.model.cfg.alpha == 0,
        "backbone": lambda t, v: type(t.model.encoder).__name__ == "GRU4Rec",
        "gamma": weight_of("icc"),
        "icc_share": realised_share,
        "min_cluster_size": lambda t, v: hdbscan_changed(t, v, "min_cluster_size"),
        "min_samples": lambda t, v: hdbscan_changed(t, v, "min_samples"),
        "alpha": weight_of("sd"),
        "lambda_cl": weight_of("cl"),
        "n_clusters": lambda t, v: distinct_targets(t) == v,
        "cluster_method": lambda t, v: not bool(t.model.icc.constrained[1:-1].all()),   # noise items exist
        "tau": lambda t, v: t.model.cfg.tau == v,
        "lr": lambda t, v: all(g["lr"] == v for g in t.optimizer.param_groups),
        "weight_decay": lambda t, v: all(g["weight_decay"] == v for g in t.optimizer.param_groups),
        "dropout": lambda t, v: t.model.emb_dropout.p == v,
        "hidden_size": lambda t, v: t.model.id_emb.embedding_dim == v,
        "max_len": lambda t, v: t.batches.block.shape[1] == v + 1 and t.model.pos_emb.num_embeddings == v,
        "batch_size": lambda t, v: len(next(t.batches.epoch(t.train_cfg.batch_size))) == v,
        "loss": lambda t, v: t.model.cfg.loss == v,
        "negatives": lambda t, v: t.model.cfg.loss == "sampled_ce" and t.model.cfg.negatives == v,
        "cross_residual": lambda t, v: t.model.cfg.cross_residual is v,
    }


@pytest.mark.slow
def test_a_trial_config_trains_with_each_sampled_value(ml100k):
    from conftest import TEST_CACHE, user_subset
    from model.pipeline import build_trainer

    small = user_subset(ml100k, 60)
    base = load_config(None, ["data.name=ml-100k", f"data.cache_dir={TEST_CACHE}", "model.hidden_size=16",
                              "model.max_len=10", "model.adapter_hidden=32", "model.num_blocks=1",
                              "model.lambda_cl=0.1", "clusters.silhouette_sample=0", "train.device=cpu"])
    probes = _probes()
    assert set(probes) == set(LANDS_IN)
    for name, (_, _, value) in LANDS_IN.items():
        params = {name: value, **CONTEXT.get(name, {})}
        trainer = build_trainer(trial_config(base, params), small)
        assert probes[name](trainer, value), (name, value)


def test_trial_config_writes_params_and_round_trips():
    config = trial_config(BASE, {"backbone": "gru4rec", "gamma": 0.0, "n_clusters": 12, "lr": 3e-4})
    assert (config.model.backbone, config.model.gamma, config.clusters.n_clusters, config.train.lr) == \
        ("gru4rec", 0.0, 12, 3e-4)
    assert config_from_dict(config_to_dict(config)) == config
    with pytest.raises(ConfigError, match="model.backbone"):
        trial_config(BASE, {"backbone": "lstm"})


def test_define_by_run_samples_inside_the_space_with_zero_control():
    space = {
        "gamma": {"type": "float", "low": 1e-3, "high": 1.0, "log": True, "include_zero": True},
        "n_clusters": {"type": "int", "low": 4, "high": 256, "log": True},
        "backbone": {"type": "categorical", "values": ["sasrec", "bert4rec", "gru4rec"]},
        "lr": 0.002,
    }
    validate_space(space, BASE)
    search = SearchSpace(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3), direction="maximize")
    resolved = []
    for _ in range(40):
        trial = study.ask()
        search(trial)
        params = search.resolve(trial.params)
        resolved.append(params)
        assert params["lr"] == 0.002 and "lr" not in trial.params          # fixed: not an Optuna param
        assert params["backbone"] in ("sasrec", "bert4rec", "gru4rec")
        if trial.params["gamma" + ZERO_SUFFIX]:
            assert params["gamma"] == 0.0 and "gamma" not in trial.params     # conditional
            assert "n_clusters" not in params and "n_clusters" not in trial.params   # ICC off: not sampled
        else:
            assert 1e-3 <= params["gamma"] <= 1.0
            assert 4 <= params["n_clusters"] <= 256 and isinstance(params["n_clusters"], int)
        trial_config(BASE, params)                                           # every sample is valid
        study.tell(trial, 0.0)
    gammas = [p["gamma"] for p in resolved]
    assert 0.0 in gammas and any(g > 0 for g in gammas)


# ---- values that cannot work on the model or the data ------------------------------------------

HEADS4 = load_config(None, ["data.name=ml-100k", "model.num_heads=4"])


@pytest.mark.parametrize("space, base, fragments", [
    ({"hidden_size": {"type": "categorical", "values": [32, 50]}}, HEADS4,
     ["tune.space.hidden_size: value 50 (of [32, 50])", "model.num_heads=4", "multiples of 4"]),
    ({"hidden_size": {"type": "int", "low": 16, "high": 64}}, load_config(None, ["model.num_heads=2"]),
     ["tune.space.hidden_size: value 17 (of the range [16, 64])", "model.num_heads=2"]),
    ({"hidden_size": 30, "backbone": {"type": "categorical", "values": ["gru4rec", "sasrec"]}, "variant": "plain"},
     HEADS4, ["tune.space.hidden_size: value 30 (of [30])"]),
    ({}, load_config(None, ["model.num_heads=4", "model.hidden_size=30"]), ["model.hidden_size: value 30"]),
])
def test_hidden_size_must_split_into_the_heads(space, base, fragments):
    with pytest.raises(ConfigError) as info:
        validate_space(space, base)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_hidden_size_is_free_where_no_attention_splits_it():
    validate_space({"hidden_size": {"type": "int", "low": 15, "high": 33}, "backbone": "gru4rec",
                    "variant": "plain"}, HEADS4)
    validate_space({"hidden_size": {"type": "categorical", "values": [32, 48]}}, HEADS4)


@pytest.mark.parametrize("space, overrides, fragment", [
    ({"n_clusters": {"type": "int", "low": 4, "high": 5000, "log": True}}, [],
     "tune.space.n_clusters: value 5000 (of the range [4, 5000]) is more than the 1349 items of the prepared dataset 'ml-100k'; allowed: at most 1349"),
    ({"n_clusters": {"type": "categorical", "values": [8, 2000]}}, [], "tune.space.n_clusters: value 2000 (of [8, 2000])"),
    ({}, ["clusters.n_clusters=1350"], "clusters.n_clusters: value 1350 (of [1350])"),
    ({}, ["clusters.dim=500"], "clusters.dim: got 500; allowed: at most min(items, embedding width) = 384"),
])
def test_cluster_settings_must_fit_the_prepared_items(space, overrides, fragment):
    from tuning.space_checks import check_space_fits_data

    base = load_config(None, ["data.name=ml-100k", *overrides])
    validate_space(space, base)
    with pytest.raises(ConfigError) as info:
        check_space_fits_data(space, base, n_items=1349, emb_dim=384, dataset="ml-100k")
    assert fragment in str(info.value)


def test_cluster_counts_above_the_items_are_fine_where_no_trial_clusters_with_kmeans():
    from tuning.space_checks import check_space_fits_data

    many = {"n_clusters": {"type": "int", "low": 4, "high": 5000}}
    for extra in ({"cluster_method": "hdbscan"}, {"gamma": 0.0}, {"variant": "llmesr"},
                  {"gamma": {"type": "categorical", "values": [0.0]}}):
        check_space_fits_data({**many, **extra}, BASE, n_items=1349, emb_dim=384, dataset="ml-100k")


def test_n_clusters_above_the_items_fails_before_ray_starts(ml100k, tmp_path, capsys):
    """Through launch.py tune: one line, exit 2, no Ray session, no experiment folder."""
    import ray

    import launch
    from tests.conftest import SHARED_DATA, TEST_CACHE

    args = ["tune", "--name", "too-many", "--set", f"tune.storage_path={tmp_path}",
            "--set", f"data.cache_dir={TEST_CACHE}", "--set", f"data.data_root={SHARED_DATA}",
            "--set", "data.name=ml-100k", "--set", "tune.space={n_clusters: {type: int, low: 4, high: 3000}}"]
    assert launch.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: tune.space.n_clusters: value 3000 (of the range [4, 3000]) is more than the "
                   f"{ml100k.n_items} items of the prepared dataset 'ml-100k'; allowed: at most "
                   f"{ml100k.n_items} (KMeans needs an item per cluster)"]
    assert not ray.is_initialized() and not (tmp_path / "too-many").exists()


def test_raw_is_the_inverse_of_resolve_for_every_sampled_trial():
    """A lost study is rebuilt from the flat values Ray saved: replaying the space must give back
    Optuna's raw parameters (with the zero controls and the variant's conditional ones)."""
    space = SearchSpace({
        "variant": {"type": "categorical", "values": ["plain", "llmesr", "icc", "custom"]},
        "gamma": {"type": "float", "low": 1e-3, "high": 1.0, "log": True, "include_zero": True},
        "n_clusters": {"type": "int", "low": 4, "high": 64, "log": True},
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "alpha": {"type": "float", "low": 0.0, "high": 1.0, "include_zero": True},
        "backbone": {"type": "categorical", "values": ["sasrec", "gru4rec"]},
    })
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    zeros = 0
    for _ in range(300):
        trial = study.ask()
        space(trial)
        params, distributions = space.raw(space.resolve(trial.params))
        assert params == trial.params and distributions == trial.distributions
        zeros += bool(trial.params.get("gamma" + ZERO_SUFFIX))
        study.tell(trial, 0.0)
    assert zeros > 10                                   # the zero control was exercised
