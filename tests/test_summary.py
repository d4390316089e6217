"""`launch.py tune`'s summary: trial states from Ray's records and the one definition of "best"
(shared with `launch.py report`). A real interrupted run is in test_experiments.py."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from results.tables import ranked
from tuning.summary import _best, trial_state


def _row(trial_id: str, state: str, score: float | None) -> dict:
    return {"trial_id": trial_id, "state": state, "best_valid_ndcg_10": score, "params": {"lr": 0.001}}


ROWS = [
    _row("a0000001", "errored", 0.90),          # reported well, then raised: never "best"
    _row("a0000002", "terminated", 0.50),
    _row("a0000003", "stopped_early", 0.70),
    _row("a0000004", "terminated", math.nan),
    _row("a0000005", "unfinished", None),
    _row("a0000000", "stopped_early", 0.70),    # a tie: the smaller trial id first
]


def test_tune_and_report_name_the_same_best_and_never_an_errored_trial():
    best = _best(ROWS)
    frame = pd.DataFrame([{"trial_id": r["trial_id"], "state": r["state"], "valid_ndcg_10": r["best_valid_ndcg_10"]}
                          for r in ROWS])
    order = list(ranked(frame)["trial_id"])
    assert best["trial_id"] == order[0] == "a0000000"
    assert order == ["a0000000", "a0000003", "a0000002"]               # no errored, nan or missing score
    assert _best([_row("a0000001", "errored", 0.9)]) is None
    assert ranked(frame[frame["state"] == "errored"]).empty


@pytest.mark.parametrize("status, last, state", [
    ("TERMINATED", {"epoch": 4, "finished": True, "done": True}, "terminated"),
    ("TERMINATED", {"epoch": 2, "done": True}, "stopped_early"),          # ASHA: Ray sets done
    ("TERMINATED", {"epoch": 2, "done": False}, "unfinished"),            # stopped by Ctrl-C
    ("TERMINATED", {}, "unfinished"),                                     # Ctrl-C before any report
    ("PENDING", None, "unfinished"),
    ("RUNNING", {"epoch": 1, "done": False}, "unfinished"),
    ("ERROR", {"epoch": 3, "done": False}, "errored"),
])
def test_trial_states_tell_an_interrupt_from_asha_and_from_finishing(status, last, state):
    assert trial_state(status, last) == state
