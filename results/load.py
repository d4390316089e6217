"""Read a finished (or interrupted) Ray Tune experiment folder into one tidy table.

Only Ray Tune's own per-trial files are read (params.json, result.json / progress.csv,
error.txt, checkpoint_NNNNNN/), so reading never starts Ray and works on a copied folder.
result.json is preferred over progress.csv because Ray fixes the CSV header at the first
report, which drops the test_* metrics that only the final report carries.

A trial's best epoch is defined once, in `best_row`: the epoch with the maximum valid_ndcg_10
(`model.contract.METRIC`; the earliest on ties, as the trainer keeps the first best), and all
valid_* metrics of that epoch.
"""

from __future__ import annotations

import json
import math
import re
import numbers
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from model.config import BACKBONES, variant_of
from model.contract import CLUSTER_COLUMNS, FINISHED, METRIC, trial_outcome
from settings import dotted_value
from tuning.conditions import is_active

SECTIONS = ("data", "clusters", "model", "train", "tune")
#: the header Ray writes before each failure in a trial's error.txt
FAILURE_STAMP = re.compile(r"^Failure # \d+ \(occurred at (\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)\)", re.M)
#: config fields every table needs, taken from the trial's full config when not sampled (and
#: only where they matter: n_clusters is blank for a trial without ICC or with HDBSCAN)
KEY_FIELDS = {"backbone": "model.backbone", "gamma": "model.gamma", "n_clusters": "clusters.n_clusters",
              "seed": "train.seed"}
#: the config fields that decide whether a parameter is active (tuning.conditions.is_active)
DECIDING_FIELDS = {"variant": "model.variant", "gamma": "model.gamma", "icc_share": "model.icc_share",
                   "lambda_cl": "model.lambda_cl", "cluster_method": "clusters.method"}


class ExperimentError(ValueError):
    """An experiment folder that is missing or holds no readable trials."""


def best_row(history: pd.DataFrame) -> pd.Series | None:
    """The trainer's best epoch: the one the last report names as `best_epoch` (picked by
    train.select_metric, the weights tested); without that column, the epoch with the highest
    valid_ndcg_10 (earliest on ties, the default choice); None without any value."""
    chosen = _named_best(history)
    if chosen is not None:
        return chosen
    if METRIC not in history.columns:
        return None
    values = pd.to_numeric(history[METRIC], errors="coerce")
    if values.notna().sum() == 0:
        return None
    return history.loc[values.idxmax()]


def _named_best(history: pd.DataFrame) -> pd.Series | None:
    """The row of the epoch the latest report names as best, or None where it cannot be found."""
    if not {"epoch", "best_epoch"} <= set(history.columns) or history.empty:
        return None
    epochs = pd.to_numeric(history["epoch"], errors="coerce")
    if epochs.notna().sum() == 0:
        return None
    named = pd.to_numeric(history["best_epoch"], errors="coerce").loc[epochs.idxmax()]
    rows = history[epochs == named] if not pd.isna(named) else history.iloc[:0]
    return rows.iloc[-1] if not rows.empty else None


def trial_dirs(experiment: str | Path) -> list[Path]:
    """Trial folders of an experiment (those holding Ray's params.json), sorted by name."""
    root = Path(experiment)
    if root.exists() and not root.is_dir():
        raise ExperimentError(f"{str(root)!r} is a file, not an experiment folder (give the folder "
                              f"under tune.storage_path that holds the trial folders)")
    if not root.is_dir():
        raise ExperimentError(f"experiment folder {str(root)!r} does not exist")
    return sorted(p.parent for p in root.glob("*/params.json"))


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    rows = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:  # a partly written last line of a killed run
            if number < len(lines):
                raise ExperimentError(f"{path}:{number}: not JSON ({err.msg})") from None
            continue
        if not isinstance(row, dict):
            raise ExperimentError(f"{path}:{number}: expected a JSON object (one result), got {type(row).__name__}")
        rows.append(row)
    return rows


def _read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold one object (Ray's params.json)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExperimentError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(value, dict):
        raise ExperimentError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_history(trial_dir: str | Path) -> pd.DataFrame:
    """One row per epoch (the last report wins where a restored trial re-reported an epoch)."""
    trial_dir = Path(trial_dir)
    result, progress = trial_dir / "result.json", trial_dir / "progress.csv"
    if result.is_file() and result.stat().st_size:
        frame = pd.DataFrame(_read_json_lines(result))
    elif progress.is_file() and progress.stat().st_size:
        frame = pd.read_csv(progress)
    else:
        return pd.DataFrame()
    if frame.empty:
        return frame
    frame = frame.drop(columns=["config"], errors="ignore")
    order = "epoch" if "epoch" in frame.columns else "training_iteration"
    if order not in frame.columns:
        return pd.DataFrame()
    for column in {order, "epoch"} & set(frame.columns):      # numbers only (a hand-edited file)
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=[order]).drop_duplicates(subset=[order], keep="last")
    return frame.sort_values(order).reset_index(drop=True)


