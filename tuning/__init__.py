"""Ray Tune experiments with Optuna (TPE) and ASHA over the icc-tune model.

Importing this package is light: Ray is imported only when an experiment runs.
"""

from __future__ import annotations

from typing import Any

from tuning.config import Config, ConfigError, TuneConfig, config_from_dict, config_to_dict, load_config
from tuning.space import PARAMETERS, SearchSpace, flat_params, trial_config, validate_space
from tuning.study import BEST_METRIC, METRIC, MODE, TIME_ATTR, load_study
from tuning.summary import ExperimentInterrupted

__all__ = [
    "BEST_METRIC", "Config", "ConfigError", "ExperimentInterrupted", "METRIC", "MODE", "PARAMETERS",
    "SearchSpace", "TIME_ATTR", "TuneConfig", "config_from_dict", "config_to_dict", "flat_params",
    "load_config", "load_study", "run_experiment", "train_trial", "trial_config", "validate_space",
]


def __getattr__(name: str) -> Any:
    """run_experiment and train_trial load Ray: import them on first use only."""
    if name == "run_experiment":
        from tuning.runner import run_experiment

        return run_experiment
    if name == "train_trial":
        from tuning.trainable import train_trial

        return train_trial
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")
