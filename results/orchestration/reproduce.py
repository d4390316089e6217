"""Re-run a recorded trial from scratch and check that it gives the recorded numbers.

The trial's full config is read from its params.json (Ray's own file), so nothing but the
experiment folder is needed. Budget: a trial that finished by itself re-runs with its own
train.epochs and train.patience; a trial ASHA stopped (or one that errored) re-runs for exactly
the epochs it actually ran, so the comparison is like for like (ASHA's decision depended on other
trials and cannot be replayed). "Best" is the same function as in the trial table
(`results.load.best_row`), applied to the re-run's per-epoch history.

Comparison on validation NDCG@10 of the best epoch: on CPU the two must be identical (the
trainer is deterministic and seeded); on a GPU, with deterministic algorithms on, within
GPU_TOLERANCE (absolute), since some CUDA kernels still reorder floating-point sums.

With seeds N > 0 the config also runs with N more training seeds (train.seed + 1 .. + N) and,
for an ICC trial, its control without ICC (model.icc.without_icc: weights 0, variant icc becomes
llmesr) runs with all N + 1 seeds, everything else identical; every config is built and checked
before the first of those runs. Mean ± std (sample
std) of validation and test NDCG@10, and a two-sided paired t-test (scipy.stats.ttest_rel) of
test NDCG@10, config vs control, paired by seed.
"""

from __future__ import annotations

import math
import numbers
import statistics
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from model.contract import METRIC
from results.load import (ExperimentError, best_row, experiment_objectives, load_experiment, trial_config_dict,
                          trial_params)
from results.tables import ranked
from runtime import torch_threads, trial_threads

GPU_TOLERANCE = 1e-4
SIGNIFICANCE_TEST = "paired two-sided t-test (scipy.stats.ttest_rel) on test NDCG@10, paired by seed"


def select_trials(trials: pd.DataFrame, trial: str, objectives: list[str]) -> list[pd.Series]:
    """The rows `trial` names: "pareto" = every trial on the validation Pareto front over
    `objectives` (results.pareto.front_ids: never an errored trial), else select_trial's one."""
    if trial != "pareto":
        return [select_trial(trials, trial)]
    from results.pareto import front_ids

    front = front_ids(trials, objectives)
    if not front:
        raise ExperimentError(f"--trial pareto: no trial reported every objective ({', '.join(objectives)}): "
                              f"nothing to reproduce")
    return [trials[trials["trial_id"] == tid].iloc[0] for tid in front]


def select_trial(trials: pd.DataFrame, trial: str) -> pd.Series:
    """The row of `trial` ("best" = highest best-epoch valid_ndcg_10, or a trial id)."""
    if trial == "best":
        order = ranked(trials)
        if order.empty:
            raise ExperimentError("no trial reported a validation NDCG@10: nothing to reproduce")
        return order.iloc[0]
    rows = trials[trials["trial_id"] == trial]
    if rows.empty:
        raise ExperimentError(f"--trial: got {trial!r}; allowed: best or one of {', '.join(trials['trial_id'])}, "
                              f"or pareto")
    return rows.iloc[0]


def rerun_config(params: dict, row: pd.Series) -> Any:
    """The trial's Config, its budget cut to the epochs it ran unless it finished by itself."""
    from tuning.config import config_from_dict

    data = trial_config_dict(params)
    if not data:
        raise ExperimentError(f"trial {row['trial_id']}: params.json holds no full config to re-run")
    if row["state"] != "terminated":
        if not _number(row["epochs"]) or int(row["epochs"]) < 1:
            raise ExperimentError(f"--trial {row['trial_id']}: the trial never finished an epoch (state "
                                  f"{row['state']}), so there is nothing recorded to reproduce; pick a "
                                  f"trial that reported at least one epoch")
        data["train"] = {**data.get("train", {}), "epochs": int(row["epochs"])}
    return config_from_dict(data)


def relocated(config: Any, sets: list[str] | tuple[str, ...] = ()) -> Any:
    """`config` with where its data lies changed by `--set data.<location>=PATH`: a trial saves
    its data paths absolute, as they were on the machine that ran it. Nothing else may change,
    or the re-run would not reproduce the run."""
    from datasets.config import LOCATIONS
    from settings import ConfigError

    allowed = [f"data.{key}" for key in LOCATIONS]
    changes = {}
    for text in sets:
        key, sep, value = text.partition("=")
        if not sep or key.strip() not in allowed or not value.strip():
            raise ConfigError(f"reproduce --set {text!r}: only where the data lies may change "
                              f"({', '.join(allowed)}, each =PATH); anything else would not reproduce the run")
        changes[key.strip()] = value.strip()
    return config.replace(changes) if changes else config


