"""The dose-response of ICC, without search: one fixed configuration, ICC at several loss shares
crossed with several clusterings, against the same configuration without ICC, over paired seeds.

A search decides which doses it tries (the first study never tried KMeans at a weight where the
constraint acts); this asks the question directly. For a base config (e.g. the LLM-ESR arm's
tuned settings) every run is `base` with `model.icc_share = s`, variant icc and one clustering
(`dose.clusterings`: kmeans-N or hdbscan-M), or the control (`model.icc.without_icc`). Each run
is an independent training run (no Ray), written as one JSON file like a study's confirmation
runs, so a stopped dose-response resumes where it was (a run whose config changed runs again).

Per dose and metric (test NDCG@10 overall and on tail items): the paired difference to the
control with its 95 % CI, the paired t-test (Holm-adjusted over every dose of that metric: the
doses are one exploratory family) and TOST at `dose.margin`, so "no effect" is a claim with a
margin. Written to <folder>/dose/: runs.csv, doses.csv, dose.md and dose.png.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from results.orchestration.confirm import comparable, run_confirmation
from results.orchestration.study import claim
from results.stats import equivalence, holm, mean_ci, paired, verdict
from results.study_plots import CONTROL

DOSE_DIR = "dose"
METRICS = ("ndcg_10", "tail_item_ndcg_10")


def arm_name(clustering: str, share: float) -> str:
    return f"{clustering}-share{share:g}"


def dose_configs(config: Any) -> dict[str, dict[int, Any]]:
    """arm -> seed -> Config: the control and every clustering x share, every seed."""
    from model.icc import without_icc
    from tuning.config import clustering_changes

    arms: dict[str, Any] = {CONTROL: without_icc(config)}
    for clustering in config.dose.clusterings:
        for share in config.dose.shares:
            arms[arm_name(clustering, share)] = config.replace(
                {"model.variant": "icc", "model.icc_share": float(share), **clustering_changes(clustering)})
    return {arm: {seed: base.replace({"train.seed": int(seed)}) for seed in config.dose.seeds}
            for arm, base in arms.items()}


def run_path(folder: Path, arm: str, seed: int) -> Path:
    return folder / DOSE_DIR / "runs" / arm / f"seed-{seed}.json"


def pending_jobs(config: Any, folder: Path) -> list[tuple[str, int, dict, str]]:
    """(arm, seed, config dict, output file) of every run missing or made with another config,
    seed by seed (the control first in each): a dose-response stopped part way leaves whole
    paired seeds, every dose beside its control, rather than some doses with every seed."""
    from tuning.config import config_to_dict

    plan, jobs = dose_configs(config), []
    for seed in config.dose.seeds:
        for arm, by_seed in plan.items():
            wanted, out = config_to_dict(by_seed[seed]), run_path(folder, arm, seed)
            if not out.is_file() or comparable(json.loads(out.read_text())["config"]) != wanted:
                jobs.append((arm, int(seed), wanted, str(out)))
    return jobs


def run_doses(config: Any, folder: Path, progress: bool) -> None:
    """Every pending run, `dose.workers` at a time, each in its own process (one torch thread)."""
    jobs = pending_jobs(config, folder)
    if not jobs:
        return
    _say(progress, f"dose-response: {len(jobs)} runs to go, {config.dose.workers} at a time")
    with ProcessPoolExecutor(config.dose.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_confirmation, job): job for job in jobs}
        for done, future in enumerate(as_completed(futures), start=1):
            record = json.loads(Path(future.result()).read_text())
            _say(progress, f"dose {done}/{len(jobs)}: {record['arm']} seed {record['seed']}: test NDCG@10 "
                           f"{record['test']['ndcg_10']:.4f}, tail {record['test']['tail_item_ndcg_10']:.4f} "
                           f"({record['seconds']:.0f} s)")


def load_runs(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((folder / DOSE_DIR / "runs").glob("*/seed-*.json"))]


def summarize_doses(config: Any, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dose, metric): means with CIs, the paired difference to the control, its
    test (raw and Holm-adjusted over the metric's doses), TOST and the verdict."""
    by_arm: dict[str, dict[int, dict]] = {}
    for run in runs:
        by_arm.setdefault(run["arm"], {})[int(run["seed"])] = run
    control = by_arm.get(CONTROL, {})
    rows = []
    for clustering in config.dose.clusterings:
        for share in config.dose.shares:
            arm = by_arm.get(arm_name(clustering, share), {})
            seeds = sorted(set(arm) & set(control))
            for metric in METRICS:
                treated = [arm[s]["test"][metric] for s in seeds]
                base = [control[s]["test"][metric] for s in seeds]
                diff, tost = paired(treated, base), equivalence(treated, base, config.dose.margin)
                rows.append({"clustering": clustering, "share": share, "metric": metric, "seeds": len(seeds),
                             "mean": mean_ci(treated)["mean"], "half_width": mean_ci(treated)["half_width"],
                             "control_mean": mean_ci(base)["mean"], "relative": diff["relative"],
                             "diff": diff["diff"], "diff_half_width": diff["diff_half_width"],
                             "p_value": diff["p_value"], "tost_p": tost["p_value"],
                             "verdict": _verdict(len(seeds), diff, tost),
                             "realised_share": _mean_realised_share([arm[s] for s in seeds])})
    for metric in METRICS:
        mine = [r for r in rows if r["metric"] == metric]
        for row, adjusted in zip(mine, holm([r["p_value"] for r in mine])):
            row["p_holm"] = adjusted
    return rows


def _verdict(n_seeds: int, diff: dict[str, Any], tost: dict[str, Any]) -> str:
    """What a dose says, or why it says nothing yet (a dose-response in progress)."""
    if n_seeds < 2:
        return "not run yet" if n_seeds == 0 else "one seed: no test yet"
    return verdict(diff, tost)


def _mean_realised_share(runs: list[dict[str, Any]]) -> float | None:
    """ICC's share of the loss over the first epoch, averaged over seeds (what the dose bought)."""
    shares = [r["history"][0]["loss_shares"]["icc"] for r in runs if r.get("history")]
    return sum(shares) / len(shares) if shares else None


def run_dose(config: Any, name: str, resume: bool = False, progress: bool = True,
             given: Any = None, report_only: bool = False) -> dict[str, Any]:
    """Run (or continue) the dose-response named `name`; write and return its summary files.
    `report_only`: write them from the runs on disk, running nothing (a dose-response still
    going, or stopped part way: the files say how many runs are missing)."""
    from results.dose_report import write_dose_report

    folder, config = claim(config, name, resume or report_only, given)
    if not report_only:
        run_doses(config, folder, progress)
    runs = load_runs(folder)
    return write_dose_report(config, folder / DOSE_DIR, runs, summarize_doses(config, runs),
                             missing=len(pending_jobs(config, folder)))


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, flush=True)
