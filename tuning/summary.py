"""What an experiment produced, in one small dict (printed by `launch.py tune --json`).

A trial that stopped by itself (patience or max epochs) reports `finished: True` in its last
result: it counts as terminated. One ASHA stopped counts as stopped_early; one that raised,
errored. Anything else (pending, or running when Ctrl-C came) is unfinished and means the run was
interrupted: the summary says so and the runner raises ExperimentInterrupted so a caller cannot
mistake a partial result for a whole. "Best" is `model.contract.rank_key`, as in every report;
with several tune.objectives the summary also holds the Pareto set (`model.contract.pareto_front`
over each objective at the trial's best epoch, as the report draws it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from model.contract import (BEST_SO_FAR, ERRORED, FINISHED, METRIC, STATES, STOPPED_EARLY, TERMINATED,
                            UNFINISHED, at_best, pareto_front, rank_key, trial_outcome)
from tuning.adapters import grid_trials
from tuning.config import Config
from tuning.optuna_db import OPTUNA_DB, load_optuna_study, reconcile

logger = logging.getLogger(__name__)


class ExperimentInterrupted(RuntimeError):
    """The run stopped before every trial finished; `summary` holds what was done."""

    def __init__(self, summary: dict):
        self.summary = summary
        super().__init__(
            f"experiment {summary['name']!r} was interrupted with {summary['finished']} of "
            f"{summary['num_samples']} trials finished; continue it with --resume --name {summary['name']}")


def trial_state(status: str, last_result: dict | None) -> str:
    """terminated / stopped_early / errored / unfinished (`model.contract.trial_outcome`, the
    rule `report` reads trial folders by), from Ray's status and the trial's last result. Ctrl-C
    makes Ray set every running trial TERMINATED too, but without `done` or FINISHED: those are
    unfinished (resumable), like pending ones."""
    last = last_result or {}
    ended = status == "TERMINATED"
    return trial_outcome(status == "ERROR", ended and bool(last.get(FINISHED)), ended and bool(last.get("done")))


def _best(rows: list[dict]) -> dict | None:
    """The best trial by `model.contract.rank_key` (the rule `launch.py report` ranks by too)."""
    ranked = [(key, row) for row in rows
              if (key := rank_key(row["trial_id"], row["state"], row[BEST_SO_FAR])) is not None]
    if not ranked:
        return None
    top = min(ranked, key=lambda pair: pair[0])[1]
    return {"trial_id": top["trial_id"], "valid_ndcg_10": top[BEST_SO_FAR],
            "state": top["state"], "config": top["params"]}


def pareto(rows: list[dict], objectives: tuple[str, ...]) -> list[dict]:
    """The trials on the validation Pareto front (model.contract.pareto_front), each with its
    state and objective values, highest first objective first."""
    by_id = {row["trial_id"]: row for row in rows}
    front = pareto_front((row["trial_id"], row["state"], row["values"]) for row in rows)
    return [{"trial_id": tid, "state": by_id[tid]["state"], **dict(zip(objectives, by_id[tid]["values"]))}
            for tid in front]


def trial_rows(grid: Any, objectives: tuple[str, ...] = (METRIC,)) -> list[dict]:
    """One row per Ray trial: id, state, sampled params, epochs, best validation NDCG@10, each
    objective at the best epoch (`values`), path."""
    rows = []
    for trial in grid_trials(grid):
        last = trial.last_result or {}
        best = last.get(BEST_SO_FAR)
        values = [last.get(at_best(name)) for name in objectives]
        rows.append({
            "trial_id": trial.trial_id,
            "state": trial_state(trial.status, last),
            "params": dict((trial.config or {}).get("params", {})),
            "epochs": last.get("epoch"),
            BEST_SO_FAR: None if best is None else float(best),
            "values": [None if value is None else float(value) for value in values],
            "node_ip": last.get("node_ip"),
            "path": trial.path,
            "error": str(trial.error_file) if trial.status == "ERROR" and trial.error_file else None,
        })
    return rows


def _record_in_optuna_db(folder: Path, name: str, rows: list[dict], interrupted: bool) -> None:
    """Close study trials the driver lost track of (only when nothing can still report to them)."""
    if interrupted:
        return
    try:
        study = load_optuna_study(folder, name)
    except FileNotFoundError:
        return
    closed = reconcile(study, rows)
    if closed:
        logger.warning("%d Optuna trials were still open after the run; closed from Ray's records", closed)


def experiment_summary(grid: Any, config: Config, folder: Path) -> dict:
    """The experiment summary; `interrupted` is True when trials are missing or unfinished."""
    objectives = tuple(config.tune.objectives)
    rows = trial_rows(grid, objectives)
    counts = {state: sum(r["state"] == state for r in rows)
              for state in STATES}
    finished = counts[TERMINATED] + counts[STOPPED_EARLY] + counts[ERRORED]
    interrupted = counts[UNFINISHED] > 0 or len(rows) < config.tune.num_samples
    name = config.tune.name
    _record_in_optuna_db(folder, name, rows, interrupted)
    return {
        "experiment": str(grid.experiment_path),
        "name": name,
        "study": str(Path(folder) / OPTUNA_DB),
        "num_samples": config.tune.num_samples,
        "trials": len(rows),
        "finished": finished,
        "terminated": counts["terminated"],
        "stopped_early": counts["stopped_early"],
        "errored": counts["errored"],
        "unfinished": counts["unfinished"],
        "interrupted": interrupted,
        "best": _best(rows),
        "trial_states": {r["trial_id"]: r["state"] for r in rows},
        **({"objectives": list(objectives), "pareto": pareto(rows, objectives)} if len(objectives) > 1 else {}),
    }
