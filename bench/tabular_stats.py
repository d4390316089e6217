"""What a replayed search cost and found, computed from its events and the recorded table.

Target: within `share` (1 %) of the grid's best validation NDCG@10, the best any model reaches
under the replays' own stopping rule (epoch cap, patience), i.e. what the grid finds. Costs:
- trial-epochs: reported epochs in report order up to and including the first at the target;
- simulated wall time with k concurrent trials: the replay's trials, in the order they started,
  each put on the first free of k workers and lasting its recorded epoch seconds for the epochs it
  ran; the time the first epoch at the target ends. An approximation: the search's decisions
  (what TPE suggested, whom ASHA stopped) are those of the replay's own concurrency, not of a
  k-worker run; the final test evaluation and Ray's overhead are not counted.
The grid trains every model to its end: it knows its best only when all are done, so its cost
is all of its epochs (and the k-worker makespan of all models in table order).
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from tuning.replay import stops_after

TARGET_SHARE = 0.99


def run_length(record: Mapping[str, Any], epochs: int, patience: int) -> int:
    """Epochs the trainer runs on this record's curve before it stops by itself."""
    for metrics in record["epochs"]:
        if stops_after(metrics, epochs, patience):
            return int(metrics["epoch"])
    return len(record["epochs"])


def full_run(record: Mapping[str, Any], epochs: int, patience: int) -> dict:
    """The model trained alone to its end: its best validation NDCG@10, its test NDCG@10 at
    that epoch (what deploying this model gives), its epochs and seconds."""
    length = run_length(record, epochs, patience)
    last = record["epochs"][length - 1]
    best_epoch = int(last["best_epoch"])
    return {"valid": float(last["best_valid_ndcg_10"]), "test": float(record["test"][best_epoch - 1]["ndcg_10"]),
            "epochs": length, "seconds": [float(e["epoch_seconds"]) for e in record["epochs"][:length]]}


def greedy_makespan(durations: Iterable[float], workers: int) -> float:
    """End of the last job when jobs start in order, each on the first free of `workers`."""
    free = [0.0] * workers
    end = 0.0
    for duration in durations:
        start = heapq.heappop(free)
        heapq.heappush(free, start + duration)
        end = max(end, start + duration)
    return end


def grid_figures(table: Mapping[str, Any], epochs: int, patience: int, workers: Sequence[int]) -> dict:
    runs = {key: full_run(record, epochs, patience) for key, record in table["records"].items()}
    best_key = max(runs, key=lambda k: runs[k]["valid"])
    return {"best": runs[best_key]["valid"], "best_key": best_key, "test": runs[best_key]["test"],
            "epochs": sum(r["epochs"] for r in runs.values()), "models": len(runs), "runs": runs,
            "target": TARGET_SHARE * runs[best_key]["valid"],
            "wall": {k: greedy_makespan((sum(r["seconds"]) for r in runs.values()), k) for k in workers}}


def epochs_to_target(events: Sequence[Any], target: float) -> int | None:
    """1-based count of reported epochs up to the first at or above `target` (None: never)."""
    for count, event in enumerate(events, start=1):
        if event.value >= target:
            return count
    return None


def epoch_end_times(events: Sequence[Any], workers: int) -> list[float]:
    """Simulated end time of each event's epoch with `workers` concurrent trials (module doc)."""
    order: list[str] = []
    for event in events:
        if event.trial not in order:
            order.append(event.trial)
    by_trial: dict[str, list[int]] = {t: [] for t in order}
    for index, event in enumerate(events):
        by_trial[event.trial].append(index)
    ends = [0.0] * len(events)
    free = [0.0] * workers
    for trial in order:
        clock = heapq.heappop(free)
        for index in sorted(by_trial[trial], key=lambda i: events[i].epoch):
            clock += events[index].seconds
            ends[index] = clock
        heapq.heappush(free, clock)
    return ends


def wall_to_target(events: Sequence[Any], target: float, workers: int) -> float | None:
    ends = epoch_end_times(events, workers)
    hits = [end for end, event in zip(ends, events) if event.value >= target]
    return min(hits) if hits else None


def best_so_far(events: Sequence[Any]) -> np.ndarray:
    return np.maximum.accumulate(np.array([e.value for e in events], dtype=float)) if events else np.zeros(0)


def regret_curve(events: Sequence[Any], best: float, length: int) -> np.ndarray:
    """Relative regret (1 - best so far / grid best) after 1..length trial-epochs; a replay that
    spent fewer epochs keeps its last value (it stopped searching)."""
    values = best_so_far(events)
    out = np.ones(length)
    if len(values):
        padded = np.concatenate([values, np.full(max(0, length - len(values)), values[-1])])[:length]
        out = 1.0 - padded / best
    return out


def replay_figures(replay: Any, grid: Mapping[str, Any], workers: Sequence[int]) -> dict:
    """One replay's costs to the target, its total spend and what its pick scores on test."""
    target = grid["target"]
    picked = grid["runs"].get(replay.best_key)
    return {"epochs_to_target": epochs_to_target(replay.events, target),
            "wall_to_target": {k: wall_to_target(replay.events, target, k) for k in workers},
            "epochs_total": len(replay.events), "trials": replay.trials,
            "picked_valid": picked["valid"] if picked else math.nan,
            "picked_test": picked["test"] if picked else math.nan}


def quartiles(values: Iterable[float | None]) -> tuple[float, float, float]:
    """Median and IQR (linear interpolation); a search that never reached the target counts as
    infinitely costly, so a quantile that interpolates towards one is infinite."""
    values = list(values)
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not values:
        return (math.nan, math.nan, math.nan)
    if not finite:
        return (math.inf, math.inf, math.inf)
    top = max(finite)
    array = np.array([top + 1.0 if v is None or not math.isfinite(v) else float(v) for v in values])
    q1, q2, q3 = (math.inf if q > top else float(q) for q in np.quantile(array, [0.25, 0.5, 0.75]))
    return q2, q1, q3


ALPHA = 0.05               # a difference between methods counts when the two-sided test gives p below this


def _costs(values: Iterable[float | None], top: float) -> list[float]:
    """Trial-epochs to target with a search that never reached it counted as the costliest."""
    return [top + 1.0 if v is None or not math.isfinite(v) else float(v) for v in values]


def mann_whitney(a: Sequence[float | None], b: Sequence[float | None]) -> float | None:
    """Two-sided Mann-Whitney U p-value of two methods' trial-epochs to target over their seeds
    (never = the costliest); None where undefined (fewer than 2 seeds a side, or all equal)."""
    from scipy.stats import mannwhitneyu

    finite = [float(v) for v in (*a, *b) if v is not None and math.isfinite(v)]
    top = max(finite, default=0.0)
    x, y = _costs(a, top), _costs(b, top)
    if min(len(x), len(y)) < 2 or len(set(x + y)) < 2:
        return None
    return float(mannwhitneyu(x, y, alternative="two-sided").pvalue)


def beats(a: Sequence[float | None], b: Sequence[float | None]) -> bool:
    """Whether method a needs fewer trial-epochs to target than b: a lower median AND a two-sided
    Mann-Whitney p below ALPHA; a lower median alone may be chance."""
    p = mann_whitney(a, b)
    return p is not None and p < ALPHA and quartiles(a)[0] < quartiles(b)[0]
