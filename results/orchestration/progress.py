"""Where a study stands, read from its folder: nothing runs, no Ray starts, no lock is taken.

A second-edition study is tens of CPU hours, run across sessions or machines with `--resume`;
`launch.py study --name N --status` says per stage (each arm's search, its confirmation runs, its
front runs, each dose-response) how many runs are done, how many the plan holds and how much
training time they took, so a user knows what the next `--resume` has left to do. A stage whose
runs depend on an earlier one (the confirmation on its search's winner) says what it waits for;
its planned count is then what the config implies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from results.orchestration.confirm import (FRONT_DIR, StudyError, confirmation_jobs, confirmation_path,
                                           front_jobs, front_rows, read_runs)
from model.contract import TERMINATED, UNFINISHED
from results.orchestration.dose import (arm_dose_base, load_runs, missing_runs, pending_jobs, planned_runs,
                                        training_seconds)
from results.orchestration.layout import DONE_MARK, DOSE_STAGE_PREFIX, SEARCH_DIR, arm_name, arms, dose_stage
from results.study_plots import CONTROL, SEARCH_SUFFIX

DONE, WAITING = "done", "waits for"
#: what a search row carries for the estimates only: its trials that trained to their own end
WHOLE_TRIAL_KEYS = ("whole_trials", "whole_trial_hours")


def study_status(config: Any, folder: Path) -> list[dict[str, Any]]:
    """One row per stage part: {stage, part, done, planned, to_copy, hours, state}; the last row
    the total. `to_copy`: runs still to do that a run file elsewhere under the storage already
    holds (results.orchestration.twins copies them, so they cost no training).

    Hours stay unrounded (the console rounds for people), so the total of many short runs is not
    a sum of zeros."""
    from results.orchestration.twins import copy_counter

    copies = copy_counter(folder.parent)
    searched: dict[str, Path] = {}
    rows = []
    for variant, backbone, search_seed in arms(config):
        arm = arm_name(variant, backbone, search_seed)
        experiment = folder / SEARCH_DIR / arm
        rows.append(_search_row(config, arm, experiment))
        if (experiment / DONE_MARK).is_file():
            searched[arm] = experiment
    for variant, backbone, search_seed in arms(config):
        rows.append(_confirmation_row(config, folder, arm_name(variant, backbone, search_seed), searched, copies))
        if config.study.front_seeds and search_seed is None:
            rows.append(_front_row(config, folder, arm_name(variant, backbone), searched))
    for backbone in config.study.dose_backbones:
        rows.append(_dose_row(config, folder, backbone, searched, copies))
    rows = with_hours_left(rows)
    return rows + [{**_total(rows), "wall_hours_left": wall_hours_left(config, rows, os.cpu_count() or 1)}]


def runs_at_once(config: Any, stage: str, cpus: int) -> int:
    """How many runs of a stage train side by side on a machine of `cpus` CPUs: a search's
    `tune.max_concurrent_trials`, else as many as its `tune.cpus_per_trial` fit; confirmation
    and front runs `study.confirm_workers`; a dose stage `dose.workers`."""
    if stage == "search":
        return config.tune.max_concurrent_trials or max(1, int(cpus // config.tune.cpus_per_trial))
    return config.dose.workers if stage == "dose" else config.study.confirm_workers


def wall_hours_left(config: Any, rows: list[dict[str, Any]], cpus: int) -> float:
    """The estimated training hours still to go as wall time: each part's hours over the runs
    it trains at once (stages run one after another). Parts with no estimate add nothing."""
    return sum((row["hours_left"] or 0.0) / runs_at_once(config, row["stage"], cpus) for row in rows)


def _row(stage: str, part: str, done: int, planned: int, seconds: float, state: str,
         to_copy: int = 0) -> dict[str, Any]:
    return {"stage": stage, "part": part, "done": done, "planned": planned, "to_copy": to_copy,
            "hours": seconds / 3600, "state": state}


def _search_row(config: Any, arm: str, experiment: Path) -> dict[str, Any]:
    """Trials that ended (finished, stopped by ASHA or errored) against the arm's budget."""
    from results.load import load_experiment, trial_dirs

    planned = config.study.trials_per_arm
    if not experiment.is_dir() or not trial_dirs(experiment):
        return _row("search", arm, 0, planned, 0.0, "not started")
    trials = load_experiment(experiment)
    ended = int((trials["state"] != UNFINISHED).sum())
    seconds = float(trials["seconds"].fillna(0).sum())
    state = DONE if (experiment / DONE_MARK).is_file() else _part_way(experiment)
    whole = trials.loc[trials["state"] == TERMINATED, "seconds"].dropna()
    return {**_row("search", arm, ended, planned, seconds, state),
            **dict(zip(WHOLE_TRIAL_KEYS, (len(whole), float(whole.sum()) / 3600)))}


