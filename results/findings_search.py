"""How the study's searches went: every arm's trials and epochs, the configuration each arm
confirmed, the Pareto front of overall vs tail-item validation quality (all trials, and per
arm with its hypervolume; with `study.front_seeds`, each front trial confirmed on test) and the
best-so-far curves of the search budget."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from results.pareto import FRONT_METRICS, front_candidates, front_ids, front_indices, hypervolume, reference_point
from results.stats import mean_ci
from results.study_plots import VARIANT_LABEL, arm_parts, arm_search_seed


def arm_trials(experiments: dict[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All trials and all epoch rows of every arm, with arm, variant and backbone columns, and
    `icc_carried`: the mean share of the training loss the ICC term carried over the trial's
    epochs. It is not `icc_share`, the searched setting (the share at initialisation): a heavy
    share's term shrinks as the embeddings reach their cluster centers."""
    from results.load import load_experiment, load_history

    trials, epochs = [], []
    for arm, path in experiments.items():
        variant, backbone = arm_parts(arm)
        frame = load_experiment(path).assign(arm=arm, variant=variant, backbone=backbone)
        history = load_history(path)
        if not history.empty:
            history = history.assign(arm=arm, variant=variant, backbone=backbone)
            if "share_icc" in history.columns:
                share = history.groupby("trial_id")["share_icc"].mean()
                frame["icc_carried"] = frame["trial_id"].map(share)
            epochs.append(history)
        trials.append(frame)
    return (pd.concat(trials, ignore_index=True),
            pd.concat(epochs, ignore_index=True) if epochs else pd.DataFrame())


def best_configs(trials: pd.DataFrame) -> pd.DataFrame:
    """The best trial of each arm (the one confirmed), with the parameters the search chose."""
    from results.tables import ranked

    rows = []
    for arm in sorted(trials["arm"].unique()):
        order = ranked(trials[trials["arm"] == arm])
        if order.empty:
            continue
        top = order.iloc[0]
        row = {"arm": arm, "trial_id": top["trial_id"], "valid_ndcg_10": top["valid_ndcg_10"],
               "valid_tail_item_ndcg_10": top.get("valid_tail_item_ndcg_10"), "best_epoch": top["best_epoch"]}
        searched = ("lr", "dropout") + (("gamma", "icc_share", "icc_carried", "cluster_method", "n_clusters",
                                          "min_cluster_size")
                                         if top["variant"] == "icc" else ())
        for column in searched:
            if column in top.index and not _missing(top[column]):
                row[column] = top[column]
        rows.append(row)
    return pd.DataFrame(rows)


#: a chosen value within this share of its searched range's length (on the range's scale) of an
#: end: the best value may lie beyond the range
EDGE = 0.05


def range_position(value: Any, spec: Any) -> float | None:
    """Where `value` lies in a searched float or int range: 0 at `low`, 1 at `high`, on the log
    scale for a log range; None for a categorical or fixed spec or a missing value."""
    if not isinstance(spec, dict) or spec.get("type") not in ("float", "int") or _missing(value):
        return None
    low, high, value = float(spec["low"]), float(spec["high"]), float(value)
    if spec.get("log"):
        if min(low, value) <= 0:
            return None
        low, high, value = math.log(low), math.log(high), math.log(value)
    return (value - low) / (high - low) if high > low else None


def at_range_ends(best: pd.DataFrame, tune_space: dict[str, Any], icc_space: dict[str, Any]) -> list[dict]:
    """Each chosen value within EDGE of an end of its arm's searched range (tune.space, plus
    study.icc_space for ICC arms): {arm, name, value, spec, end ("low" or "high")}."""
    found = []
    for row in best.to_dict("records"):
        space = {**tune_space, **(icc_space if arm_parts(row["arm"])[0] == "icc" else {})}
        for name, spec in space.items():
            where = range_position(row.get(name), spec)
            if where is not None and not EDGE <= where <= 1 - EDGE:
                found.append({"arm": row["arm"], "name": name, "value": row[name], "spec": spec,
                              "end": "low" if where < EDGE else "high"})
    return found


def edge_note(found: dict) -> str:
    """'ARM PARAM V (searched LOW to HIGH[, log]; the low/high end)'."""
    spec = found["spec"]
    scale = ", log" if spec.get("log") else ""
    return (f"{found['arm']} {found['name']} {found['value']:.3g} (searched {spec['low']:g} to {spec['high']:g}"
            f"{scale}; the {found['end']} end)")


