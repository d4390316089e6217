"""The typed configuration: YAML + overrides, and errors that name the key, value and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HANG_GUARD_S
from tuning.config import Config, config_from_dict, config_to_dict, load_config
from tuning.typed import ConfigError

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