def _part_way(experiment: Path) -> str:
    """A search not done is running (its driver holds the arm's lock) or was stopped."""
    from tuning.lock import running_driver

    driver = running_driver(experiment)
    return f"running (driver {driver})" if driver else "stopped part way (--resume continues it)"


def _confirmation_row(config: Any, folder: Path, arm: str, searched: dict[str, Path],
                      copies: Callable[[list], int]) -> dict[str, Any]:
    """The arm's runs on study.seeds (an ICC arm's first search adds its no-ICC control's)."""
    from results.study_plots import arm_parts, arm_search_seed

    variant, backbone = arm_parts(arm)
    names = [arm] + ([f"{CONTROL}-{backbone}"] if variant == "icc" and arm_search_seed(arm) is None else [])
    planned = len(config.study.seeds) * len(names)
    files = [p for name in names for p in (confirmation_path(folder, name, s) for s in config.study.seeds) if p.is_file()]
    seconds = _seconds(files)
    if arm not in searched:
        return _row("confirmation", " + ".join(names), len(files), planned, seconds, f"{WAITING} search {arm}")
    try:
        pending = [job for job in confirmation_jobs(config, folder, {arm: searched[arm]}) if "@" not in job[0]]
    except StudyError as exc:                         # every trial errored: the resume will say so too
        return _row("confirmation", " + ".join(names), len(files), planned, seconds, f"blocked: {exc}")
    done = planned - len(pending)
    return _row("confirmation", " + ".join(names), done, planned, seconds, DONE if not pending else "to run",
                copies(pending))


def _front_row(config: Any, folder: Path, arm: str, searched: dict[str, Path]) -> dict[str, Any]:
    """The arm's validation-front trials (its best aside) on study.front_seeds."""
    files = sorted((folder / FRONT_DIR / arm).glob("*/seed-*.json"))
    if arm not in searched:
        return _row("front", arm, len(files), 0, _seconds(files), f"{WAITING} search {arm} (its front sets the count)")
    try:
        planned = (len(front_rows(searched[arm])) - 1) * len(config.study.front_seeds)
        pending = front_jobs(config, folder, {arm: searched[arm]})
    except StudyError as exc:
        return _row("front", arm, len(files), 0, _seconds(files), f"blocked: {exc}")
    return _row("front", arm, planned - len(pending), planned, _seconds(files), DONE if not pending else "to run")


def _dose_row(config: Any, folder: Path, backbone: str, searched: dict[str, Path],
              copies: Callable[[list], int]) -> dict[str, Any]:
    """The dose-response around the backbone's LLM-ESR arm, once that arm is confirmed."""
    arm, stage = arm_name("llmesr", backbone), dose_stage(backbone)
    dose_folder = folder / stage
    runs = load_runs(dose_folder)
    seconds = training_seconds(runs)
    confirmed = arm in searched and all(confirmation_path(folder, arm, s).is_file() for s in config.study.seeds)
    if not confirmed:
        return _row("dose", stage, len(runs), planned_runs(config), seconds,
                    f"{WAITING} confirmation of {arm}")
    base = arm_dose_base(config, searched[arm])
    missing = missing_runs(base, dose_folder)
    return _row("dose", stage, len(runs), len(runs) + missing, seconds, DONE if not missing else "to run",
                copies(pending_jobs(base, dose_folder)) if missing else 0)


