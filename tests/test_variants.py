"""Named variants: one setting sets every switch, contradictions name both, the search space agrees."""

from __future__ import annotations

import optuna
import pytest

from model.config import VARIANT_SWITCHES, variant_of
from settings import ConfigError
from tuning.config import config_from_dict, config_to_dict, load_config
from tuning.space import SearchSpace, trial_config
from tuning.space_checks import validate_space

REPO_CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("variant", ["plain", "llmesr", "icc"])
def test_a_variant_sets_every_switch(variant):
    config = load_config(None, [f"model.variant={variant}"])
    for key, value in VARIANT_SWITCHES[variant].items():
        assert getattr(config.model, key) == value, key
    assert variant_of(config.model) == variant
    assert (config.model.gamma > 0) == (variant == "icc")


def test_plain_is_the_bare_backbone():
    model = load_config(None, ["model.variant=plain"]).model
    assert (model.semantic_view, model.pca_init, model.alpha, model.gamma, model.lambda_cl) == (False, False, 0, 0, 0)


@pytest.mark.parametrize("overrides, named", [
    (["model.variant=plain", "model.gamma=0.1"], ("model.gamma", "plain")),
    (["model.variant=plain", "model.semantic_view=true"], ("model.semantic_view", "plain")),
    (["model.variant=llmesr", "model.gamma=0.5"], ("model.gamma", "llmesr")),
    (["model.variant=icc", "model.gamma=0"], ("model.gamma", "icc")),
    (["model.variant=icc", "model.pca_init=false"], ("model.pca_init", "icc")),
])
def test_a_contradiction_names_both_settings(overrides, named):
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    message = str(error.value)
    assert all(part in message for part in named) and "model.variant" in message


def test_explicit_switches_that_agree_are_fine_and_custom_keeps_them():
    assert load_config(None, ["model.variant=llmesr", "model.gamma=0"]).model.gamma == 0.0
    assert load_config(None, ["model.variant=icc", "model.gamma=3"]).model.gamma == 3.0
    custom = load_config(None, ["model.semantic_view=false", "model.gamma=0.2"]).model
    assert custom.variant == "custom" and variant_of(custom) == "custom" and custom.gamma == 0.2


def test_a_saved_config_loads_back_unchanged():
    config = load_config(None, ["model.variant=plain"])
    assert config_from_dict(config_to_dict(config)) == config


def test_the_default_config_file_names_its_variant():
    config = load_config(REPO_CONFIGS / "default.yaml")
    assert config.model.variant == "icc" and config.model.gamma > 0


def _sample(space: dict, base, seed: int = 0, n: int = 30) -> list[dict]:
    search = SearchSpace(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        search(trial)
        params = search.resolve(trial.params)
        out.append({"raw": dict(trial.params), "params": params, "config": trial_config(base, params)})
        study.tell(trial, 0.0)
    return out


def test_a_searched_variant_skips_what_it_fixes():
    base = load_config(None, [])
    space = {"variant": {"type": "categorical", "values": ["plain", "llmesr", "icc"]},
             "gamma": {"type": "float", "low": 0.01, "high": 10.0, "log": True, "include_zero": True},
             "alpha": {"type": "float", "low": 0.01, "high": 1.0, "log": True}}
    validate_space(space, base)
    seen = set()
    for sample in _sample(space, base):
        variant, raw, config = sample["params"]["variant"], sample["raw"], sample["config"]
        seen.add(variant)
        assert variant_of(config.model) == variant == config.model.variant
        if variant == "plain":
            assert "gamma" not in raw and "alpha" not in raw and config.model.alpha == 0
        if variant == "llmesr":
            assert "gamma" not in raw and config.model.gamma == 0 and config.model.alpha == raw["alpha"]
        if variant == "icc":
            assert "gamma_is_zero" not in raw and config.model.gamma == raw["gamma"] > 0
    assert seen == {"plain", "llmesr", "icc"}


@pytest.mark.parametrize("variant, space, message", [
    ("plain", {"gamma": {"type": "float", "low": 0.1, "high": 1.0}}, "tune.space.gamma: searched, but variant 'plain'"),
    ("llmesr", {"gamma": 0.5}, "tune.space.gamma: searched, but variant 'llmesr'"),
    ("icc", {"gamma": {"type": "float", "low": 0.1, "high": 1.0, "include_zero": True}}, "variant 'icc' needs its weight above 0"),
])
def test_a_fixed_variant_contradicted_by_the_space_fails_before_ray(variant, space, message):
    base = load_config(None, [f"model.variant={variant}"])
    with pytest.raises(ConfigError, match=message):
        validate_space(space, base)


def test_a_variant_given_with_set_overrides_the_files_switches():
    path = REPO_CONFIGS / "default.yaml"                  # variant icc, gamma 0.1 in the file
    plain = load_config(path, ["model.variant=plain"]).model
    assert plain.variant == "plain" and plain.gamma == 0 and not plain.semantic_view
    assert load_config(path, ["model.variant=llmesr"]).model.gamma == 0
    with pytest.raises(ConfigError, match="model.gamma: got 0.*variant 'icc' needs gamma > 0"):
        load_config(path, ["model.gamma=0"])            # the file's variant stays: say which to use
    with pytest.raises(ConfigError, match="model.gamma: got 0.1, but model.variant 'plain'"):
        load_config(path, ["model.variant=plain", "model.gamma=0.1"])   # one layer contradicts itself
