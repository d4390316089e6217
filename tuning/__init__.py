"""Ray Tune experiments with Optuna (TPE) and ASHA over the icc-tune model.

Importing this package loads nothing: `tuning.config` is read before any work starts (and by
results/), and Ray is heavy, so each public name is imported on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Config": "tuning.config", "ConfigError": "settings", "TuneConfig": "tuning.config",
    "config_from_dict": "tuning.config", "config_to_dict": "tuning.config", "load_config": "tuning.config",
    "PARAMETERS": "tuning.space", "SearchSpace": "tuning.space", "flat_params": "tuning.space",
    "trial_config": "tuning.space", "validate_space": "tuning.space_checks",
    "BEST_SO_FAR": "model.contract", "METRIC": "model.contract", "MODE": "model.contract",
    "TIME_ATTR": "model.contract", "load_study": "tuning.study",
    "ExperimentInterrupted": "tuning.summary", "AllTrialsErrored": "tuning.runner",
    "run_experiment": "tuning.runner", "train_trial": "tuning.trainable",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tuning' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
