"""Summary tables of an experiment, built from `load_experiment`'s one-row-per-trial frame.

Every number is taken unchanged from the trial rows (no averaging, no rounding): a table cell
can always be traced back to one trial. Rounding happens only when a table is written.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from model.contract import CLUSTER_COLUMNS, METRIC, rank_key

SEGMENTS = (("overall", ""), ("new target", "new_target_"), ("tail item", "tail_item_"),
            ("head item", "head_item_"), ("tail user", "tail_user_"), ("head user", "head_user_"))
LEADER_TEST = ("test_ndcg_10", "test_new_target_ndcg_10", "test_hit_10")
SEGMENT_METRICS = (("Hit@10", "hit_10"), ("NDCG@10", "ndcg_10"))
#: columns that describe a trial but are not its configuration
NOT_CONFIG = {"trial_id", "state", "epochs", "budget", "best_epoch", "seconds", "started", "checkpoint", "path",
              *CLUSTER_COLUMNS}


def config_columns(trials: pd.DataFrame) -> list[str]:
    """The configuration columns of the trial table (sampled parameters and key fields)."""
    return [c for c in trials.columns
            if c not in NOT_CONFIG and not c.startswith(("valid_", "test_"))]


def ranked(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials with a validation score, best first, by the one definition of "best"
    (`model.contract.rank_key`, which `launch.py tune`'s summary uses too): an errored trial is
    never ranked, whatever it reported; trial_id breaks ties."""
    if METRIC not in trials.columns:
        return trials.iloc[0:0]
    states = trials["state"] if "state" in trials.columns else pd.Series(None, index=trials.index)
    keys = {index: rank_key(trial_id, state, score) for index, trial_id, state, score
            in zip(trials.index, trials["trial_id"], states, trials[METRIC])}
    order = sorted((key, index) for index, key in keys.items() if key is not None)
    return trials.loc[[index for _, index in order]]


def pareto_table(trials: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """The trials on the validation Pareto front (results.pareto.front_ids), the key columns
    first: id, state, each objective (best epoch), its test counterpart where the trial reported
    it (only trials that finished by themselves do), then the configuration."""
    from results.pareto import front_ids

    front = front_ids(trials, objectives)
    rows = trials.set_index("trial_id").loc[front].reset_index() if front else trials.iloc[0:0]
    tests = [f"test_{name.removeprefix('valid_')}" for name in objectives]
    columns = ["trial_id", "state", *objectives, *(c for c in tests if c in trials.columns)]
    columns += [c for c in (*config_columns(trials), "epochs", "best_epoch") if c not in columns]
    return rows[[c for c in columns if c in rows.columns]].reset_index(drop=True)


def _backbones(trials: pd.DataFrame) -> pd.Series:
    if "backbone" in trials.columns:
        return trials["backbone"].fillna("unknown").astype(str)
    return pd.Series("unknown", index=trials.index)


def best_per_backbone(trials: pd.DataFrame) -> pd.DataFrame:
    """The leader (highest best-epoch valid_ndcg_10) of each backbone, one row each: who and how
    good first (backbone, trial, scores), then how long it ran, then its configuration, so the
    scores stay in view on a narrow page."""
    order = ranked(trials)
    if order.empty:
        return order
    leaders = order.groupby(_backbones(order), sort=True).head(1)
    columns = (["backbone"] if "backbone" in leaders.columns else []) + ["trial_id", "state", METRIC]
    columns += [c for c in ("valid_tail_item_ndcg_10", "valid_new_target_ndcg_10", *LEADER_TEST)
                if c in leaders.columns]
    columns += ["epochs", "best_epoch"]
    columns += [c for c in config_columns(leaders) if c not in columns]
    return leaders[columns].sort_values(METRIC, ascending=False).reset_index(drop=True)


def reference_rows(references: dict[str, dict[str, dict[str, float]]], columns: list[str]) -> pd.DataFrame:
    """The training-free references as rows shaped like `columns` (valid_* / test_* filled from
    references[split][name]), so a table shows the floor beside every trained number."""
    rows = []
    names = sorted({name for by_name in references.values() for name in by_name})
    for name in names:
        row: dict[str, Any] = {c: None for c in columns}
        row.update({"backbone": "reference", "trial_id": name, "state": "training-free"})
        for split, by_name in references.items():
            for key, value in by_name.get(name, {}).items():
                if f"{split}_{key}" in columns:
                    row[f"{split}_{key}"] = value
        rows.append({c: row.get(c) for c in columns})
    return pd.DataFrame(rows, columns=columns)


def gamma_cluster_grid(trials: pd.DataFrame, backbone: str) -> pd.DataFrame:
    """gamma (rows) x n_clusters (columns): the best valid_ndcg_10 among the trials of each cell."""
    needed = {"gamma", "n_clusters", METRIC}
    if not needed <= set(trials.columns):
        return pd.DataFrame()
    rows = ranked(trials[_backbones(trials) == backbone])
    if rows.empty:
        return pd.DataFrame()
    grid = rows.pivot_table(index="gamma", columns="n_clusters", values=METRIC, aggfunc="max")
    grid.index.name, grid.columns.name = "gamma", "n_clusters"
    return grid.sort_index().sort_index(axis=1)


def segment_metrics(trials: pd.DataFrame) -> pd.DataFrame:
    """Overall / tail / head (items and users) Hit@10 and NDCG@10 of each backbone's leader.

    One row per leader and split: the validation split (best epoch) always, the test split
    where the trial reported it (only trials that finished by themselves do)."""
    leaders = best_per_backbone(trials)
    records = []
    for _, leader in leaders.iterrows():
        row = trials.loc[trials["trial_id"] == leader["trial_id"]].iloc[0]
        for split in ("valid", "test"):
            values = {f"{segment} {label}": row.get(f"{split}_{prefix}{key}", math.nan)
                      for segment, prefix in SEGMENTS for label, key in SEGMENT_METRICS}
            if all(_missing(v) for v in values.values()):
                continue
            records.append({"backbone": row.get("backbone", "unknown"), "trial_id": row["trial_id"],
                            "split": split, **values})
    return pd.DataFrame(records)


def reference_segments(references: dict[str, dict[str, dict[str, float]]]) -> pd.DataFrame:
    """segment_metrics' shape for the training-free references (one row per reference and split)."""
    records = []
    for split, by_name in references.items():
        for name, metrics in sorted(by_name.items()):
            values = {f"{segment} {label}": metrics.get(f"{prefix}{key}", math.nan)
                      for segment, prefix in SEGMENTS for label, key in SEGMENT_METRICS}
            records.append({"backbone": "reference", "trial_id": name, "split": split, **values})
    return pd.DataFrame(records)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value: Any, digits: int) -> str:
    if _missing(value):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.3g}"
    return str(value)