def _history_frame(history: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"epoch": h["epoch"], **{f"valid_{k}": v for k, v in h["valid"].items()}}
                         for h in history])


def run_once(config: Any, progress: bool = False) -> dict[str, Any]:
    """Train `config` from scratch as a tuning trial would (same thread count); summarise it."""
    from model.pipeline import train_once

    with torch_threads(trial_threads(config)):       # the count its tuning trial used
        result = train_once(config, progress=False)
    best = best_row(_history_frame(result.history))
    out = {"seed": config.train.seed, "gamma": config.model.gamma, "icc_share": config.model.icc_share,
           "icc_gamma": result.history[-1].get("icc_gamma", 0.0) if result.history else 0.0, "epochs": result.epochs,
           "best_epoch": None if best is None else int(best["epoch"]),
           METRIC: None if best is None else float(best[METRIC]),
           "test": {f"test_{k}": float(v) for k, v in result.test.items()},
           "seconds": round(result.seconds, 2)}
    if progress:
        print(f"seed {out['seed']} gamma {out['gamma']:g}: valid NDCG@10 {out[METRIC]} "
              f"(epoch {out['best_epoch']}), test NDCG@10 {out['test'].get('test_ndcg_10')}", file=sys.stderr)
    return out


def _recorded(row: pd.Series) -> dict[str, Any]:
    test = {k: float(v) for k, v in row.items() if str(k).startswith("test_") and _number(v)}
    return {"trial_id": str(row["trial_id"]), "state": str(row["state"]), "epochs": int(row["epochs"]),
            "best_epoch": None if not _number(row["best_epoch"]) else int(row["best_epoch"]),
            METRIC: float(row[METRIC]), "test": test}


