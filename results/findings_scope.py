"""What a study's findings rest on and what they cost: the trials and runs counted, the training
hours per stage, and, for a study read part way (`study --report-only`), what is still to come.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def run_scope(trials: pd.DataFrame, runs: pd.DataFrame, every_run: pd.DataFrame, front_runs: list[dict]) -> str:
    """How many search trials, confirmation runs (those the tables compare, and the other
    searches' winners) and front runs the findings rest on."""
    others = len(every_run) - len(runs)
    return (f"{len(trials)} search trials in {trials['arm'].nunique() if not trials.empty else 0} arms, "
            f"{len(every_run)} confirmation runs"
            + (f" ({len(runs)} of the compared arms, {others} of the other searches' winners)" if others else "")
            + (f", {len(front_runs)} front runs" if front_runs else ""))


def part_way_pieces(cost: pd.DataFrame | None) -> list[tuple]:
    """A study read part way (`study --report-only`) says so first, with what is still to come."""
    if cost is None or cost.empty:
        return []
    parts = cost.iloc[:-1]
    left = parts[parts["runs"] < parts["planned"]]
    if left.empty:
        return []
    total = cost.iloc[-1]
    todo = ", ".join(f"{row['stage']} {row['part']} ({row['runs']} of {row['planned']})" for _, row in left.iterrows())
    return [("p", f"**Part way**: {total['runs']} of {total['planned']} planned trials and runs are done; "
                  f"still to come: {todo}. Every table below uses the runs on disk; a stage not whole "
                  f"may change them.")]


def cost_table(stages: list[dict[str, Any]]) -> pd.DataFrame:
    """The study's cost per stage part (`results.orchestration.progress.study_status` rows): runs
    done and planned, training hours."""
    return pd.DataFrame([{"stage": s["stage"], "part": s["part"], "runs": s["done"], "planned": s["planned"],
                          "training hours": s["hours"]} for s in stages])


def cost_pieces(cost: pd.DataFrame | None) -> list[tuple]:
    """The cost section: training hours per stage part, as the runs recorded them."""
    if cost is None or cost.empty:
        return []
    total = cost.iloc[-1]
    return [("h2", "Cost"),
            ("p", f"Training time on this machine, per stage, as the runs recorded it: {total['training hours']:.2f} "
                  f"hours over {total['runs']} trials and runs ({total['planned']} planned). Runs side by "
                  f"side took less wall time; `launch.py study --status` prints the same table while a "
                  f"study runs."),
            ("table", cost)]
