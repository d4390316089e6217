"""The typed configuration: YAML + overrides, and errors that name the key, value and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HANG_GUARD_S
from settings import ConfigError
from tuning.config import Config, config_from_dict, config_to_dict, load_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides_flow_into_sections():
    config = load_config(REPO / "configs" / "default.yaml", ["model.gamma=0.25", "train.lr=3e-4"])
    assert isinstance(config, Config)
    assert config.model.gamma == 0.25
    assert config.train.lr == pytest.approx(3e-4)
    assert config.data.name == "amazon-scientific"


def test_round_trip_through_a_dict_is_lossless():
    config = load_config(None, ["model.backbone=gru4rec", "clusters.n_clusters=16"])
    again = config_from_dict(config_to_dict(config))
    assert again == config


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.gama=0.1", "model.gama: unknown key"),
        ("model.dropout=1.5", "model.dropout: got 1.5; allowed: float in [0, 1)"),
        ("model.backbone=transformer", "one of 'sasrec', 'bert4rec', 'gru4rec'"),
        ("train.epochs=ten", "train.epochs: got 'ten'"),
        ("train.batch_size=1.5", "train.batch_size: got 1.5"),
        ("model.semantic_view=3", "true or false"),
        ("nosection.x=1", "nosection: unknown key"),
        ("clusters.method=dbscan", "one of 'kmeans', 'hdbscan'"),
    ],
)
def test_bad_values_name_key_value_and_allowed(override, fragment):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert fragment in str(error.value)


def test_override_without_equals_is_explained():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["model.gamma"])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_launch_reports_config_errors_without_traceback():
    run = subprocess.run(
        [sys.executable, "launch.py", "prepare", "--dataset", "ml-100k", "--set", "data.user_core=-1"],
        cwd=REPO, capture_output=True, text=True, timeout=HANG_GUARD_S,
    )
    assert run.returncode == 2
    assert "data.user_core: got -1" in run.stderr
    assert "Traceback" not in run.stderr


def _float_keys() -> list[str]:
    import typing

    keys = []
    for section, cls in typing.get_type_hints(Config).items():
        keys += [f"{section}.{name}" for name, hint in typing.get_type_hints(cls).items() if hint is float]
    return keys


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf", "nan", "1e999"])
def test_every_float_setting_refuses_non_finite_values(text):
    keys = _float_keys()
    assert "model.gamma" in keys and "train.lr" in keys and len(keys) >= 10
    for key in keys:
        with pytest.raises(ConfigError) as error:
            load_config(None, [f"{key}={text}"])
        message = str(error.value)
        assert message.startswith(f"{key}: got ") and "(finite; nan and inf are refused)" in message, message
        assert "allowed: float" in message or "allowed: a value of type float" in message, message


@pytest.mark.parametrize("text, fragment", [
    ("model:\n  gamma: 0.1\n\tdropout: 0.2\n", "line 3, column 1: found character '\\t'"),
    ("model: {gamma: [1,\n", "line 2, column 1: expected"),
    ("model:\n  gamma: 0.1\n  dropout: 0.2\n  gamma: 0.3\n", "line 4, column 3: duplicate key 'gamma' (first on line 2)"),
    ("model: {}\ntrain: {}\nmodel: {}\n", "line 3, column 1: duplicate key 'model' (first on line 1)"),
])
def test_yaml_errors_name_the_file_and_line(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"config file {str(path)!r}: not valid YAML: ") and fragment in message, message
    assert "\n" not in message


@pytest.mark.parametrize("override, fragment", [
    ("model.gamma=[1,", "--set 'model.gamma=[1,', the value after '=': not valid YAML: line 1, column 4"),
    ("model={gamma: 1, gamma: 2}", "duplicate key 'gamma'"),
    ("model.gamma=\t", "model.gamma: got ''"),
])
def test_override_yaml_errors_name_the_override(override, fragment):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert fragment in str(error.value), str(error.value)


@pytest.mark.parametrize("name", ["../x", "a/b", "/tmp/x", ".hidden", "..", "a b", "-x", "x\n", "é"])
def test_experiment_names_that_leave_the_storage_folder_are_refused(name):
    from tuning.config import TuneConfig
    from settings import check_folder_name

    with pytest.raises(ConfigError, match=r"^tune.name: got .*; allowed: letters, digits"):
        config_from_dict({"tune": {"name": name}})
    with pytest.raises(ConfigError, match="^--name: got"):
        check_folder_name("--name", name)
    assert check_folder_name("--name", "ml-100k_2.v1") == "ml-100k_2.v1"
    assert TuneConfig().name == "" and config_from_dict({"tune": {"name": ""}}).tune.name == ""   # "": automatic


def test_launch_answers_bad_yaml_and_bad_names_in_one_line(tmp_path):
    from test_config_properties import one_error_line, run_launch

    bad = tmp_path / "tab.yaml"
    bad.write_text("tune:\n\tnum_samples: 2\n")
    line = one_error_line(*run_launch("train", "--config", str(bad))[::2])
    assert f"config file {str(bad)!r}: not valid YAML: line 2, column 1" in line, line
    line = one_error_line(*run_launch("train", "--set", "model.gamma=[1,")[::2])
    assert "--set 'model.gamma=[1,'" in line, line
    line = one_error_line(*run_launch("train", "--set", "model.gamma=.nan")[::2])
    assert "model.gamma: got nan; allowed: float in [0, inf) (finite; nan and inf are refused)" in line
    storage = tmp_path / "runs"
    line = one_error_line(*run_launch("tune", "--name", "../escaped", "--set", f"tune.storage_path={storage}")[::2])
    assert "tune.name: got '../escaped'" in line, line
    assert not (tmp_path / "escaped").exists() and not storage.exists()


def test_replace_sets_dotted_paths_and_returns_a_new_checked_config():
    config = load_config(None, ["model.gamma=0.25"])
    changed = config.replace({"model.gamma": 0.0, "train.seed": 43, "tune.space.lr": {"type": "float"}})
    assert (changed.model.gamma, changed.train.seed, changed.tune.space) == (0.0, 43, {"lr": {"type": "float"}})
    assert (config.model.gamma, config.train.seed, config.tune.space) == (0.25, 42, {})
    assert changed == config_from_dict({**config_to_dict(changed)})
    icc = config.replace({"model.variant": "icc"})
    assert (icc.model.semantic_view, icc.model.gamma) == (True, 0.25)
    assert config.replace({"model.variant": "plain"}).model.gamma == 0.0     # the variant decides afresh
    with pytest.raises(ConfigError, match="model.variant 'plain' sets it to 0.0"):
        config.replace({"model.variant": "plain", "model.gamma": 0.5})     # unless the change sets it too


@pytest.mark.parametrize("changes,message", [
    ({"model.gama": 0.1}, "model.gama: unknown key; allowed keys in model: "),
    ({"modl.gamma": 0.1}, "modl: unknown key; allowed keys: clusters, data, dose, eval, model, study, train, tune"),
    ({"gamma": 0.1}, "'gamma': expected a dotted path SECTION.KEY"),
    ({"model.gamma": "high"}, "model.gamma: got 'high'; allowed: float in [0, inf)"),
    ({"model.gamma.low": 0.1}, "model.gamma.low: model.gamma is a value, not a section"),
])
def test_replace_refuses_unknown_paths_and_bad_values(changes, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, []).replace(changes)
    assert message in str(caught.value)


def test_one_reader_of_dotted_keys():
    from settings import dotted_value

    saved = {"model": {"gamma": 0.1}, "train": "not a section"}
    assert dotted_value(saved, "model.gamma") == 0.1 and dotted_value(saved, "model") == {"gamma": 0.1}
    assert dotted_value(saved, "model.lr") is None and dotted_value(saved, "eval.k") is None
    assert dotted_value(saved, "train.seed") is None
