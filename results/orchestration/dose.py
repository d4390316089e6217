"""The dose-response of ICC, without search: one fixed configuration, ICC at several loss shares
crossed with several clusterings, against the same configuration without ICC, over paired seeds.

A search decides which doses it tries (the first study never tried KMeans at a weight where the
constraint acts); this asks the question directly. For a base config (e.g. the LLM-ESR arm's
tuned settings) every run is `base` with `model.icc_share = s`, variant icc and one clustering
(`dose.clusterings`: kmeans-N or hdbscan-M), or the control (`model.icc.without_icc`). Each run
is an independent training run (no Ray), written as one JSON file like a study's confirmation
runs, so a stopped dose-response resumes where it was (a run whose config changed runs again).
A run is known by its training settings, not by the plan (`dose.*`): a resume may grow the plan
(more seeds, shares or clusterings) and only the new runs train.

The screen (`dose.seeds`) is exploratory. With `dose.confirm_seeds`, once the screen is whole,
each clustering's best share (highest mean validation NDCG@10 over the screen's seeds: chosen
without the test split) and the control also run on those seeds, and that family (best dose per
clustering vs control, overall and tail-item test NDCG@10, every seed) is the dose-response's
pre-registered primary one, Holm-adjusted on its own.

Per dose and metric (test NDCG@10 overall and on tail items): the paired difference to the
control with its 95 % CI, the paired t-test (Holm-adjusted over every dose of that metric: the
doses are one exploratory family) and TOST at `dose.margin`, so "no effect" is a claim with a
margin. Written to <folder>/dose/: runs.csv, doses.csv, dose.md and dose.png. Standalone
(`launch.py dose`, a base config given) or as a study's stage (`study.dose_backbones`:
run_arm_dose, around the backbone's tuned LLM-ESR arm).
"""

from __future__ import annotations

import json
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

from results.orchestration.confirm import continued_note, prepare_data_once, run_confirmation, run_pool
from results.orchestration.run_files import read_runs, trained_as
from results.orchestration.layout import claim_with_plan, save_plan
from results.stats import equivalence, holm, mean_ci, paired, verdict
from results.study_plots import CONTROL
from tuning.eta import pool_time_left

DOSE_DIR = "dose"
METRICS = ("ndcg_10", "tail_item_ndcg_10")
#: the metric a clustering's best share is chosen on (validation, so the test split stays unseen)
SELECT_ON = "ndcg_10"


def arm_name(clustering: str, share: float) -> str:
    return f"{clustering}-share{share:g}"


def control_config(config: Any) -> Any:
    """The control of every dose: the same config without ICC."""
    from model.icc import without_icc

    return without_icc(config)


def dose_configs(config: Any) -> dict[str, dict[int, Any]]:
    """arm -> seed -> Config: the control and every clustering x share, every seed."""
    from tuning.config import clustering_changes

    arms: dict[str, Any] = {CONTROL: control_config(config)}
    for clustering in config.dose.clusterings:
        for share in config.dose.shares:
            arms[arm_name(clustering, share)] = config.replace(
                {"model.variant": "icc", "model.icc_share": float(share), **clustering_changes(clustering)})
    return {arm: {seed: base.replace({"train.seed": int(seed)}) for seed in config.dose.seeds}
            for arm, base in arms.items()}


def run_path(folder: Path, arm: str, seed: int) -> Path:
    return folder / DOSE_DIR / "runs" / arm / f"seed-{seed}.json"


def pending_jobs(config: Any, folder: Path) -> list[tuple[str, int, dict, str]]:
    """(arm, seed, config dict, output file) of every run missing or made with other training
    settings, seed by seed (the control first in each): a dose-response stopped part way leaves
    whole paired seeds, every dose beside its control, rather than some doses with every seed.
    The screen first; the confirmation (`dose.confirm_seeds`) once the screen is whole."""
    plan = dose_configs(config)
    jobs = _missing(config, folder, plan, list(config.dose.seeds))
    if jobs or not config.dose.confirm_seeds:
        return jobs
    return _confirmation_missing(config, folder, plan)


def _confirmation_missing(config: Any, folder: Path, plan: dict[str, dict[int, Any]]) -> list[tuple]:
    """The confirmation's missing runs: the control and each clustering's best share (the screen
    whole), on `dose.confirm_seeds`."""
    chosen = [CONTROL, *(arm_name(c, s) for c, s in best_shares(config, load_runs(folder)).items())]
    return _missing(config, folder, confirm_configs(config, plan, chosen), list(config.dose.confirm_seeds))