def trial_config_dict(params: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's full nested config inside Ray's params (a nested entry or the params themselves)."""
    candidates = [params.get("config")] + list(params.values())
    for value in candidates:
        if isinstance(value, Mapping) and any(s in value for s in SECTIONS):
            return dict(value)
    if any(isinstance(params.get(s), Mapping) for s in SECTIONS):
        return {s: params[s] for s in SECTIONS if isinstance(params.get(s), Mapping)}
    return {}


def sampled_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """What the search chose for this trial: Ray's nested "params" entry (tuning writes
    {"params": flat values, "config": full config}), else the flat entries of Ray's params."""
    chosen = params.get("params")
    source = chosen if isinstance(chosen, Mapping) else params
    return {k: v for k, v in source.items() if not isinstance(v, (Mapping, list))}


def _last_failure(trial_dir: Path) -> str | None:
    """When the trial last failed: the stamp of the last "Failure # n (occurred at ...)" header Ray
    appends to error.txt (local time, %Y-%m-%d_%H-%M-%S); "" for an error.txt without one; None
    when the trial never failed."""
    path = trial_dir / "error.txt"
    if not path.is_file():
        return None
    stamps = FAILURE_STAMP.findall(path.read_text(errors="replace"))
    return stamps[-1] if stamps else ""


def _reported_after(history: pd.DataFrame, failed_at: str) -> bool:
    """Whether an epoch was reported after the failure: Ray's `date` of a result (same format and
    clock) later than the stamp. Equal seconds count as not after: the failure is the later
    event in doubt."""
    if not failed_at or "date" not in history.columns:
        return False
    dates = history["date"].dropna().astype(str)
    return bool(len(dates)) and max(dates) > failed_at


def _state(trial_dir: Path, history: pd.DataFrame, budget: int | None) -> str:
    """`model.contract.trial_outcome` (the rule `tune`'s summary uses) read from the folder:
    finished when FINISHED or test_* was reported or the whole budget ran; errored when its
    last failure (error.txt) came after its last report (a trial that failed, was retried and
    reported again is not); done from Ray's `done` on the last logged result (set on an ASHA
    stop). A trial still running, or cut by Ctrl-C, has neither: unfinished."""
    finished = any(c.startswith("test_") and history[c].notna().any() for c in history.columns)
    finished = finished or (FINISHED in history.columns and bool(history[FINISHED].eq(True).any()))
    last_epoch = int(history["epoch"].max()) if "epoch" in history.columns and len(history) else 0
    finished = finished or (budget is not None and last_epoch >= budget)
    failed_at = _last_failure(trial_dir)
    errored = not finished and failed_at is not None and not _reported_after(history, failed_at)
    done = "done" in history.columns and len(history) > 0 and bool(history["done"].iloc[-1] == True)  # noqa: E712
    return trial_outcome(errored, finished, done and last_epoch > 0)


def _checkpoint(trial_dir: Path, row: pd.Series | None) -> str | None:
    if row is None or "checkpoint_dir_name" not in row.index:
        return None
    name = row["checkpoint_dir_name"]
    if not isinstance(name, str) or not (trial_dir / name).is_dir():
        return None
    return str(trial_dir / name)


def _final_test(history: pd.DataFrame) -> dict[str, float]:
    columns = [c for c in history.columns if c.startswith("test_")]
    out: dict[str, float] = {}
    for column in columns:
        values = history[column].dropna()
        if len(values):
            out[column] = float(values.iloc[-1])
    return out


def read_trial(trial_dir: str | Path) -> dict[str, Any]:
    """One trial folder -> one flat record (see `load_experiment` for the columns)."""
    trial_dir = Path(trial_dir)
    params = _read_json_object(trial_dir / "params.json")
    config = trial_config_dict(params)
    history = read_history(trial_dir)
    budget = dotted_value(config, "train.epochs")
    record: dict[str, Any] = {"trial_id": _trial_id(trial_dir, history)}
    record.update(sampled_params(params))
    deciding = {name: dotted_value(config, key) for name, key in DECIDING_FIELDS.items()}
    for name, key in KEY_FIELDS.items():
        if name not in record and dotted_value(config, key) is not None and is_active(name, deciding):
            record[name] = dotted_value(config, key)
    record.update(_calibrated_weight(config, history))
    _check_backbone(trial_dir, params, config)
    if isinstance(config.get("model"), Mapping):
        record["variant"] = variant_of(config["model"])
    best = best_row(history)
    record["state"] = _state(trial_dir, history, budget)
    record["epochs"] = int(history["epoch"].max()) if "epoch" in history.columns and len(history) else 0
    record["budget"] = budget
    record["best_epoch"] = int(best["epoch"]) if best is not None and "epoch" in best.index else None
    if best is not None:
        record.update({k: float(best[k]) for k in best.index
                       if k.startswith("valid_") and _is_number(best[k])})
    record.update(_final_test(history))
    record.update({c: history[c].dropna().iloc[-1] for c in CLUSTER_COLUMNS
                   if c in history.columns and history[c].notna().any()})
    record["seconds"] = float(history["time_total_s"].max()) if "time_total_s" in history.columns else math.nan
    record["started"] = _started(history)
    record["checkpoint"] = _checkpoint(trial_dir, best)
    record["path"] = str(trial_dir)
    return record


