"""The validation Pareto front of a multi-objective search and its hypervolume.

Which trials are on the front is `model.contract.pareto_front` (never an errored trial); here
the front is measured. Hypervolume: the volume of objective space the trials dominate, above a
fixed reference point, every objective maximised. The reference point is the origin (every
objective 0, the worst a hit rate or an NDCG can be): fixed, not taken from the data, so the
hypervolume of two runs, or of one run after n and after m trials, can be compared. Computed
exactly by slicing along the last objective (exact in any dimension; fast for the tens to
hundreds of trials of a search).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from model.contract import front_point, pareto_front

REFERENCE_NOTE = "reference point: the origin (every objective 0)"
#: the two validation scores a study arm's front is drawn over (each at the trial's best epoch)
FRONT_METRICS = ("valid_ndcg_10", "valid_tail_item_ndcg_10")


def front_candidates(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials a study front is drawn over: scored on both FRONT_METRICS, never errored."""
    if trials.empty:
        return trials
    return trials[trials[FRONT_METRICS[0]].notna() & trials[FRONT_METRICS[1]].notna()
                  & (trials["state"] != "errored")]


def reference_point(dimensions: int) -> tuple[float, ...]:
    """The origin: the worst value of every ranking metric, the same for every run."""
    return (0.0,) * dimensions


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume dominated by `points` and bounded below by `reference` (all maximised). A point
    not above the reference in every objective adds nothing."""
    inside = [tuple(map(float, p)) for p in points if all(x > r for x, r in zip(p, reference))]
    return _sliced(inside, tuple(map(float, reference)))


def _sliced(points: list[tuple[float, ...]], reference: tuple[float, ...]) -> float:
    """Slice along the last objective: between two consecutive levels the dominated region is
    the (d-1)-dimensional one of the points at or above the upper level."""
    if not points:
        return 0.0
    if len(reference) == 1:
        return max(p[0] for p in points) - reference[0]
    ordered = sorted(points, key=lambda p: p[-1], reverse=True)
    volume = 0.0
    for i, point in enumerate(ordered):
        lower = ordered[i + 1][-1] if i + 1 < len(ordered) else reference[-1]
        if point[-1] > lower:
            volume += (point[-1] - lower) * _sliced([p[:-1] for p in ordered[: i + 1]], reference[:-1])
    return volume


def trial_points(trials: pd.DataFrame, objectives: Sequence[str]) -> list[tuple[str, str, list]]:
    """(trial_id, state, objective values) of every trial in the order the trials started
    (`started`, results.load; Ray's trial ids are random, so they only break ties)."""
    keys = ["started", "trial_id"] if "started" in trials.columns else ["trial_id"]
    ordered = trials.sort_values(keys, kind="mergesort", na_position="last")
    columns = [ordered[name] if name in ordered.columns else pd.Series(None, index=ordered.index)
               for name in objectives]
    states = ordered["state"] if "state" in ordered.columns else pd.Series(None, index=ordered.index)
    return [(str(tid), state, [col.loc[index] for col in columns])
            for index, tid, state in zip(ordered.index, ordered["trial_id"], states)]


def front_indices(points: Sequence[Sequence[float]]) -> list[int]:
    """Positions of `points` on their front by the one rule (model.contract.pareto_front: all
    maximised, equal points all on it, a non-finite one never), best first objective first."""
    front = [int(i) for i in pareto_front((str(i), None, point) for i, point in enumerate(points))]
    return sorted(front, key=lambda i: (-float(points[i][0]), i))


def front_ids(trials: pd.DataFrame, objectives: Sequence[str]) -> list[str]:
    """The trials of the table on the validation front (model.contract.pareto_front)."""
    return pareto_front(trial_points(trials, objectives))


def hypervolume_history(trials: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """After each trial (in start order): the hypervolume of the trials so far against the
    origin, and the size of their front. Errored trials count as trials but add no point."""
    reference = reference_point(len(objectives))
    rows, seen = [], []
    for number, (tid, state, values) in enumerate(trial_points(trials, objectives), start=1):
        seen.append((tid, state, values))
        front = pareto_front(seen)
        points = [front_point(s, v) for t, s, v in seen if t in front]
        rows.append({"trial": number, "trial_id": tid, "state": state,
                     "hypervolume": hypervolume([p for p in points if p is not None], reference),
                     "front_size": len(front)})
    return pd.DataFrame(rows, columns=["trial", "trial_id", "state", "hypervolume", "front_size"])


__all__ = ["REFERENCE_NOTE", "front_ids", "hypervolume", "hypervolume_history", "reference_point"]
