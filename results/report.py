"""Everything a user reads after a tuning run, written into <experiment>/report/.

`write_report` loads the trial table once, writes the summary tables (CSV with exact values,
Markdown, HTML), the plots and the self-contained dashboard page, and returns where they lie,
the overall best trial and a Markdown summary to print.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from model.contract import METRIC
from results.dashboard import write_dashboard
from results.load import experiment_objectives, load_experiment, load_history
from results.plots import write_plots
from results.tables import all_tables, config_columns, ranked, to_markdown, write_table

REPORT_DIR = "report"


def plain(value: Any) -> Any:
    """A JSON-ready Python value (numpy scalars unwrapped, NaN -> None)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def best_trial_record(trials: pd.DataFrame) -> dict[str, Any]:
    """The trial with the highest best-epoch valid_ndcg_10 over the whole experiment."""
    order = ranked(trials)
    if order.empty:
        return {}
    row = order.iloc[0]
    return {
        "trial_id": str(row["trial_id"]),
        "backbone": plain(row.get("backbone")),
        "state": str(row["state"]),
        "config": {c: plain(row[c]) for c in config_columns(trials)},
        "best_epoch": plain(row["best_epoch"]),
        "epochs": plain(row["epochs"]),
        "valid": {c: plain(row[c]) for c in trials.columns if c.startswith("valid_")},
        "test": {c: plain(row[c]) for c in trials.columns if c.startswith("test_") and plain(row[c]) is not None},
        "checkpoint": plain(row.get("checkpoint")),
    }


def degenerate_note(trials: pd.DataFrame) -> str | None:
    """A warning naming the trials whose clustering was degenerate: one cluster holding most of
    the items constrains little, yet its silhouette can look high, so the table alone hides it."""
    if "cluster_degenerate" not in trials.columns or trials.empty:
        return None
    flagged = trials[trials["cluster_degenerate"].map(lambda v: v in (True, "True"))]
    if flagged.empty:
        return None
    largest = pd.to_numeric(flagged.get("cluster_largest_share"), errors="coerce").max()
    share = f", the largest cluster holding up to {largest:.0%} of the items" if pd.notna(largest) else ""
    names = ", ".join(map(str, flagged["trial_id"].head(5))) + (", ..." if len(flagged) > 5 else "")
    return (f"warning: {len(flagged)} of {len(trials)} trials clustered degenerately{share} "
            f"(fewer than 2 clusters or one holding over half the items): {names}")


def summary_markdown(tables: dict[str, tuple[pd.DataFrame, bool]]) -> str:
    """The printable summary: the best configuration of each backbone."""
    leaders, _ = tables["best_per_backbone"]
    if leaders.empty:
        return "No trial reported a validation NDCG@10."
    return to_markdown(leaders)


def experiment_references(experiment: Path) -> tuple[dict | None, str | None]:
    """The training-free references on the experiment's own dataset, split and protocol
    ({split: {name: metrics}}), cached in report/references.json (results.references: keyed by
    what they depend on, rebuilt when damaged); (None, why) when the experiment's config or data
    cannot be read here."""
    import json

    from results.references import cached_references

    saved = experiment / "experiment_config.json"
    if not saved.is_file():
        return None, f"no training-free references: {saved.name} is missing from the experiment folder"
    try:
        from tuning.config import config_from_dict

        config = config_from_dict(json.loads(saved.read_text()))
        return cached_references(config, experiment / REPORT_DIR / "references.json"), None
    except (ValueError, OSError) as err:
        return None, f"no training-free references: the experiment's data could not be prepared here ({err})"


def write_report(experiment: str | Path) -> dict[str, Any]:
    """Write tables, plots and dashboard into <experiment>/report/.

    Returns {"html": dashboard path, "tables": {name: csv path (md and html beside it)},
    "best": the best trial, "summary": Markdown table of the leaders, "notes": [...]}."""
    experiment = Path(experiment)
    trials = load_experiment(experiment)
    history = load_history(experiment)
    folder = experiment / REPORT_DIR
    references, why_not = experiment_references(experiment)
    objectives = experiment_objectives(experiment)
    tables = all_tables(trials, references, objectives)
    written = {name: write_table(frame, folder, name, index=index) for name, (frame, index) in tables.items()}
    plots, notes = write_plots(trials, history, experiment, folder, objectives)
    notes = [*notes, *(note for note in (why_not, degenerate_note(trials), front_note(tables, objectives)) if note)]
    html = write_dashboard(folder / "index.html", experiment.name, trials, tables, plots, notes)
    return {
        "html": html,
        "tables": {name: paths["csv"] for name, paths in written.items()},
        "plots": plots,
        "best": best_trial_record(trials),
        "summary": summary_markdown(tables),
        "notes": notes,
        "metric": METRIC,
        **({"objectives": objectives, "pareto": list(tables["pareto"][0]["trial_id"]),
            "hypervolume": _final_hypervolume(tables)} if "pareto" in tables else {}),
    }


def _final_hypervolume(tables: dict[str, tuple[pd.DataFrame, bool]]) -> float | None:
    history, _ = tables["hypervolume"]
    return None if history.empty else float(history["hypervolume"].iloc[-1])


def front_note(tables: dict[str, tuple[pd.DataFrame, bool]], objectives: list[str]) -> str | None:
    """What the Pareto table and plots show, with the reference point of the hypervolume."""
    if "pareto" not in tables:
        return None
    from results.pareto import REFERENCE_NOTE

    front, _ = tables["pareto"]
    return (f"Pareto front over {', '.join(objectives)} (each at the trial's best epoch, errored trials "
            f"excluded): {len(front)} trials; hypervolume {_final_hypervolume(tables) or 0:.6g} "
            f"({REFERENCE_NOTE}).")
