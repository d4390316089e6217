"""What ASHA's first rung decided in a finished two-objective search, and what the Pareto ASHA
(tune.prune_metric: pareto) would have decided with the same trials in the same order.

Why: the first rung is where a one-metric ASHA cuts most trials, and every trial reaches it, so
its decisions under another rule can be replayed exactly from the recorded epochs: a trial is
judged on its values at the rung's epoch against the trials that reached the rung before it
(their order: the time each reported that epoch). Later rungs cannot be replayed: a trial the
other rule keeps has no record past the epoch it was stopped at. The replay of the rule the
search ran is checked against the trials it actually stopped there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from model.contract import STOPPED_EARLY, TIME_ATTR, pareto_front
from results.load import experiment_objectives, load_experiment, load_history
from tuning.pareto_asha import asha_milestones, survives


def asha_keeps(values: Sequence[float], reduction_factor: float) -> list[bool]:
    """Ray's ASHA at one rung, trials in arrival order: a trial stops when its value is below
    the (1 - 1/rf) quantile of the values recorded there before it."""
    kept = []
    for i, value in enumerate(values):
        before = values[:i]
        cutoff = np.nanpercentile(before, (1 - 1 / reduction_factor) * 100) if before else None
        kept.append(cutoff is None or not value < cutoff)
    return kept


def pareto_keeps(points: Sequence[Sequence[float]], reduction_factor: float) -> list[bool]:
    """tuning.pareto_asha's rule at one rung, trials in arrival order."""
    return [survives(point, points[:i], reduction_factor) for i, point in enumerate(points)]


def _tune(experiment: Path) -> dict[str, Any]:
    import json

    return json.loads((experiment / "experiment_config.json").read_text())["tune"]


def rung_arrivals(history: pd.DataFrame, milestone: float, metrics: list[str]) -> pd.DataFrame:
    """Each trial's values at the first epoch at or past `milestone`, in the order the trials
    reported it (Ray's timestamp, whole seconds; the trial id orders two in the same second, which
    may not be the order Ray saw)."""
    reached = history[history[TIME_ATTR] >= milestone].sort_values(TIME_ATTR)
    first = reached.groupby("trial_id", sort=False).head(1)
    return first.sort_values(["timestamp", "trial_id"])[["trial_id", "timestamp", TIME_ATTR, *metrics]] \
        .reset_index(drop=True)


def first_rung_replay(experiment: str | Path) -> dict[str, Any]:
    """The first rung of `experiment` under both rules: per trial whether each keeps it, whether
    the search stopped it there, and whether it is on the search's validation front."""
    experiment = Path(experiment)
    tune, metrics = _tune(experiment), experiment_objectives(experiment)
    prune = tune.get("prune_metric") or metrics[0]
    trials = load_experiment(experiment).set_index("trial_id")
    milestones = asha_milestones(int(tune["grace_period"]), int(trials["budget"].max()), float(tune["reduction_factor"]))
    rung, following = milestones[-1], (milestones[-2] if len(milestones) > 1 else None)
    arrivals = rung_arrivals(load_history(experiment), rung, metrics)
    rf = float(tune["reduction_factor"])
    arrivals["asha"] = asha_keeps(arrivals[prune].tolist(), rf)
    arrivals["pareto"] = pareto_keeps(arrivals[metrics].to_numpy().tolist(), rf)
    arrivals["count_one"] = pareto_keeps([(v,) for v in arrivals[prune]], rf)   # its rule on one metric
    state, epochs = trials.loc[arrivals["trial_id"], "state"], trials.loc[arrivals["trial_id"], "epochs"]
    arrivals["stopped_there"] = ((state == STOPPED_EARLY) & (epochs.to_numpy() <= rung)).to_numpy()
    front = set(pareto_front(zip(trials.index, trials["state"], trials[metrics].to_numpy().tolist())))
    arrivals["on_front"] = arrivals["trial_id"].isin(front)
    return {"experiment": experiment.name, "metrics": metrics, "prune_metric": prune, "rung": rung,
            "next_rung": following, "reduction_factor": rf, "arrivals": arrivals}


def replay_row(replay: dict[str, Any]) -> dict[str, Any]:
    """One search's first rung in numbers (the bench table's row)."""
    a, tail = replay["arrivals"], replay["metrics"][1]
    only_pareto = a[a["pareto"] & ~a["asha"]]
    only_asha = a[a["asha"] & ~a["pareto"]]
    step = (replay["next_rung"] - replay["rung"]) if replay["next_rung"] else 0
    return {
        "search": replay["experiment"], "rung": int(replay["rung"]), "trials": len(a),
        "replay_matches": int((a["asha"] == ~a["stopped_there"]).sum()),
        "asha_keeps": int(a["asha"].sum()), "pareto_keeps": int(a["pareto"].sum()),
        "pareto_rule_on_prune_metric_keeps": int(a["count_one"].sum()),
        "kept_by_pareto_only": len(only_pareto), "kept_by_asha_only": len(only_asha),
        "tail_of_pareto_only": float(only_pareto[tail].median()) if len(only_pareto) else None,
        "tail_of_asha_kept": float(a.loc[a["asha"], tail].median()) if a["asha"].any() else None,
        "front_trials_stopped_there": int((a["on_front"] & a["stopped_there"]).sum()),
        "of_those_pareto_keeps": int((a["on_front"] & a["stopped_there"] & a["pareto"]).sum()),
        "extra_trial_epochs_to_next_rung": (int(a["pareto"].sum()) - int(a["asha"].sum())) * step,
    }
