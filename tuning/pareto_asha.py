"""ASHA that compares the trials at a rung on every objective at once (`tune.prune_metric: pareto`).

Why: Ray's schedulers rank one scalar, so in a tail-aware search (overall and tail-item NDCG@10)
ASHA stopped trials on overall NDCG@10 alone and could cut the tail-strong ones the search exists
to find (docs/multiobjective.md). Here a rung ranks the trials recorded at it by non-dominated
sorting, as multi-objective ASHA does (Schmucker et al. 2021): a trial reaching a rung continues
when fewer than ceil(n / rf) of the n trials recorded there with it lie in better fronts. So a
trial that no other trial at its rung beats on every objective always continues, and a dominated
one stops once enough trials lie in fronts ahead of it. With one objective the rule is ASHA's
"keep the best 1/rf", up to how ties and the quantile are rounded.

Asynchronous like Ray's ASHA (one bracket, the same rungs: grace_period x rf^k up to max_t): a
trial is judged when it reaches a rung against the trials recorded there before it, and its
values are recorded for those after it. Built on Ray's public FIFOScheduler; its rung records are
saved with the experiment and put back on resume by tuning.asha.RungKeeper.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from model.contract import dominates


def asha_milestones(grace_period: int, max_t: int, reduction_factor: float) -> list[float]:
    """The rungs of Ray's one-bracket ASHA (its formula): grace_period x rf^k up to max_t,
    highest first."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [grace_period * reduction_factor ** k for k in reversed(range(count))]


def front_levels(points: Sequence[Sequence[float]]) -> list[int]:
    """Each point's non-dominated front, 0 for the points none dominates (all maximised; a value
    that is not finite counts as the worst)."""
    clean = [tuple(v if math.isfinite(v) else -math.inf for v in map(float, p)) for p in points]
    beaten_by = [sum(dominates(q, p) for q in clean) for p in clean]
    dominated = [[j for j, q in enumerate(clean) if dominates(p, q)] for p in clean]
    levels, level = [0] * len(clean), 0
    current = [i for i, n in enumerate(beaten_by) if n == 0]
    while current:
        following = []
        for i in current:
            levels[i] = level
            for j in dominated[i]:
                beaten_by[j] -= 1
                if beaten_by[j] == 0:
                    following.append(j)
        current, level = following, level + 1
    return levels


def survives(point: Sequence[float], recorded: Sequence[Sequence[float]], reduction_factor: float) -> bool:
    """Whether a trial reaching a rung with `point` continues, against the points `recorded` there
    before it: fewer than ceil(n / rf) of all n points there lie in fronts ahead of its own."""
    if not recorded:
        return True
    levels = front_levels([*recorded, point])
    ahead = sum(level < levels[-1] for level in levels)
    return ahead < math.ceil(len(levels) / reduction_factor)


class ParetoASHA(FIFOScheduler):
    """Asynchronous successive halving over `metrics` (all maximised), ranked by Pareto fronts."""

    def __init__(self, metrics: Sequence[str], time_attr: str, max_t: int, grace_period: int,
                 reduction_factor: float) -> None:
        super().__init__()
        self.metrics = list(metrics)
        self.time_attr = time_attr
        self.max_t = max_t
        self.reduction_factor = reduction_factor
        self.rungs: list[tuple[float, dict[str, tuple[float, ...]]]] = [
            (milestone, {}) for milestone in asha_milestones(grace_period, max_t, reduction_factor)]
        self.stopped = 0

    def _point(self, result: dict) -> tuple[float, ...] | None:
        if result.get(self.time_attr) is None or any(m not in result for m in self.metrics):
            return None
        return tuple(float(result[m]) for m in self.metrics)

    def _judge(self, trial_id: str, now: float, point: tuple[float, ...]) -> str:
        """At the highest rung `now` reached where the trial is not recorded yet: judge, record."""
        for milestone, recorded in self.rungs:
            if now < milestone or trial_id in recorded:
                continue
            keep = survives(point, list(recorded.values()), self.reduction_factor)
            recorded[trial_id] = point
            return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        point = self._point(result)
        if point is None:
            return TrialScheduler.CONTINUE
        if result[self.time_attr] >= self.max_t:
            action = TrialScheduler.STOP
        else:
            action = self._judge(trial.trial_id, result[self.time_attr], point)
        self.stopped += action == TrialScheduler.STOP
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if result and (point := self._point(result)) is not None:
            self._judge(trial.trial_id, result[self.time_attr], point)

    def rung_records(self) -> list[list[tuple[float, dict]]]:
        """The rungs as tuning.adapters.asha_rungs gives Ray's ASHA's (one bracket), copied."""
        return [[(milestone, dict(recorded)) for milestone, recorded in self.rungs]]

    def restore_rungs(self, rungs: list) -> bool:
        """Put saved rung records back; False, changing nothing, when the milestones differ."""
        if len(rungs) != 1 or [m for m, _ in rungs[0]] != [m for m, _ in self.rungs]:
            return False
        self.rungs = [(milestone, {tid: tuple(v) for tid, v in values.items()}) for milestone, values in rungs[0]]
        return True

    def debug_string(self) -> str:
        counts = ", ".join(f"{milestone}: {len(recorded)}" for milestone, recorded in self.rungs)
        return f"Using Pareto ASHA over {self.metrics}: stopped {self.stopped}; trials per rung {counts}"
