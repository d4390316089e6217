"""Trial states read from synthetic trial folders written the way Ray writes them: error.txt
with its "Failure # n (occurred at ...)" headers, result.json with Ray's `date` on every report.

The case that matters: a trial that failed, was retried from its checkpoint, reported more epochs
and was then stopped by ASHA keeps its error.txt; it is stopped_early, not errored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from results.load import load_experiment, read_trial

BUDGET = 4


def write_trial(folder: Path, reports: list[tuple[int, str]], failures: list[str] = (),
                finished: bool = False, error_text: str | None = None, done: bool | None = None) -> Path:
    """A trial folder: params.json (budget BUDGET epochs), one result line per (epoch, date),
    error.txt with one Ray failure header per date in `failures` (or `error_text` as is). Ray
    logs `done` on every result, True on the last one of a trial it stopped (ASHA or its end);
    `done` None: True exactly when the trial finished."""
    folder.mkdir(parents=True)
    config = {"model": {"backbone": "sasrec", "gamma": 0.1}, "train": {"epochs": BUDGET, "seed": 42}}
    (folder / "params.json").write_text(json.dumps({"params": {"lr": 0.001}, "config": config}))
    lines = []
    for number, (epoch, date) in enumerate(reports):
        last = number == len(reports) - 1
        row = {"epoch": epoch, "valid_ndcg_10": 0.01 * epoch, "date": date, "trial_id": folder.name[-8:],
               "done": last and (finished if done is None else done)}
        if finished and last:
            row.update(test_ndcg_10=0.05, finished=True)
        lines.append(json.dumps(row))
    (folder / "result.json").write_text("".join(line + "\n" for line in lines))
    if failures:
        error_text = "".join(f"Failure # {n} (occurred at {date})\nRuntimeError: boom {n}\n"
                             for n, date in enumerate(failures, start=1))
    if error_text is not None:
        (folder / "error.txt").write_text(error_text)
    return folder


def stamp(second: int) -> str:
    return f"2026-11-29_10-00-{second:02d}"


CASES = {
    # name: (reports as (epoch, second), failure seconds, finished, Ray's done on the last report,
    #        expected state)
    "retried_then_stopped_by_asha": ([(1, 1), (2, 2), (3, 9)], [5], False, True, "stopped_early"),
    "failed_before_any_report_retried_then_stopped": ([(1, 9), (2, 12)], [3], False, True, "stopped_early"),
    "retried_then_finished": ([(1, 1), (2, 2), (3, 9), (4, 10)], [5], True, True, "terminated"),
    "retry_failed_again_without_reporting": ([(1, 1), (2, 2)], [5, 8], False, False, "errored"),
    "recovered_once_then_failed_for_good": ([(1, 1), (2, 2), (3, 9)], [5, 12], False, False, "errored"),
    "failed_in_the_second_of_its_last_report": ([(1, 1), (2, 5)], [5], False, False, "errored"),
    "failed_before_any_report": ([], [5], False, False, "errored"),
    "never_failed_stopped_by_asha": ([(1, 1), (2, 2)], [], False, True, "stopped_early"),
    "never_reported": ([], [], False, False, "unfinished"),
    # issue 24: still running (a report taken during the run) or cut by Ctrl-C: no `done`
    "running_or_interrupted": ([(1, 1), (2, 2)], [], False, False, "unfinished"),
    "retried_then_running_or_interrupted": ([(1, 1), (2, 2), (3, 9)], [5], False, False, "unfinished"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_follows_the_last_event(tmp_path, name):
    reports, failures, finished, done, expected = CASES[name]
    folder = write_trial(tmp_path / "exp" / "trial_0000abcd", [(e, stamp(s)) for e, s in reports],
                         [stamp(s) for s in failures], finished, done=done)
    assert read_trial(folder)["state"] == expected


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_and_tune_classify_alike(tmp_path, name):
    """The same trial through `tune`'s summary (Ray's status and last result) and `report` (its
    folder): one rule, model.contract.trial_outcome, so one state (issue 24)."""
    from tuning.summary import trial_state

    reports, failures, finished, done, expected = CASES[name]
    folder = write_trial(tmp_path / "trial_0000abcd", [(e, stamp(s)) for e, s in reports],
                         [stamp(s) for s in failures], finished, done=done)
    last = json.loads((folder / "result.json").read_text().splitlines()[-1]) if reports else None
    status = {"errored": "ERROR", "unfinished": "TERMINATED" if reports else "PENDING"}.get(expected, "TERMINATED")
    assert trial_state(status, last) == read_trial(folder)["state"] == expected


def test_error_file_without_a_failure_header_reads_as_errored(tmp_path):
    """No stamp to compare with: an error.txt is then taken at its word."""
    folder = write_trial(tmp_path / "trial_0000abcd", [(1, stamp(1))], error_text="FloatingPointError: nan\n")
    assert read_trial(folder)["state"] == "errored"


def test_table_counts_a_recovered_trial_once_as_stopped(tmp_path):
    root = tmp_path / "exp"
    write_trial(root / "trial_0000aaaa", [(1, stamp(1)), (2, stamp(2)), (3, stamp(9))], [stamp(5)], done=True)
    write_trial(root / "trial_0000bbbb", [(1, stamp(1))], [stamp(4), stamp(8)])
    table = load_experiment(root).set_index("trial_id")
    assert table.loc["0000aaaa", "state"] == "stopped_early" and table.loc["0000aaaa", "epochs"] == 3
    assert table.loc["0000bbbb", "state"] == "errored" and table.loc["0000bbbb", "epochs"] == 1
