"""ASHA that keeps its rung records across a resume (Ray issue 30838).

Ray saves the experiment state, the searcher and every callback's `get_state` together at each
experiment checkpoint, but not the scheduler: after `Tuner.restore` AsyncHyperBandScheduler
starts with empty rungs, so the first trials to reach a rung after a crash meet no cutoff and
run on, and early stopping is weaker than in the run that was never interrupted. `RungKeeper`
is a Tune callback holding the scheduler: its state is the scheduler's rung records, saved with
(and so consistent with) the experiment state, and put back into the restored scheduler before
Ray re-queues the trials. Tuner.restore unpickles the scheduler and the callbacks from one file
(tuner.pkl), so the keeper still holds the scheduler the restored run uses. The time attribute
is the epoch counter (`model.contract.TIME_ATTR`), so a trial resumed from its checkpoint
reaches each rung at the same epoch as before.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.tune import Callback

from tuning.adapters import asha_rungs, set_asha_rungs

logger = logging.getLogger(__name__)


class RungKeeper(Callback):
    """Saves an ASHA scheduler's rung records with the experiment, restores them on resume: Ray's
    AsyncHyperBandScheduler (through tuning.adapters) or tuning.pareto_asha.ParetoASHA (its own)."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict:
        own = getattr(self.scheduler, "rung_records", None)
        return {"rungs": own() if own else asha_rungs(self.scheduler)}

    def set_state(self, state: dict) -> None:
        rungs = state.get("rungs")
        if not rungs:
            return
        own = getattr(self.scheduler, "restore_rungs", None)
        if not (own(rungs) if own else set_asha_rungs(self.scheduler, rungs)):
            logger.warning("ASHA's saved rungs do not match its milestones; resuming with empty rungs")
