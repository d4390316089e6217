"""The study's line per finished trial (tuning.trial_lines): counts, best score and time left."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st

from model.contract import BEST_SO_FAR
from tuning.trial_lines import TrialLines, best_so_far, done_line, epochs_left, time_left, trial_line


def trial(trial_id: str, status: str, **result) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status=status, last_result=result)


def test_a_finished_trial_line_counts_every_ended_trial_and_the_best(capsys):
    lines = TrialLines("plain-sasrec")
    lines.setup(num_samples=5, total_num_samples=5)
    trials = [trial("a", "TERMINATED", epoch=3, **{BEST_SO_FAR: 0.05}),
              trial("b", "ERROR"),
              trial("c", "RUNNING", epoch=9, **{BEST_SO_FAR: 0.0712}),   # ending now: counted once
              trial("d", "PENDING")]
    for _ in range(12):
        lines.on_trial_result(iteration=1, trials=trials, trial=trials[2], result={})
    lines.on_trial_complete(iteration=1, trials=trials, trial=trials[2])
    said = capsys.readouterr().err
    assert said.startswith("[search plain-sasrec ")
    assert "trial c finished at epoch 9 (valid NDCG@10 0.0712); 3 of 5 trials done, best so far 0.0712, about" in said
    trials[2].status = "TERMINATED"
    lines.on_trial_error(iteration=2, trials=trials, trial=trials[3])
    assert "trial d errored; 4 of 5 trials done, best so far 0.0712, about" in capsys.readouterr().err


def test_the_clock_restarts_with_each_driver():
    """Ray restores the pickled callback on resume; setup (each fit's start) resets its pace."""
    lines = TrialLines("x")
    lines.epochs_here, lines.started = 7, 0.0
    lines.setup(num_samples=60, total_num_samples=60)
    assert lines.epochs_here == 0 and lines.planned == 60 and lines.started > 0


def test_a_callback_pickled_by_older_code_still_says_its_line(capsys):
    """A study resumed on newer code unpickles the callback its first driver saved, without
    epochs_here; setup gives it one, and a line before any epoch has no time left, not an error."""
    lines = TrialLines("x")
    del lines.epochs_here
    lines.on_trial_complete(iteration=1, trials=[trial("a", "RUNNING", epoch=3)], trial=trial("a", "RUNNING", epoch=3))
    assert "1 trials done" in capsys.readouterr().err
    lines.setup(num_samples=4)
    assert lines.epochs_here == 0


def test_the_epochs_left_are_the_ended_trials_mean_for_every_trial_still_to_train():
    """Ended trials trained 3 and 9 epochs (mean 6): a running trial at epoch 2 lacks 4, a pending
    one and the 6 trials not created yet 6 each; the ending trial counts as ended."""
    ending = trial("e", "RUNNING", epoch=9)
    trials = [trial("a", "TERMINATED", epoch=3), ending, trial("c", "RUNNING", epoch=2), trial("d", "PENDING")]
    assert epochs_left(trials, ending, planned=10) == pytest.approx(4 + 6 + 6 * 6)
    assert epochs_left([trial("d", "PENDING")], None, planned=10) == 0.0      # nothing ended yet: unknown
    assert epochs_left(trials, ending, planned=2) == pytest.approx(4 + 6)      # more trials than planned
    past = [trial("a", "TERMINATED", epoch=1), trial("b", "RUNNING", epoch=2)]   # running past the mean of 1
    assert epochs_left(past, past[0], planned=2) == 1.0                       # still one epoch to go, not 0


def test_no_score_and_no_plan_still_make_a_line():
    assert trial_line(trial("e", "ERROR"), "errored") == "trial e errored"
    assert best_so_far([trial("e", "ERROR"), trial("f", "PENDING")]) is None
    assert done_line(2, 0, None) == "2 trials done"


@pytest.mark.parametrize("elapsed, ended, remaining, said", [
    (600, 10, 30, ", about 30 min left"), (600, 1, 10, ", about 1.7 h left"), (1, 5, 3, ", about 1 min left"),
    (600, 10, 0, ""), (600, 0, 10, "")])
def test_time_left_is_this_drivers_pace(elapsed, ended, remaining, said):
    """(seconds since the driver started, trial-epochs it saw, trial-epochs to go)."""
    assert time_left(elapsed, ended, remaining) == said


@given(st.floats(0, 1e6), st.integers(0, 1000), st.floats(-5, 1e5))
def test_time_left_never_fails(elapsed, ended, remaining):
    text = time_left(elapsed, ended, remaining)
    assert text == "" or (text.startswith(", about ") and text.endswith(" left"))