def _whole(series: pd.Series) -> bool:
    """A float column whose values are all whole numbers (an int column with blanks, such as
    best_epoch or a conditional min_cluster_size): shown without decimals."""
    values = [v for v in series.dropna() if not isinstance(v, str) or v]
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return (bool(values) and len(numbers) == len(values) and any(isinstance(v, float) for v in numbers)
            and all(float(v).is_integer() and abs(v) < 1e15 for v in numbers))


def _formatters(frame: pd.DataFrame, digits: int) -> list:
    def whole(v: Any) -> str:
        return "" if _missing(v) else str(int(v))

    return [whole if _whole(frame[c]) else (lambda v: _cell(v, digits)) for c in frame.columns]


def to_markdown(frame: pd.DataFrame, digits: int = 4, index: bool = False) -> str:
    """A GitHub Markdown table (written here to avoid the optional `tabulate` dependency)."""
    if index:
        frame = _flatten(frame).reset_index()
    header = [str(c) for c in frame.columns]
    formats = _formatters(frame, digits)
    body = [[fmt(v).replace("|", "\\|") for fmt, v in zip(formats, row)] for row in frame.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    rule = ["---:" if n else "---" for n in numeric]
    lines = [header, rule] + body
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def to_html(frame: pd.DataFrame, digits: int = 4, index: bool = False, table_id: str = "") -> str:
    """An HTML table with the same number formatting as the Markdown one."""
    shown = _flatten(frame).reset_index() if index else frame
    formats = dict(zip(shown.columns, _formatters(shown, digits)))
    html = shown.to_html(index=False, na_rep="", border=0, classes="table", formatters=formats)
    return html.replace("<table ", f'<table id="{escape(table_id, quote=True)}" ', 1) if table_id else html


def write_table(frame: pd.DataFrame, folder: str | Path, name: str, index: bool = False) -> dict[str, str]:
    """Write `name`.csv (exact values), `name`.md and `name`.html; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame = _flatten(frame) if index else frame
    paths = {"csv": folder / f"{name}.csv", "md": folder / f"{name}.md", "html": folder / f"{name}.html"}
    frame.to_csv(paths["csv"], index=index)
    paths["md"].write_text(to_markdown(frame, index=index) + "\n")
    paths["html"].write_text(to_html(frame, index=index, table_id=name) + "\n")
    return {kind: str(path) for kind, path in paths.items()}


def _flatten(frame: pd.DataFrame) -> pd.DataFrame:
    """Name grid columns after their axis (n_clusters=8), so the written table says what they are."""
    if frame.columns.name:
        frame = frame.rename(columns=lambda c: f"{frame.columns.name}={c}")
        frame.columns.name = None
    return frame


def grid_name(backbone: str) -> str:
    return f"grid_{backbone}"


def _by_score(trials: pd.DataFrame) -> pd.DataFrame:
    if METRIC not in trials.columns:
        return trials.reset_index(drop=True)
    return trials.sort_values([METRIC, "trial_id"], ascending=[False, True], na_position="last",
                              kind="mergesort").reset_index(drop=True)


def all_tables(trials: pd.DataFrame, references: dict | None = None,
               objectives: list[str] | None = None) -> dict[str, tuple[pd.DataFrame, bool]]:
    """Every summary table by name, with whether its index is part of the table. With the
    training-free `references` ({split: {name: metrics}}), the leader and segment tables carry
    them as rows, and a references table lists them whole. With several `objectives`, the
    Pareto trials and the hypervolume after each trial too."""
    shown = trials.drop(columns=["path"], errors="ignore")
    if "checkpoint" in shown.columns:  # the trial folder is known from trial_id: keep the short name
        shown = shown.assign(checkpoint=shown["checkpoint"].map(lambda p: Path(p).name if isinstance(p, str) else p))
    leaders, segments = best_per_backbone(trials), segment_metrics(trials)
    if references:
        leaders = pd.concat([leaders, reference_rows(references, list(leaders.columns))], ignore_index=True)
        segments = pd.concat([segments, reference_segments(references)], ignore_index=True)
    tables: dict[str, tuple[pd.DataFrame, bool]] = {
        "trials": (_by_score(shown), False),
        "best_per_backbone": (leaders, False),
        "segments": (segments, False),
    }
    if objectives and len(objectives) > 1:
        from results.pareto import hypervolume_history

        tables["pareto"] = (pareto_table(trials, objectives), False)
        tables["hypervolume"] = (hypervolume_history(trials, objectives), False)
    for backbone in sorted(_backbones(trials).unique()):
        grid = gamma_cluster_grid(trials, backbone)
        if not grid.empty:
            tables[grid_name(backbone)] = (grid, True)
    return tables
