"""The one table of every dose-response's answer (`launch.py dose --summary`): per dataset and
backbone, each clustering's best ICC share against no ICC, overall and on tail items, with the
verdict of its pre-registered primary family, or how far the runs are while it is not whole.

The README's per-dataset, per-backbone answer quotes this table, so it is rendered from what
results/orchestration/answers.py computes from the run files, never typed in.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from results.dose_report import METRIC_LABEL
from results.stats import change_text

ANSWERS_MD, ANSWERS_CSV = "icc-answers.md", "icc-answers.csv"


def answers_frame(answers: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per dose-response, clustering and metric of the primary families (the CSV)."""
    rows = [{"dataset": a["dataset"], "backbone": a["backbone"], "dose_response": a["name"],
             "runs": a["runs"], "planned": a["planned"], **row}
            for a in answers for row in a["confirmed"]]
    return pd.DataFrame(rows)


def _change(row: dict[str, Any] | None) -> str:
    if row is None or row["relative"] is None:
        return "-"
    return f"{change_text(row)}, {row['verdict']}"


def _rows_of(entry: dict[str, Any]) -> list[str]:
    """Table lines of one dose-response: one per clustering once its family is whole, else one
    saying how far it is."""
    head = (f"| {entry['dataset']} | {entry['backbone']} | {entry['name']} | {entry['runs']} of {entry['planned']} "
            f"| {entry['hours']:.1f} ")
    if not entry["confirmed"]:
        return [head + "| - | - | screen not whole yet | screen not whole yet |"]
    by_clustering: dict[str, dict[str, dict[str, Any]]] = {}
    for row in entry["confirmed"]:
        by_clustering.setdefault(row["clustering"], {})[row["metric"]] = row
    lines = []
    for clustering, metrics in by_clustering.items():
        share = next(iter(metrics.values()))["share"]
        lines.append(head + f"| {clustering} | {100 * share:g} % | {_change(metrics.get('ndcg_10'))} "
                            f"| {_change(metrics.get('tail_item_ndcg_10'))} |")
    return lines


def markdown(answers: list[dict[str, Any]], command: str) -> str:
    """The page: the table of every dose-response, then each one's answer in words."""
    lines = ["# Does ICC help? Every dose-response's answer", "",
             f"Regenerate: `{command}`. Computed from the run files of each dose-response (see its own "
             "`dose/dose.md` for the screen, the CIs and every p-value). Each row is a clustering's best "
             "share (chosen on validation NDCG@10 over the screen's seeds) against the same configuration "
             "without ICC, on every paired seed: the change of the test mean [its 95 % CI], in % of the "
             "control's mean, and the verdict of the dose-response's pre-registered primary family (Holm "
             "over its tests; TOST for equivalence within the stated margin).", "",
             "| dataset | backbone | dose-response | runs | training h | clustering | best share "
             f"| {METRIC_LABEL['ndcg_10']} | {METRIC_LABEL['tail_item_ndcg_10']} |",
             "|---|---|---|---|---|---|---|---|---|"]
    for entry in answers:
        lines += _rows_of(entry)
    lines.append("")
    for entry in answers:
        control = "-" if entry["control_ndcg_10"] is None else f"{entry['control_ndcg_10']:.4f}"
        lines += [f"## {entry['name']}: {entry['dataset']}, {entry['backbone']}", "",
                  f"Control test NDCG@10 {control}; {entry['runs']} of {entry['planned']} planned runs; "
                  f"equivalence margin ±{100 * entry['margin']:g} %"
                  + (f"; [its report]({entry['report']})." if entry.get("report") else "."), ""]
        lines += [f"- {sentence}" for sentence in entry["answer"]] or ["- No answer yet: the screen is not whole."]
        lines += [f"- {same_runs_line(other, differ)}" for other, differ in entry.get("same_runs_as", [])]
        lines.append("")
    return "\n".join(lines)


def same_runs_line(other: str, differ: list[str]) -> str:
    """The sentence under a dose-response that trains another's runs (answers.same_runs)."""
    how = f"only how they compute differs: {'; '.join(differ)}" if differ else "nothing differs"
    return (f"Trains the same runs as {other} ({how}): the two answers agree to rounding and are one "
            f"piece of evidence, not two.")


__all__ = ["ANSWERS_CSV", "ANSWERS_MD", "answers_frame", "markdown", "same_runs_line"]