def with_hours_left(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with `hours_left`: its runs still to do at the pace (training hours per run) of
    the part that trains alike with the most runs done, itself included (the searches of one arm
    whatever their searcher seed; an arm's confirmation and front runs): a whole search is a
    better guide than one part way, whose early trials run longest under ASHA and whose hours
    count the trials still running. None where nothing comparable has run yet or the count is not
    known. Training hours, as `hours`: runs in parallel take less wall time."""
    guide: dict[str, tuple[int, float]] = {}
    for row in rows:
        key = _trains_alike(row)
        if row["done"] and row["hours"] > 0 and row["done"] > guide.get(key, (0, 0.0))[0]:
            guide[key] = (row["done"], row["hours"] / row["done"])
    whole = _whole_trial_pace(rows)
    return [{**{key: value for key, value in row.items() if key not in WHOLE_TRIAL_KEYS},
             "hours_left": _hours_left(row, _pace(row, guide, whole))} for row in rows]


def _pace(row: dict[str, Any], guide: dict[str, tuple[int, float]],
          whole: dict[str, tuple[int, float]]) -> tuple[int, float] | None:
    """The pace of the part that trains alike, else of the arm's whole search trials; an ICC part
    with neither yet goes by its backbone's LLM-ESR part, which trains the same model plus one
    loss term (so a study's ICC arms and dose stage are estimated before any ICC run)."""
    for as_llmesr in (False, True):
        like = _run_like(row, as_llmesr)
        pace = guide.get(_trains_alike(row, as_llmesr)) or (whole.get(like) if like else None)
        if pace:
            return pace
    return None


def _llmesr_for_icc(arm: str) -> str:
    """The LLM-ESR arm of an ICC arm's backbone (searcher seed kept); any other arm unchanged."""
    return "llmesr-" + arm.removeprefix("icc-") if arm.startswith("icc-") else arm


def _whole_trial_pace(rows: list[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """arm (searcher seed aside) -> (trials, hours per trial) of its searches' trials that trained
    to their own end (patience or the epoch cap, not stopped by ASHA): what a confirmation, front
    or dose run of that arm costs, before any has run."""
    pooled: dict[str, tuple[int, float]] = {}
    for row in rows:
        if row["stage"] == "search" and row.get("whole_trials"):
            base = row["part"].split(SEARCH_SUFFIX)[0]
            count, hours = pooled.get(base, (0, 0.0))
            pooled[base] = (count + row["whole_trials"], hours + row["whole_trial_hours"])
    return {base: (count, hours / count) for base, (count, hours) in pooled.items()}


def _run_like(row: dict[str, Any], as_llmesr: bool = False) -> str | None:
    """The search arm whose whole trials train like this row's runs: its own arm for confirmation
    and front runs (the ICC arm for its control too), the backbone's ICC arm for a dose-response
    (ICC runs at the LLM-ESR arm's settings); `as_llmesr`: an ICC arm's LLM-ESR stand-in."""
    arm = None
    if row["stage"] in ("confirmation", "front"):
        arm = row["part"].split(" + ")[0].split(SEARCH_SUFFIX)[0]
    elif row["stage"] == "dose":
        arm = arm_name("icc", row["part"].removeprefix(DOSE_STAGE_PREFIX))
    return _llmesr_for_icc(arm) if arm and as_llmesr else arm


def _hours_left(row: dict[str, Any], guide: tuple[int, float] | None) -> float | None:
    if row["state"] == DONE:
        return 0.0
    todo = row["planned"] - row["done"] - row.get("to_copy", 0)
    if todo <= 0 and not row["state"].startswith(WAITING):
        return 0.0
    return guide[1] * todo if guide is not None and todo > 0 else None


def _trains_alike(row: dict[str, Any], as_llmesr: bool = False) -> str:
    """The key of the parts whose runs cost alike: a search arm whatever its searcher seed; an
    arm's confirmation runs and its front runs (both train the arm's settings from scratch);
    `as_llmesr`: an ICC arm's LLM-ESR stand-in."""
    base = row["part"].split(" + ")[0].split(SEARCH_SUFFIX)[0]
    kind = {"search": "search", "confirmation": "runs", "front": "runs"}.get(row["stage"], row["stage"])
    return f"{kind}:{_llmesr_for_icc(base) if as_llmesr else base}"


def _seconds(files: list[Path]) -> float:
    return training_seconds(read_runs(files))


def _total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The sums; `hours_left` adds the known estimates, `parts_not_estimated` counts the others."""
    state = DONE if all(r["state"] == DONE for r in rows) else "to run"
    total = _row("total", "", sum(r["done"] for r in rows), sum(r["planned"] for r in rows),
                 sum(r["hours"] for r in rows) * 3600, state, sum(r.get("to_copy", 0) for r in rows))
    unknown = sum(r["hours_left"] is None for r in rows)
    return {**total, "hours_left": sum(r["hours_left"] or 0.0 for r in rows), "parts_not_estimated": unknown}
