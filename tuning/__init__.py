"""Ray Tune experiments with Optuna (TPE) and ASHA over the icc-tune model.

This file imports nothing: `tuning.config` is read before any work starts (and by results/),
and Ray is heavy, so callers import from the module that defines a name
(`tuning.runner.run_experiment`, `tuning.config.load_config`).
"""
