"""Every dose-response under one folder: where each lies, its plan, and its answer so far, for the
one table of `launch.py dose --summary` (results/icc_answers.py renders it).

Standalone dose-responses (`launch.py dose`) and a study's dose stages (`study.dose_backbones`)
are both found; each is computed from its run files, as its own report is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from results.dose_report import answer
from results.icc_answers import ANSWERS_CSV, ANSWERS_MD, answers_frame, markdown

logger = logging.getLogger(__name__)


def dose_plans(storage: Path) -> list[tuple[str, Path, Any]]:
    """(name, folder, config) of every dose-response under `storage`, by name: a standalone one
    (a folder with a saved plan and a `dose/` folder of runs) and each dose stage of a study whose
    LLM-ESR arm has been searched (the stage's base is that arm's tuned config)."""
    from results.orchestration.confirm import StudyError
    from results.orchestration.dose import DOSE_DIR, arm_dose_base
    from results.orchestration.layout import DONE_MARK, SEARCH_DIR, STUDY_FILE, arm_name, dose_stage
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
            if not (experiment / DONE_MARK).is_file():
                continue                       # the stage waits for its arm (study --status says so)
            try:
                base = arm_dose_base(config, experiment)
            except StudyError as exc:          # every trial of the arm errored: no base, no stage
                logger.warning("skipping %s: %s", folder / dose_stage(backbone), exc)
                continue
            found.append((f"{folder.name}/{dose_stage(backbone)}", folder / dose_stage(backbone), base))
    return found


def dose_answer(name: str, folder: Path, config: Any) -> dict[str, Any]:
    """One dose-response's state and answer: runs done and planned, training hours, the control's
    test NDCG@10, the primary family's rows (empty until the screen is whole) and its sentences."""
    from results.orchestration.dose import load_runs, missing_runs, summarize_confirmed, training_seconds
    from results.study_plots import CONTROL

    runs = load_runs(folder)
    missing = missing_runs(config, folder)
    confirmed = summarize_confirmed(config, runs)
    control = [r["test"]["ndcg_10"] for r in runs if r["arm"] == CONTROL]
    return {"name": name, "dataset": config.data.name, "backbone": config.model.backbone,
            "runs": len(runs), "planned": len(runs) + missing,
            "hours": training_seconds(runs) / 3600,
            "control_ndcg_10": sum(control) / len(control) if control else None,
            "margin": config.dose.margin, "confirmed": confirmed,
            "answer": answer(confirmed, config.dose.margin, missing)}


def collect_answers(storage: Path) -> list[dict[str, Any]]:
    """`dose_answer` of every dose-response under `storage`, ordered by dataset, backbone, name."""
    answers = []
    plans = dose_plans(storage)
    same = same_runs(plans)
    for name, folder, config in plans:
        report = dose_report_path(folder)
        answers.append({**dose_answer(name, folder, config), "same_runs_as": same.get(name, []),
                        "report": report.relative_to(storage).as_posix() if report else None})
    return sorted(answers, key=lambda a: (a["dataset"], a["backbone"], a["name"]))


def same_runs(plans: list[tuple[str, Path, Any]]) -> dict[str, list[tuple[str, list[str]]]]:
    """name -> [(another dose-response, the computation settings that differ)] for the plans that
    train the same runs but for how they compute (results.orchestration.twins): the same base
    model, data and training settings and the same shares, clusterings and seeds. Their answers
    agree to rounding and are one piece of evidence, not two (the Beauty study's dose stage and
    dose-beauty)."""
    from results.orchestration.twins import computation_differences, settings_of, without_computation
    from tuning.config import config_to_dict

    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, _, config in plans:
        settings, dose = settings_of(config_to_dict(config)), config.dose
        key = json.dumps([without_computation(settings), list(dose.shares), list(dose.clusterings),
                          list(dose.seeds), list(dose.confirm_seeds)], sort_keys=True, default=str)
        groups.setdefault(key, []).append((name, settings))
    return {name: [(other, computation_differences(settings, theirs, f"in {other}"))
                   for other, theirs in members if other != name]
            for members in groups.values() if len(members) > 1 for name, settings in members}


def dose_report_path(folder: Path) -> Path | None:
    """Where a dose-response's report lies, for a link: its own `dose/dose.md`, or for a study's
    dose stage the study's default findings folder (`<study>/findings/<stage>/dose.md`); None
    when neither is written (a study's findings written elsewhere with --findings)."""
    from results.orchestration.dose import DOSE_DIR
    from results.orchestration.layout import FINDINGS_DIR

    for report in (folder / DOSE_DIR / "dose.md", folder.parent / FINDINGS_DIR / folder.name / "dose.md"):
        if report.is_file():
            return report
    return None


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
