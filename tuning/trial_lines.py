"""One short line per finished trial, for a driver that runs many experiments one after another
(a study's search arms): Ray's progress table every 30 s would drown the study's own lines, and
silence through an hour-long search looks like a hang.

The callback is pickled with the experiment (tuner.pkl) and comes back on resume; `setup`, which
Ray calls at every start of a fit, restarts its clock, so the time left is this driver's pace.
The pace is counted in trial-epochs, not trials: ASHA stops most trials at its first rung, and
the trials a resume continues end minutes after it, so trials ended per minute ran fast early
(a Beauty search said 41 min left with an hour and more to go).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from ray.tune import Callback

from model.contract import BEST_SO_FAR
from tuning.eta import about_left

DONE_STATES = ("TERMINATED", "ERROR")


class TrialLines(Callback):
    """Prints '[search NAME HH:MM:SS] trial ID finished at epoch E (valid NDCG@10 V); D of N
    trials done, best so far B, about T left' on stderr whenever a trial ends or errors; B is the
    highest any trial has reported, running ones included."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.planned = 0
        self.started = time.monotonic()
        self.epochs_here = 0

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        self.planned = int(total_num_samples or num_samples or 0)
        self.started = time.monotonic()
        self.epochs_here = 0

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.epochs_here += 1                       # every report is one trained epoch

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(trials, trial, "finished")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(trials, trial, "errored")

    def _say(self, trials: list, trial: Any, verb: str) -> None:
        done = 1 + sum(other is not trial and str(other.status) in DONE_STATES for other in trials)
        left = epochs_left(trials, trial, self.planned)
        print(f"[search {self.name} {time.strftime('%H:%M:%S')}] {trial_line(trial, verb)}; "
              f"{done_line(done, self.planned, best_so_far(trials))}"
              f"{time_left(time.monotonic() - self.started, getattr(self, 'epochs_here', 0), left)}",
              file=sys.stderr, flush=True)


def trial_line(trial: Any, verb: str) -> str:
    """'trial ID finished at epoch E (valid NDCG@10 V)', from the trial's last report."""
    result = trial.last_result or {}
    epoch, score = result.get("epoch"), result.get(BEST_SO_FAR)
    where = f" at epoch {epoch}" if epoch is not None else ""
    scored = f" (valid NDCG@10 {score:.4f})" if isinstance(score, (int, float)) else ""
    return f"trial {trial.trial_id} {verb}{where}{scored}"


def best_so_far(trials: list) -> float | None:
    """The highest best-epoch validation NDCG@10 any trial has reported, None before any."""
    scores = [(t.last_result or {}).get(BEST_SO_FAR) for t in trials]
    scores = [s for s in scores if isinstance(s, (int, float))]
    return max(scores) if scores else None


def done_line(done: int, planned: int, best: float | None) -> str:
    counted = f"{done} of {planned} trials done" if planned > 0 else f"{done} trials done"
    return counted + (f", best so far {best:.4f}" if best is not None else "")


def epochs_left(trials: list, ending: Any, planned: int) -> float:
    """The trial-epochs the search has still to train, `ending` counted as ended: each trial not
    yet started (of `planned`) the mean epochs of the ended trials, each running one what it
    lacks of that mean, and at least the epoch it is training (a trial already past the mean is
    not done: it said nothing left while one ran on). Early on the mean is of trials ASHA stopped
    at its first rung, so this still runs low until some trials have gone further."""
    ended = [_epochs(t) for t in trials if t is ending or str(t.status) in DONE_STATES]
    if not ended:
        return 0.0
    mean = statistics.fmean(ended)
    open_trials = [_epochs(t) for t in trials if t is not ending and str(t.status) not in DONE_STATES]
    not_created = max(0, planned - len(ended) - len(open_trials))
    return not_created * mean + sum(max(1.0, mean - epochs) for epochs in open_trials)


def _epochs(trial: Any) -> int:
    epoch = (trial.last_result or {}).get("epoch")
    return int(epoch) if isinstance(epoch, (int, float)) else 0


def time_left(elapsed_s: float, epochs_here: int, epochs_to_go: float) -> str:
    """', about T left' at this driver's pace (trial-epochs reported per second since it
    started); nothing once none remain or before this driver has seen an epoch."""
    if epochs_to_go <= 0 or epochs_here <= 0:
        return ""
    return ", " + about_left(elapsed_s / epochs_here * epochs_to_go)
