"""Results of an experiment: the trial table, summary tables, plots, dashboard and reproduction.

Importing this package loads pandas only; matplotlib, optuna, scipy and torch load when the
function that needs them runs (reading an experiment never imports Ray).
"""

from __future__ import annotations

from results.load import ExperimentError, best_row, load_experiment, load_history
from results.report import write_report
from results.reproduce import reproduce

__all__ = ["ExperimentError", "best_row", "load_experiment", "load_history", "reproduce", "write_report"]