def _started(history: pd.DataFrame) -> float:
    """When the trial started (Unix seconds): its first report's time less the training time
    before it; NaN without a report (the trial ids Ray gives are random, not a counter)."""
    if history.empty or not {"timestamp", "time_total_s"} <= set(history.columns):
        return math.nan
    first = history.iloc[0]
    try:
        return float(first["timestamp"]) - float(first["time_total_s"])
    except (TypeError, ValueError):
        return math.nan


def _calibrated_weight(config: Mapping[str, Any], history: pd.DataFrame) -> dict[str, Any]:
    """For a trial weighting ICC by icc_share: the share and the gamma it calibrated to (the
    `icc_gamma` every epoch reports), so tables show the weight that was in force."""
    share = dotted_value(config, "model.icc_share")
    if not _is_number(share) or share <= 0:
        return {}
    out: dict[str, Any] = {"icc_share": share}
    if "icc_gamma" in history.columns and history["icc_gamma"].notna().any():
        out["gamma"] = float(history["icc_gamma"].dropna().iloc[-1])
    return out


def _check_backbone(trial_dir: Path, params: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """A backbone is a name the model knows: it names report files and HTML ids, so a hand-edited
    one ("a/b", markup) is refused in one line naming the trial folder and the field."""
    chosen = params.get("params") if isinstance(params.get("params"), Mapping) else params
    model = config.get("model") if isinstance(config.get("model"), Mapping) else {}
    for field, source in (("params.backbone" if chosen is not params else "backbone", chosen),
                          ("config.model.backbone", model)):
        if "backbone" in source and source["backbone"] not in BACKBONES:
            raise ExperimentError(f"trial folder {str(trial_dir)!r}: params.json {field}: got "
                                  f"{source['backbone']!r}; allowed: {', '.join(BACKBONES)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _trial_id(trial_dir: Path, history: pd.DataFrame) -> str:
    if "trial_id" in history.columns and len(history):
        return str(history["trial_id"].iloc[-1])
    parts = trial_dir.name.split("_")  # <trainable>_<id>_<n>_...: the id is the 8-hex part
    hexes = [p for p in parts if len(p) == 8 and all(c in "0123456789abcdef" for c in p)]
    return hexes[0] if hexes else trial_dir.name


def load_experiment(path: str | Path) -> pd.DataFrame:
    """One row per trial: trial_id, sampled parameters, state, epochs, budget, best_epoch,
    the valid_* metrics of the best epoch, test_* where reported, seconds, checkpoint, path."""
    dirs = trial_dirs(path)
    if not dirs:
        raise ExperimentError(f"experiment folder {str(path)!r} holds no trial folders (*/params.json)")
    frame = pd.DataFrame([_read_trial_or_say_which(d) for d in dirs])
    return frame.sort_values("trial_id").reset_index(drop=True)


def _read_trial_or_say_which(trial_dir: Path) -> dict[str, Any]:
    """read_trial, with any damage to the folder's files reported as one line naming it."""
    try:
        return read_trial(trial_dir)
    except ExperimentError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, OSError) as err:
        raise ExperimentError(f"trial folder {str(trial_dir)!r} could not be read "
                              f"({type(err).__name__}: {err})") from None


def load_history(path: str | Path) -> pd.DataFrame:
    """All epochs of all trials (trial_id, epoch, metrics) for learning curves."""
    frames = []
    for trial_dir in trial_dirs(path):
        history = read_history(trial_dir)
        if history.empty:
            continue
        history = history.copy()
        history["trial_id"] = _trial_id(trial_dir, history)
        frames.append(history)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def experiment_objectives(experiment: str | Path) -> list[str]:
    """The experiment's tune.objectives from its experiment_config.json ([METRIC] for an
    experiment saved before objectives existed, or without that file)."""
    path = Path(experiment) / "experiment_config.json"
    if not path.is_file():
        return [METRIC]
    objectives = (_read_json_object(path).get("tune") or {}).get("objectives")
    return [str(name) for name in objectives] if isinstance(objectives, list) and objectives else [METRIC]


def trial_params(experiment: str | Path, trial_id: str) -> tuple[dict[str, Any], Path]:
    """Ray's saved params of one trial and its folder (for reproduction)."""
    for trial_dir in trial_dirs(experiment):
        history = read_history(trial_dir)
        if _trial_id(trial_dir, history) == trial_id:
            return json.loads((trial_dir / "params.json").read_text()), trial_dir
    known = ", ".join(_trial_id(d, read_history(d)) for d in trial_dirs(experiment))
    raise ExperimentError(f"trial {trial_id!r} not found in {str(experiment)!r}; trials: {known}")