def _missing(config: Any, folder: Path, plan: dict[str, dict[int, Any]], seeds: list[int]) -> list[tuple]:
    from tuning.config import config_to_dict

    jobs = []
    for seed in seeds:
        for arm, by_seed in plan.items():
            wanted, out = config_to_dict(by_seed[seed]), run_path(folder, arm, seed)
            if not trained_as(out, wanted):
                jobs.append((arm, int(seed), wanted, str(out)))
    return jobs


def confirm_configs(config: Any, plan: dict[str, dict[int, Any]], arms: list[str]) -> dict[str, dict[int, Any]]:
    """arm -> confirmation seed -> Config, for the chosen arms of the screen's `plan` (the
    control among them)."""
    screen = {arm: by_seed[config.dose.seeds[0]] for arm, by_seed in plan.items() if arm in arms}
    return {arm: {seed: base.replace({"train.seed": int(seed)}) for seed in config.dose.confirm_seeds}
            for arm, base in screen.items()}


def best_shares(config: Any, runs: list[dict[str, Any]]) -> dict[str, float]:
    """clustering -> its share with the highest mean validation NDCG@10 over the screen's seeds
    (the smaller share on a tie); a clustering with a share not yet run on every screen seed
    has none."""
    seeds = set(int(s) for s in config.dose.seeds)
    by_arm: dict[str, dict[int, float]] = {}
    for run in runs:
        if int(run["seed"]) in seeds:
            by_arm.setdefault(run["arm"], {})[int(run["seed"])] = float(run["valid"][SELECT_ON])
    best = {}
    for clustering in config.dose.clusterings:
        scores = {share: by_arm.get(arm_name(clustering, share), {}) for share in config.dose.shares}
        if all(set(got) == seeds for got in scores.values()):
            best[clustering] = max(sorted(scores), key=lambda share: sum(scores[share].values()) / len(seeds))
    return best


def run_doses(config: Any, folder: Path, progress: bool, storage: Path | None = None) -> None:
    """Every pending run, `dose.workers` at a time, each in its own process (one torch thread):
    the screen, then (its choice made) the confirmation. A run another file under `storage`
    (default: the folder's parent) already holds is copied, not trained (results.orchestration.twins)."""
    from results.orchestration.twins import reuse_earlier_runs

    for _stage in ("screen", "confirmation"):
        jobs = reuse_earlier_runs(pending_jobs(config, folder), storage or folder.parent,
                                  lambda line: _say(progress, f"dose-response: {line}"))
        if not jobs:
            if pending_jobs(config, folder):
                continue                    # the screen was copied whole: now its confirmation
            return
        then = missing_runs(config, folder) - len(jobs)     # the confirmation's, while the screen runs
        _say(progress, f"dose-response: {len(jobs)} runs to go, {config.dose.workers} at a time"
                       + (f", then {then} confirmation runs (their doses chosen once the screen is whole)" if then else ""))
        prepare_data_once(jobs, progress)
        with run_pool(config.dose.workers) as pool:
            futures = {pool.submit(run_confirmation, job, progress): job for job in jobs}
            lengths: list[float] = []
            for done, future in enumerate(as_completed(futures), start=1):
                record = json.loads(Path(future.result()).read_text())
                lengths.append(float(record["seconds"]))
                _say(progress, f"dose {done}/{len(jobs)}: {record['arm']} seed {record['seed']}: test NDCG@10 "
                               f"{record['test']['ndcg_10']:.4f}, tail {record['test']['tail_item_ndcg_10']:.4f} "
                               f"({record['seconds']:.0f} s{continued_note(record)}; "
                               f"{pool_time_left(lengths, len(jobs), config.dose.workers, then)})")


def load_runs(folder: Path) -> list[dict[str, Any]]:
    return read_runs(sorted((folder / DOSE_DIR / "runs").glob("*/seed-*.json")))


def training_seconds(runs: list[dict[str, Any]]) -> float:
    """The training time the runs took, in seconds (their records' `seconds`)."""
    return sum(float(r.get("seconds", 0.0)) for r in runs)


