"""The run contract: what a training run reports each epoch, how a trial ends and which is best.

Defined once here and imported by the trainer, the Ray trainable, the search, the experiment
summary, the Optuna study and every results table. It lives in model/ (the lowest layer that
produces runs) so that all of them may import it; it imports nothing heavy.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

#: the validation metric (the evaluator's key) that selects a run's best epoch by default
#: (train.select_metric may name another) and whose value there is a trial's score
SELECT_KEY = "ndcg_10"
#: that metric as reported each epoch; its maximum over epochs is a trial's best epoch
METRIC = f"valid_{SELECT_KEY}"
MODE = "max"
#: the best METRIC so far, reported every epoch: a trial's score (what the search is told)
BEST_SO_FAR = f"best_{METRIC}"
#: what the evaluator reports per split (model.evaluate): [sampled_][GROUP_]{hit,ndcg}_{k}
EVAL_KS = (5, 10, 20)
EVAL_GROUPS = ("tail_item", "head_item", "tail_user", "head_user", "repeat_target", "new_target")
EVAL_PROTOCOLS = ("", "sampled_")
#: the time attribute of the scheduler (kept across resumes)
TIME_ATTR = "epoch"
#: reported True by a trial that stopped by itself (patience or max epochs), not by ASHA
FINISHED = "finished"
#: what ICC trials report about their clustering (cluster_prep.quality), shown beside the score
CLUSTER_COLUMNS = ("cluster_largest_share", "cluster_degenerate")

#: how a trial ended: by itself, stopped by ASHA, raised, or not yet (pending or interrupted)
TERMINATED = "terminated"
STOPPED_EARLY = "stopped_early"
ERRORED = "errored"
UNFINISHED = "unfinished"
STATES = (TERMINATED, STOPPED_EARLY, ERRORED, UNFINISHED)
#: a study trial Ray never recorded (the driver died before it could)
LOST = "lost"


def epoch_metrics(report: Any) -> dict[str, Any]:
    """The flat metrics of one EpochReport, as Tune sees them."""
    metrics: dict[str, Any] = {
        "epoch": int(report.epoch),
        "train_loss": float(report.train_loss),
        BEST_SO_FAR: float(report.best_valid_ndcg_10),
        "best_epoch": int(report.best_epoch),
        "epoch_seconds": float(report.seconds),
        "icc_gamma": float(getattr(report, "icc_gamma", 0.0)),
    }
    metrics.update({f"loss_{key}": float(value) for key, value in report.loss_parts.items()})
    metrics.update({f"share_{key}": float(value) for key, value in report.loss_shares.items()})
    metrics.update({f"valid_{key}": float(value) for key, value in report.valid.items()})
    metrics.update({at_best(f"valid_{key}"): float(value)
                    for key, value in getattr(report, "best_valid", {}).items()})
    return metrics


def at_best(metric: str) -> str:
    """The reported name of `metric`'s value at the trial's best epoch so far (the epoch of the
    highest METRIC, whose weights get tested): best_valid_ndcg_10 is BEST_SO_FAR itself."""
    return f"best_{metric}"


def validation_metrics() -> tuple[str, ...]:
    """Every validation metric a trial reports each epoch: what tune.objectives may name."""
    return tuple(f"valid_{protocol}{group}{kind}_{k}" for protocol in EVAL_PROTOCOLS
                 for group in ("", *(f"{g}_" for g in EVAL_GROUPS)) for kind in ("hit", "ndcg") for k in EVAL_KS)


def selectable_metrics() -> tuple[str, ...]:
    """The evaluator keys train.select_metric may name: every full-ranking metric (overall and
    per group), which each validation reports whatever the protocol settings."""
    return tuple(name.removeprefix("valid_") for name in validation_metrics()
                 if not name.startswith("valid_sampled_"))


def validation_metrics_pattern() -> str:
    """validation_metrics() in one line, for error messages."""
    return (f"valid_[sampled_][GROUP_]{{hit,ndcg}}_{{{','.join(map(str, EVAL_KS))}}} with GROUP one of "
            f"{', '.join(EVAL_GROUPS)} (e.g. {METRIC}, valid_tail_item_ndcg_10)")


def stops_after(epoch: int, epochs_since_best: int, epochs: int, patience: int) -> bool:
    """Whether a run ends by itself after `epoch`: the epoch cap (train.epochs), or `patience`
    epochs without a better validation score (patience 0: never). The trainer stops by this rule,
    and a replay of recorded curves (tuning.replay) stops where the trainer would."""
    return epoch >= epochs or (patience > 0 and epochs_since_best >= patience)


def trial_outcome(errored: bool, finished: bool, done: bool) -> str:
    """How a trial ended, the one rule for `tune`'s summary (Ray's trial records) and `report`
    (the trial folder): errored when its last failure came after its last report; terminated when
    it stopped by itself (FINISHED reported); stopped_early when Ray stopped it (`done` on its
    last result, which Ray sets on an ASHA stop before it logs the result); else unfinished:
    pending, still running, or cut by Ctrl-C or a crash (resumable)."""
    if errored:
        return ERRORED
    if finished:
        return TERMINATED
    return STOPPED_EARLY if done else UNFINISHED


def rank_key(trial_id: Any, state: Any, score: Any) -> tuple[float, str] | None:
    """The one definition of "best", used by `launch.py tune`'s summary and by every results
    table: the highest best-epoch validation NDCG@10 first, the smaller trial id on ties. An
    errored trial, or one without a finite score, is never ranked (None), whatever it reported."""
    if state == ERRORED or isinstance(score, bool) or not isinstance(score, numbers.Real):
        return None
    if not math.isfinite(score):
        return None
    return (-float(score), str(trial_id))


def front_point(state: Any, values: Sequence[Any]) -> tuple[float, ...] | None:
    """A trial's objective values as floats, or None where it may not be on a front (errored, or
    a value missing or not finite): the rule of rank_key, for several scores."""
    if state == ERRORED or not values:
        return None
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) for v in values):
        return None
    return tuple(float(v) for v in values)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether `a` is at least as good as `b` in every objective and better in one (all maximised)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(trials: Iterable[tuple[Any, Any, Sequence[Any]]]) -> list[str]:
    """The one definition of the Pareto set of a multi-objective search, used by `launch.py tune`,
    the report and `reproduce --trial pareto`: the ids of the trials (trial_id, state, values)
    that no other trial dominates, all objectives maximised. Trials with equal values are all on
    it. An errored trial, or one without a finite value for every objective, is never on it (nor
    dominates any). Ordered by the first objective (highest first), then trial id."""
    points = {str(trial_id): point for trial_id, state, values in trials
              if (point := front_point(state, values)) is not None}
    front = [tid for tid, p in points.items() if not any(dominates(q, p) for q in points.values())]
    return sorted(front, key=lambda tid: (-points[tid][0], tid))