def _number(value: Any) -> bool:
    """A finite int or float, numpy scalars included (pandas rows hold numpy values)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _mean_std(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None, "values": values}


def paired_test(config: list[float], control: list[float]) -> dict[str, Any]:
    """Paired two-sided t-test; p is None (with the reason) where it is undefined."""
    from scipy import stats

    out: dict[str, Any] = {"test": SIGNIFICANCE_TEST, "n": len(config)}
    if len(config) < 2:
        return {**out, "statistic": None, "p_value": None, "note": "needs at least 2 seeds"}
    differences = [a - b for a, b in zip(config, control)]
    if len(set(differences)) == 1:
        return {**out, "statistic": None, "p_value": None,
                "note": f"every paired difference is {differences[0]!r}: the t statistic is undefined"}
    result = stats.ttest_rel(config, control)
    return {**out, "statistic": float(result.statistic), "p_value": float(result.pvalue)}


def seed_configs(config: Any, seeds: int) -> tuple[list[Any], list[Any] | None]:
    """The N more seeds' configs and, for an ICC config, its control's over all N + 1 seeds
    (None without ICC): built, and so checked, before any of them trains."""
    from model.icc import icc_on, without_icc

    base_seed = config.train.seed
    more = [config.replace({"train.seed": base_seed + i}) for i in range(1, seeds + 1)]
    if not icc_on(config.model):
        return more, None
    control = without_icc(config)
    return more, [control.replace({"train.seed": c.train.seed}) for c in [config, *more]]


def run_seeds_and_control(first: dict[str, Any], planned: tuple[list[Any], list[Any] | None],
               progress: bool) -> dict[str, Any]:
    """The re-run `first` plus the planned runs (seed_configs): N more seeds and, for an ICC
    config, its control without ICC over all N + 1 seeds."""
    more, controls = planned
    runs = [first] + [run_once(c, progress) for c in more]
    summary: dict[str, Any] = {"seeds": [r["seed"] for r in runs], "runs": runs,
                               "config": {"valid_ndcg_10": _mean_std([r[METRIC] for r in runs]),
                                          "test_ndcg_10": _mean_std([r["test"]["test_ndcg_10"] for r in runs])}}
    if controls is None:
        summary["control"] = None
        summary["note"] = "the trial uses no ICC: it is its own control"
        return summary
    control = [run_once(c, progress) for c in controls]
    summary["control_runs"] = control
    summary["control"] = {"valid_ndcg_10": _mean_std([r[METRIC] for r in control]),
                          "test_ndcg_10": _mean_std([r["test"]["test_ndcg_10"] for r in control])}
    summary["paired_test"] = paired_test([r["test"]["test_ndcg_10"] for r in runs],
                                         [r["test"]["test_ndcg_10"] for r in control])
    return summary


def reproduce(experiment: str, trial: str = "best", seeds: int = 0, progress: bool = True,
              locations: tuple[str, ...] = ()) -> dict[str, Any]:
    """Re-run `trial` of `experiment` from scratch and compare with what was recorded.

    Returns {"recorded", "reproduced", "match", "abs_diff", "tolerance", "device", "seeds", ...};
    seeds is None unless `seeds` > 0. `trial` "pareto" re-runs every trial of the validation
    Pareto front: {"pareto": ids, "match": all matched, "abs_diff": the largest, "trials": each's}.
    `locations`: `--set data.<location>=PATH` settings (`relocated`)."""

    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 0:
        raise ValueError(f"seeds: got {seeds!r}; allowed: a whole number >= 0")
    trials = load_experiment(experiment)
    objectives = experiment_objectives(experiment)
    rows = select_trials(trials, trial, objectives)
    if trial != "pareto":
        return reproduce_row(experiment, rows[0], seeds, progress, locations)
    outcomes = [reproduce_row(experiment, row, seeds, progress, locations) for row in rows]
    return {"experiment": str(experiment), "trial_id": "pareto", "objectives": objectives,
            "pareto": [o["trial_id"] for o in outcomes], "match": all(o["match"] for o in outcomes),
            "abs_diff": max(o["abs_diff"] for o in outcomes), "trials": outcomes}


def reproduce_row(experiment: str, row: pd.Series, seeds: int, progress: bool,
                  locations: tuple[str, ...] = ()) -> dict[str, Any]:
    """Re-run the trial of `row` and compare (see `reproduce`)."""
    from model.device import resolve_device

    params, _ = trial_params(experiment, str(row["trial_id"]))
    config = relocated(rerun_config(params, row), locations)
    device = resolve_device(config.train.device).type
    recorded = _recorded(row)
    planned = seed_configs(config, seeds) if seeds else None      # bad configs fail before any run
    reproduced = run_once(config, progress)
    difference = abs(reproduced[METRIC] - recorded[METRIC])
    tolerance = 0.0 if device == "cpu" else GPU_TOLERANCE
    test_diff = {k: abs(reproduced["test"][k] - v) for k, v in recorded["test"].items() if k in reproduced["test"]}
    return {
        "experiment": str(experiment), "trial_id": recorded["trial_id"], "device": device,
        "budget": {"epochs": config.train.epochs, "patience": config.train.patience,
                   "rule": "own budget" if row["state"] == "terminated" else "epochs the trial ran"},
        "recorded": recorded, "reproduced": reproduced,
        "match": difference <= tolerance, "abs_diff": difference, "tolerance": tolerance,
        "best_epoch_match": reproduced["best_epoch"] == recorded["best_epoch"],
        "test_max_abs_diff": max(test_diff.values()) if test_diff else None,
        "seeds": run_seeds_and_control(reproduced, planned, progress) if planned else None,
    }


def reproduce_run(path: str | Path, locations: tuple[str, ...] = ()) -> dict[str, Any]:
    """Re-run one confirmation run of a study (its JSON file holds the full config) from scratch
    and compare every test metric with the recorded one (CPU: identical; GPU: GPU_TOLERANCE)."""
    import json

    from model.device import resolve_device
    from tuning.config import config_from_dict

    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"{str(path)!r} does not exist")
    try:
        recorded = json.loads(path.read_text())
        config = config_from_dict(recorded["config"])
        recorded_test = recorded["test"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ExperimentError(f"{str(path)!r} is not a study confirmation run ({type(err).__name__}: {err})") from None
    config = relocated(config, locations)
    device = resolve_device(config.train.device).type
    rerun = run_once(config)
    diffs = {k: abs(rerun["test"][f"test_{k}"] - v) for k, v in recorded_test.items()}
    worst = max(diffs.values()) if diffs else 0.0
    tolerance = 0.0 if device == "cpu" else GPU_TOLERANCE
    return {"run": str(path), "device": device, "match": worst <= tolerance, "max_abs_diff": worst,
            "tolerance": tolerance, "best_epoch": [recorded["best_epoch"], rerun["best_epoch"]],
            "recorded_test_ndcg_10": recorded_test.get("ndcg_10"),
            "reproduced_test_ndcg_10": rerun["test"].get("test_ndcg_10")}
