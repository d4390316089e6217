"""Every dose-response under one folder in one table: per dataset and backbone, each clustering's
best ICC share against no ICC, overall and on tail items, with the verdict of its pre-registered
primary family (or how far the runs are while it is not whole).

The README's per-dataset, per-backbone answer quotes this table, so it is computed from the run
files, like each dose-response's own report, and never typed in: `launch.py dose --summary`
rewrites it. Standalone dose-responses (`launch.py dose`) and a study's dose stages
(`study.dose_backbones`) are both found.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from results.dose_report import METRIC_LABEL, answer

ANSWERS_MD, ANSWERS_CSV = "icc-answers.md", "icc-answers.csv"
logger = logging.getLogger(__name__)


def dose_plans(storage: Path) -> list[tuple[str, Path, Any]]:
    """(name, folder, config) of every dose-response under `storage`, by name: a standalone one
    (a folder with a saved plan and a `dose/` folder of runs) and each dose stage of a study whose
    LLM-ESR arm has been searched (the stage's base is that arm's tuned config)."""
    from results.orchestration.dose import DOSE_DIR, arm_dose_base
    from results.orchestration.study import DONE_MARK, SEARCH_DIR, STUDY_FILE, arm_name
    from tuning.config import config_from_dict

    found = []
    for saved in sorted(storage.glob(f"*/{STUDY_FILE}")):
        folder = saved.parent
        try:
            config = config_from_dict(json.loads(saved.read_text()))
        except ValueError as exc:              # an old or hand-edited folder: the others still count
            logger.warning("skipping %s: its saved config does not load (%s)", folder, exc)
            continue
        if (folder / DOSE_DIR).is_dir():
            found.append((folder.name, folder, config))
        for backbone in config.study.dose_backbones:
            experiment = folder / SEARCH_DIR / arm_name("llmesr", backbone)
            if (experiment / DONE_MARK).is_file():
                found.append((f"{folder.name}/dose-{backbone}", folder / f"dose-{backbone}",
                              arm_dose_base(config, experiment)))
    return found


def dose_answer(name: str, folder: Path, config: Any) -> dict[str, Any]:
    """One dose-response's state and answer: runs done and planned, training hours, the control's
    test NDCG@10, the primary family's rows (empty until the screen is whole) and its sentences."""
    from results.orchestration.dose import load_runs, missing_runs, summarize_confirmed
    from results.study_plots import CONTROL

    runs = load_runs(folder)
    missing = missing_runs(config, folder)
    confirmed = summarize_confirmed(config, runs)
    control = [r["test"]["ndcg_10"] for r in runs if r["arm"] == CONTROL]
    return {"name": name, "dataset": config.data.name, "backbone": config.model.backbone,
            "runs": len(runs), "planned": len(runs) + missing,
            "hours": sum(float(r.get("seconds", 0.0)) for r in runs) / 3600,
            "control_ndcg_10": sum(control) / len(control) if control else None,
            "margin": config.dose.margin, "confirmed": confirmed,
            "answer": answer(confirmed, config.dose.margin, missing)}


def collect_answers(storage: Path) -> list[dict[str, Any]]:
    """`dose_answer` of every dose-response under `storage`, ordered by dataset, backbone, name."""
    answers = [dose_answer(name, folder, config) for name, folder, config in dose_plans(storage)]
    return sorted(answers, key=lambda a: (a["dataset"], a["backbone"], a["name"]))


def answers_frame(answers: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per dose-response, clustering and metric of the primary families (the CSV)."""
    rows = [{"dataset": a["dataset"], "backbone": a["backbone"], "dose_response": a["name"],
             "runs": a["runs"], "planned": a["planned"], **row}
            for a in answers for row in a["confirmed"]]
    return pd.DataFrame(rows)


def _change(row: dict[str, Any] | None) -> str:
    if row is None or row["relative"] is None:
        return "-"
    return f"{100 * row['relative']:+.1f} %, {row['verdict']}"


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
             "without ICC, on every paired seed: the change of the test mean and the verdict of the "
             "dose-response's pre-registered primary family (Holm over its tests; TOST for equivalence "
             "within the stated margin).", "",
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
                  f"equivalence margin ±{100 * entry['margin']:g} %.", ""]
        lines += [f"- {sentence}" for sentence in entry["answer"]] or ["- No answer yet: the screen is not whole."]
        lines.append("")
    return "\n".join(lines)


def write_answers(storage: Path, command: str) -> dict[str, Any]:
    """Write icc-answers.md and icc-answers.csv in `storage`; return where they lie and, per
    dose-response, its state and answer (the primary family's rows are in the CSV)."""
    if not storage.is_dir():
        raise ValueError(f"--summary: no folder {storage} (tune.storage_path)")
    answers = collect_answers(storage)
    (storage / ANSWERS_MD).write_text(markdown(answers, command))
    answers_frame(answers).to_csv(storage / ANSWERS_CSV, index=False)
    return {"markdown": str(storage / ANSWERS_MD), "csv": str(storage / ANSWERS_CSV),
            "dose_responses": [{k: v for k, v in a.items() if k != "confirmed"} for a in answers]}


__all__ = ["ANSWERS_CSV", "ANSWERS_MD", "collect_answers", "dose_plans", "markdown", "write_answers"]
