"""Two choices of epoch for the same training runs: what testing at the epoch one validation
metric picks (train.select_metric, e.g. tail-item NDCG@10) gives against testing at the epoch
another picks (the default, overall NDCG@10).

With patience 0 a run trains every epoch whatever picks its best one, so two runs of one
configuration and seed that differ only in train.select_metric follow the same weights epoch by
epoch; their test metrics differ only by the epoch tested. Runs are paired by seed, and a pair
whose validation curves are not identical is refused: it would not be one training run. A run
trained with train.also_select holds both choices itself (`also_runs`).
"""

from __future__ import annotations

from typing import Any, Sequence

from model.contract import SELECT_KEY
from results.stats import change_text, mean_ci, paired

#: what must be equal epoch by epoch for two runs to be one training run
CURVE_KEYS = ("train_loss", "valid_ndcg_10", "valid_tail_item_ndcg_10")
METRICS = ("ndcg_10", "tail_item_ndcg_10", "tail_user_ndcg_10", "hit_10")


def chosen_on(select_metric: str) -> str | None:
    """The metric that chose a run's epoch, in words ("validation tail_item_ndcg_10"), or None
    for the default (overall NDCG@10), which reports leave unsaid."""
    return None if select_metric == SELECT_KEY else f"validation {select_metric}"


def curve(run: dict[str, Any]) -> list[tuple[float, ...]]:
    """A run's per-epoch values of CURVE_KEYS (its training and validation trajectory)."""
    return [tuple(float(epoch[key]) for key in CURVE_KEYS) for epoch in run.get("history") or []]


def pair_by_seed(chosen: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """(chosen, baseline) run pairs of the same seed, seeds ascending; a ValueError names a seed
    whose two runs did not train alike (their curves differ, or one has none)."""
    by_seed = {int(run["seed"]): run for run in baseline}
    pairs = []
    for run in sorted(chosen, key=lambda r: int(r["seed"])):
        seed = int(run["seed"])
        if seed not in by_seed:
            continue
        if not curve(run) or curve(run) != curve(by_seed[seed]):
            raise ValueError(f"seed {seed}: the two runs' training curves differ (or are missing); allowed: "
                             f"runs of one configuration that differ only in train.select_metric, patience 0")
        pairs.append((run, by_seed[seed]))
    return pairs


def also_runs(runs: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """The runs as `metric` (one of their train.also_select) would have tested them: its best
    epoch and test metrics in place of the run's own, the same curves. A ValueError names a run
    file without it."""
    missing = [int(run["seed"]) for run in runs if metric not in (run.get("also") or {})]
    if missing:
        raise ValueError(f"seeds {missing}: their runs hold no test at the {metric} epoch; allowed: runs "
                         f"trained with train.also_select including {metric}")
    return [{**run, "best_epoch": run["also"][metric]["best_epoch"], "test": run["also"][metric]["test"]}
            for run in runs]


def compare_epoch_choice(chosen: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]],
                         metrics: Sequence[str] = METRICS) -> dict[str, Any]:
    """For the seeds both sets ran: each set's mean best epoch, and per test metric the chosen
    epoch's value against the baseline's, paired by seed (results.stats.paired)."""
    pairs = pair_by_seed(chosen, baseline)
    out: dict[str, Any] = {"seeds": [int(a["seed"]) for a, _ in pairs],
                           "best_epoch": mean_ci([a["best_epoch"] for a, _ in pairs])["mean"],
                           "baseline_best_epoch": mean_ci([b["best_epoch"] for _, b in pairs])["mean"],
                           "metrics": {}}
    for metric in metrics:
        diff = paired([a["test"][metric] for a, _ in pairs], [b["test"][metric] for _, b in pairs])
        out["metrics"][metric] = {**diff, "chosen_mean": mean_ci([a["test"][metric] for a, _ in pairs])["mean"],
                                  "change_text": change_text(diff)}
    return out