def confirmed_clusters(records: list[dict]) -> dict[str, dict[str, Any]]:
    """Quality of the clustering each ICC arm confirmed (built from its config, cached): how
    many clusters, the largest one's share of the items, the noise share, degenerate or not."""
    from cluster_prep.build import build_clusters
    from datasets.prepare import prepare_dataset
    from model.llmesr import pca_matrix
    from tuning.config import config_from_dict

    out: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["arm"] in out or arm_parts(record["arm"])[0] != "icc":
            continue
        config = config_from_dict(record["config"])
        data = prepare_dataset(config.data, progress=False)
        pca = pca_matrix(data, config.model.hidden_size)
        quality = build_clusters(data, config.clusters, config.data.cache_dir, pca).quality
        out[record["arm"]] = {"clusters_found": quality["n_clusters"],
                              "largest_share": quality.get("largest_share"),
                              "noise_share": quality["noise_share"], "degenerate": quality.get("degenerate")}
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def front_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The Pareto front of overall vs tail-item validation NDCG@10 over every scored trial."""
    scored = front_candidates(trials).reset_index(drop=True)
    if scored.empty:
        return scored
    front = front_indices(list(zip(scored["valid_ndcg_10"], scored["valid_tail_item_ndcg_10"])))
    columns = [c for c in ("arm", "trial_id", "valid_ndcg_10", "valid_tail_item_ndcg_10", "lr", "dropout",
                           "gamma", "icc_share", "cluster_method", "n_clusters", "min_cluster_size", "state")
               if c in scored.columns]
    return scored.loc[front, columns].reset_index(drop=True)


def arm_fronts(trials: pd.DataFrame) -> pd.DataFrame:
    """Per search arm: its own Pareto front of overall vs tail-item validation NDCG@10 and the
    front's hypervolume against the origin (results.pareto). Arms with the same budget, so a
    larger hypervolume for the ICC arm than for the LLM-ESR arm says ICC moved the front."""
    scored = front_candidates(trials)
    rows = []
    for arm, part in (scored.groupby("arm", sort=True) if not scored.empty else []):
        points = list(zip(part["valid_ndcg_10"], part["valid_tail_item_ndcg_10"]))
        front = [points[i] for i in front_indices(points)]
        variant, backbone = arm_parts(arm)
        rows.append({"backbone": backbone, "arm": arm, "variant": VARIANT_LABEL.get(variant, variant),
                     "trials": len(points), "front": len(front),
                     "hypervolume": hypervolume(front, reference_point(2)),
                     "best valid NDCG@10": max(p[0] for p in points),
                     "best valid tail-item NDCG@10": max(p[1] for p in points)})
    return pd.DataFrame(rows)


def confirmed_fronts(trials: pd.DataFrame, every_run: pd.DataFrame, front_runs: list[dict[str, Any]],
                     seeds: list[int]) -> pd.DataFrame:
    """Each arm's validation front (first search seed), every trial on it with its test NDCG@10
    and tail-item NDCG@10, mean and 95 % CI over `seeds`: a front trial's own runs
    (`<arm>@<trial>`), the best trial's from the arm's confirmation runs on those seeds. Beside
    them, where the trial's point came from (its state, the epoch it stopped at and its best
    epoch) and where the confirmation's came from (its runs' mean best epoch, and their validation
    tail-item NDCG@10 at the trial's best epoch): a trial ASHA stopped early is a point of a short
    run, which a full-budget run selected on overall NDCG@10 need not keep."""
    rows = []
    for arm, tid, is_best, trial, runs in front_point_runs(trials, every_run, front_runs, seeds):
        overall = mean_ci([run["test"]["ndcg_10"] for run in runs])
        tail = mean_ci([run["test"]["tail_item_ndcg_10"] for run in runs])
        rows.append({"backbone": arm_parts(arm)[1], "arm": arm, "trial_id": tid, "best": is_best,
                     "valid_ndcg_10": trial[FRONT_METRICS[0]], "valid_tail_item_ndcg_10": trial[FRONT_METRICS[1]],
                     "seeds": len(runs), "test_ndcg_10": overall["mean"], "test_ndcg_10_ci": overall["half_width"],
                     "test_tail_item_ndcg_10": tail["mean"], "test_tail_item_ndcg_10_ci": tail["half_width"],
                     **_epochs_of(trial, runs)})
    return pd.DataFrame(rows)


def front_points_by_seed(trials: pd.DataFrame, every_run: pd.DataFrame, front_runs: list[dict[str, Any]],
                         seeds: list[int]) -> pd.DataFrame:
    """One row per front trial and seed: its confirmed test NDCG@10 and tail-item NDCG@10 on that
    seed (the runs confirmed_fronts averages), so a front can be measured seed by seed."""
    rows = [{"backbone": arm_parts(arm)[1], "arm": arm, "trial_id": tid, "seed": int(run["seed"]),
             "test_ndcg_10": float(run["test"]["ndcg_10"]), "test_tail_item_ndcg_10": float(run["test"]["tail_item_ndcg_10"])}
            for arm, tid, _, _, runs in front_point_runs(trials, every_run, front_runs, seeds) for run in runs]
    return pd.DataFrame(rows, columns=["backbone", "arm", "trial_id", "seed", "test_ndcg_10", "test_tail_item_ndcg_10"])


def front_point_runs(trials: pd.DataFrame, every_run: pd.DataFrame, front_runs: list[dict[str, Any]],
                     seeds: list[int]) -> Iterator[tuple[str, str, bool, pd.Series, list[dict[str, Any]]]]:
    """(arm, trial id, whether it is the arm's best trial, the trial, its runs on `seeds`) for every
    trial on a validation front of a first-search-seed arm: a front trial's runs are its own front
    runs, the best trial's are the arm's confirmation runs."""
    from results.tables import ranked

    if trials.empty or not seeds:
        return
    wanted = {int(s) for s in seeds}
    runs_of: dict[str, list[dict]] = {}
    for run in front_runs:
        if int(run["seed"]) in wanted:
            runs_of.setdefault(run["arm"], []).append(run)
    for _, run in (every_run.iterrows() if not every_run.empty else ()):
        if pd.isna(run.get("search")) and int(run["seed"]) in wanted:
            runs_of.setdefault(f"{run['arm']}@best", []).append(
                {"seed": run["seed"], "best_epoch": run.get("best_epoch"),
                 "test": {"ndcg_10": run["test_ndcg_10"], "tail_item_ndcg_10": run["test_tail_item_ndcg_10"]}})
    for arm, part in trials.groupby("arm", sort=True):
        if arm_search_seed(arm) is not None:
            continue
        best = ranked(part)
        best_id = str(best["trial_id"].iloc[0]) if not best.empty else None
        for tid in front_ids(part, FRONT_METRICS):
            trial = part[part["trial_id"] == tid].iloc[0]
            yield arm, tid, tid == best_id, trial, runs_of.get(f"{arm}@best" if tid == best_id else f"{arm}@{tid}", [])


def _epochs_of(trial: pd.Series, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a front point came from: the search trial's state, epochs trained and best epoch;
    its confirmation runs' mean best epoch and mean validation tail-item NDCG@10 at the trial's
    best epoch (NaN where the runs carry no history)."""
    best_epoch = trial.get("best_epoch")
    known = best_epoch is not None and not pd.isna(best_epoch)
    at_trial = [run["history"][int(best_epoch) - 1][FRONT_METRICS[1]] for run in runs
                if known and len(run.get("history") or []) >= int(best_epoch)]
    peaks = [run["best_epoch"] for run in runs if run.get("best_epoch") is not None and not pd.isna(run["best_epoch"])]
    return {"trial_state": trial.get("state"), "trial_epochs": trial.get("epochs"), "trial_best_epoch": best_epoch,
            "confirmed_best_epoch": sum(peaks) / len(peaks) if peaks else math.nan,
            "confirmed_valid_tail_at_trial_epoch": sum(at_trial) / len(at_trial) if at_trial else math.nan}


def confirmed_hypervolumes(confirmed: pd.DataFrame) -> dict[str, float]:
    """arm -> the hypervolume (origin) of its confirmed front points' test means: does ICC's front
    still dominate more once every point is measured on test?"""
    if confirmed.empty:
        return {}
    done = confirmed.dropna(subset=["test_ndcg_10", "test_tail_item_ndcg_10"])
    return {arm: hypervolume(list(zip(part["test_ndcg_10"], part["test_tail_item_ndcg_10"])), reference_point(2))
            for arm, part in done.groupby("arm")}


def budget_curves(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per arm: best-so-far validation NDCG@10 after each reported trial-epoch, in report order."""
    if epochs.empty or "valid_ndcg_10" not in epochs.columns:
        return pd.DataFrame()
    order = "timestamp" if "timestamp" in epochs.columns else "time_total_s"
    rows = []
    for arm, part in epochs.groupby("arm"):
        part = part.sort_values([order, "trial_id", "epoch"])
        best = part["valid_ndcg_10"].cummax().to_numpy()
        rows.append(pd.DataFrame({"arm": arm, "trial_epochs": range(1, len(part) + 1), "best_so_far": best}))
    return pd.concat(rows, ignore_index=True)