def summarize_doses(config: Any, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The screen: one row per (dose, metric) over the screen's seeds: means with CIs, the paired
    difference to the control, its test (raw and Holm-adjusted over the metric's doses: one
    exploratory family), TOST and the verdict (from the Holm p)."""
    by_arm = _by_arm(runs, set(int(s) for s in config.dose.seeds))
    rows = [row for clustering in config.dose.clusterings for share in config.dose.shares
            for row in _compare(config, clustering, share, by_arm)]
    for metric in METRICS:
        _judged_as_family([r for r in rows if r["metric"] == metric], config.dose.margin)
    return rows


def _judged_as_family(rows: list[dict[str, Any]], margin: float) -> list[dict[str, Any]]:
    """Holm over `rows` (one family of tests), and each row's verdict from its adjusted p: a dose
    is called better or worse only when it survives the family's correction (TOST as is)."""
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = adjusted
        row["verdict"] = _verdict(row["seeds"], {"p_value": adjusted, "diff": row["diff"]},
                                  {"p_value": row["tost_p"], "margin": margin})
    return rows


def summarize_confirmed(config: Any, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The primary family: each clustering's best share (`best_shares`) against the control on
    every seed both have (screen and confirmation), overall and tail-item, Holm over all of it.
    Empty without `dose.confirm_seeds` and until the screen is whole (every clustering's best
    share chosen, the control on every screen seed)."""
    chosen = best_shares(config, runs)
    screen = set(int(s) for s in config.dose.seeds)
    control_whole = screen <= {int(r["seed"]) for r in runs if r["arm"] == CONTROL}
    if not config.dose.confirm_seeds or len(chosen) < len(config.dose.clusterings) or not control_whole:
        return []                    # the family is whole or not at all: Holm over part of it would flatter it
    by_arm = _by_arm(runs, screen | set(int(s) for s in config.dose.confirm_seeds))
    rows = [row for clustering, share in chosen.items() for row in _compare(config, clustering, share, by_arm)]
    return _judged_as_family(rows, config.dose.margin)


def _by_arm(runs: list[dict[str, Any]], seeds: set[int]) -> dict[str, dict[int, dict]]:
    by_arm: dict[str, dict[int, dict]] = {}
    for run in runs:
        if int(run["seed"]) in seeds:
            by_arm.setdefault(run["arm"], {})[int(run["seed"])] = run
    return by_arm


def _compare(config: Any, clustering: str, share: float, by_arm: dict[str, dict[int, dict]]) -> list[dict]:
    """A dose against the control on the seeds both have, one row per metric."""
    arm, control = by_arm.get(arm_name(clustering, share), {}), by_arm.get(CONTROL, {})
    seeds = sorted(set(arm) & set(control))
    rows = []
    for metric in METRICS:
        treated = [arm[s]["test"][metric] for s in seeds]
        base = [control[s]["test"][metric] for s in seeds]
        diff, tost, spread = paired(treated, base), equivalence(treated, base, config.dose.margin), mean_ci(treated)
        rows.append({"clustering": clustering, "share": share, "metric": metric, "seeds": len(seeds),
                     "mean": spread["mean"], "half_width": spread["half_width"],
                     "control_mean": diff["control_mean"], "relative": diff["relative"],
                     "diff": diff["diff"], "diff_half_width": diff["diff_half_width"],
                     "p_value": diff["p_value"], "tost_p": tost["p_value"],
                     "realised_share": _mean_realised_share([arm[s] for s in seeds]),
                     "realised_share_best": _mean_realised_share([arm[s] for s in seeds], at_best=True)})
    return rows


def _verdict(n_seeds: int, diff: dict[str, Any], tost: dict[str, Any]) -> str:
    """What a dose says, or why it says nothing yet (a dose-response in progress)."""
    if n_seeds < 2:
        return "not run yet" if n_seeds == 0 else "one seed: no test yet"
    return verdict(diff, tost)


def _mean_realised_share(runs: list[dict[str, Any]], at_best: bool = False) -> float | None:
    """ICC's share of the loss over the first epoch (what the dose bought: the weight is calibrated
    once, at initialisation), or with `at_best` over the best epoch (what is left of it by then: the
    term shrinks as training pulls the ID embeddings towards their centers), averaged over seeds."""
    shares = [r["history"][r["best_epoch"] - 1 if at_best else 0]["loss_shares"]["icc"]
              for r in runs if r.get("history") and (not at_best or len(r["history"]) >= r["best_epoch"] >= 1)]
    return sum(shares) / len(shares) if shares else None


def run_dose(config: Any, name: str, resume: bool = False, progress: bool = True,
             given: Any = None, report_only: bool = False) -> dict[str, Any]:
    """Run (or continue) the dose-response named `name`; write and return its summary files.
    `report_only`: write them from the runs on disk, running nothing (a dose-response still
    going, or stopped part way: the files say how many runs are missing). One driver at a time
    (the folder's driver lock); a report may be written beside it."""
    from tuning.lock import driver_lock

    folder, config, plan_changed = claim_dose(config, name, resume or report_only, given,
                                              "--report-only" if report_only else "--resume")
    if not report_only:
        with driver_lock(folder, name):
            if plan_changed:
                save_plan(config, folder, name)
            run_doses(config, folder, progress)
    return tabulate_doses(config, folder, folder / DOSE_DIR)[0]


def tabulate_doses(config: Any, folder: Path, out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dose-response report of the runs under `folder` (screen, primary family, plot, the
    training-free references beside them), in `out`: where it lies, and the primary family's rows."""
    from results.dose_report import write_dose_report

    runs = load_runs(folder)
    confirmed = summarize_confirmed(config, runs)
    written = write_dose_report(config, out, runs, summarize_doses(config, runs), missing=missing_runs(config, folder),
                                confirmed=confirmed, references=dose_references(config, folder))
    return written, confirmed


def dose_references(config: Any, folder: Path) -> dict[str, Any] | None:
    """The training-free references of the dose's data and protocol (cached in `folder`), or None
    where the data cannot be prepared (a report re-tabled from committed runs elsewhere)."""
    from datasets.errors import DataError
    from results.references import cached_references

    try:
        return cached_references(config, folder / "references.json")
    except (DataError, OSError):
        return None


def arm_dose_base(config: Any, experiment: Path) -> Any:
    """The config a study's dose-response is built around: the LLM-ESR arm's best trial (the one
    its confirmation runs) with the study's budget, train.epochs and train.patience (early
    stopping, as the standalone dose-response: a third fewer epochs than the confirmation's full
    budget), and the study's own `dose` plan."""
    import dataclasses

    from results.orchestration.confirm import arm_best_row, confirm_config
    from tuning.config import config_from_dict

    tuned = config_from_dict(confirm_config(config, arm_best_row(experiment), config.dose.seeds[0]))
    return dataclasses.replace(tuned.replace({"train.patience": config.train.patience}), dose=config.dose)


def run_arm_dose(config: Any, folder: Path, experiment: Path, out: Path, progress: bool) -> dict[str, Any]:
    """A study's dose-response stage for one backbone: every dose around its LLM-ESR arm's tuned
    config (`experiment`: that arm's search), runs under `folder`, the report in `out`; returns
    where it lies and its primary family's rows (`confirmed`), which the findings show. Where the
    control's runs train as the arm's confirmation runs do (train.patience 0), they are copied
    from those, as any run trained before under the storage (results.orchestration.twins)."""
    base = arm_dose_base(config, experiment)
    run_doses(base, folder, progress, storage=folder.parent.parent)
    written, confirmed = tabulate_doses(base, folder, out)
    return {**written, "confirmed": confirmed}


def missing_runs(config: Any, folder: Path) -> int:
    """Runs of the plan not done yet: while the screen is not whole, its missing runs and the
    confirmation runs not on disk yet (which doses they are is chosen only after the screen)."""
    plan = dose_configs(config)
    screen = len(_missing(config, folder, plan, list(config.dose.seeds)))
    if not screen:
        return len(_confirmation_missing(config, folder, plan)) if config.dose.confirm_seeds else 0
    planned = confirmation_size(config)
    seeds = {int(s) for s in config.dose.confirm_seeds}
    done = sum(int(run["seed"]) in seeds for run in load_runs(folder))
    return screen + max(0, planned - done)


def confirmation_size(config: Any) -> int:
    """Runs the confirmation plans: the control and each clustering's best share, per seed."""
    return (1 + len(config.dose.clusterings)) * len(config.dose.confirm_seeds)


def planned_runs(config: Any) -> int:
    """Every run of the dose plan: the screen (control and every dose, per seed) and the confirmation."""
    dose = config.dose
    return (1 + len(dose.shares) * len(dose.clusterings)) * len(dose.seeds) + confirmation_size(config)


def claim_dose(config: Any, name: str, resume: bool, given: Any = None,
               flag: str = "--resume") -> tuple[Path, Any, bool]:
    """`claim_with_plan` with the whole `dose` section as the plan: more seeds, shares or
    clusterings on resume train only the new runs."""
    return claim_with_plan(config, name, resume, given, ("dose",), "dose-response", flag)


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, flush=True)
