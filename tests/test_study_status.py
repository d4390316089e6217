"""`launch.py study --status`: what a study has done and has left, per stage, read from its
folder without running anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import launch
from test_study import demo_config


def status_json(capsys, tmp: Path, name: str, *extra: str) -> dict:
    sets = [f"tune.storage_path={tmp}", *extra]
    assert launch.main(["study", "--name", name, "--status", "--json", *[a for v in sets for a in ("--set", v)]]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_status_of_a_study_not_yet_run_lists_every_stage_as_planned(tmp_path, capsys):
    from results.orchestration.layout import claim

    assert launch.main(["study", "--name", "none", "--status", "--set", f"tune.storage_path={tmp_path}"]) == 2
    assert "--status: no study 'none'" in capsys.readouterr().err
    config = demo_config(tmp_path, "study.dose_backbones=[sasrec]", "study.search_seeds=[0,1]")
    folder, _ = claim(config, "fresh", resume=False)
    before = sorted(p.name for p in folder.rglob("*"))
    stages = status_json(capsys, tmp_path, "fresh")["stages"]
    assert [(s["stage"], s["part"]) for s in stages] == [
        ("search", f"{v}-sasrec{suffix}") for v in ("plain", "llmesr", "icc") for suffix in ("", "-search1")] + [
        ("confirmation", f"{v}-sasrec{suffix}") if (v, suffix) != ("icc", "") else ("confirmation", "icc-sasrec + control-sasrec")
        for v in ("plain", "llmesr", "icc") for suffix in ("", "-search1")] + [("dose", "dose-sasrec"), ("total", "")]
    searches = [s for s in stages if s["stage"] == "search"]
    assert all((s["done"], s["planned"], s["state"]) == (0, 2, "not started") for s in searches)
    icc = next(s for s in stages if s["part"] == "icc-sasrec + control-sasrec")
    assert (icc["done"], icc["planned"], icc["state"]) == (0, 4, "waits for search icc-sasrec")
    dose = next(s for s in stages if s["stage"] == "dose")
    d = config.dose
    assert dose["planned"] == (1 + len(d.shares) * len(d.clusterings)) * len(d.seeds) + (1 + len(d.clusterings)) * len(d.confirm_seeds)
    assert stages[-1]["planned"] == sum(s["planned"] for s in stages[:-1]) and stages[-1]["state"] == "to run"
    assert all(s["hours_left"] is None for s in stages[:-1])                     # nothing has run to go by
    assert (stages[-1]["hours_left"], stages[-1]["parts_not_estimated"]) == (0.0, len(stages) - 1)
    assert stages[-1]["wall_hours_left"] == 0.0
    assert sorted(p.name for p in folder.rglob("*")) == before                     # nothing written, nothing run


def test_the_total_adds_seconds_not_rounded_hours(tmp_path, capsys):
    """Twelve 10-second runs are 0.033 h: rounding each row before adding gave a total of 0."""
    from results.orchestration.confirm import confirmation_path
    from results.orchestration.layout import claim

    config = demo_config(tmp_path)
    folder, _ = claim(config, "short", resume=False)
    for arm in ("plain-sasrec", "llmesr-sasrec", "control-sasrec"):
        for seed in config.study.seeds:
            path = confirmation_path(folder, arm, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"arm": arm, "seed": seed, "config": {}, "valid": {}, "test": {},
                                        "seconds": 10.0}))
    stages = status_json(capsys, tmp_path, "short")["stages"]
    expected = 3 * len(config.study.seeds) * 10.0 / 3600
    assert abs(stages[-1]["hours"] - expected) < 1e-9
    assert abs(sum(s["hours"] for s in stages[:-1]) - expected) < 1e-9


def row(stage: str, part: str, done: int, planned: int, hours: float, state: str = "to run") -> dict:
    return {"stage": stage, "part": part, "done": done, "planned": planned, "hours": hours, "state": state}


def test_hours_left_go_by_the_part_that_trains_alike_with_most_runs_done():
    """A whole search guides its sibling searcher seed better than the sibling's own first trials
    (ASHA lets early trials run longest; running trials' hours count, their ends not yet)."""
    from results.orchestration.progress import with_hours_left

    rows = with_hours_left([
        row("search", "plain-sasrec", 60, 60, 0.9, "done"),
        row("search", "plain-sasrec-search1", 9, 60, 0.36, "stopped part way (--resume continues it)"),
        row("search", "llmesr-sasrec", 0, 60, 0.0, "not started"),
        row("confirmation", "icc-sasrec + control-sasrec", 4, 10, 2.0),
        row("front", "icc-sasrec", 0, 6, 0.0),
        row("front", "llmesr-sasrec", 0, 0, 0.0, "waits for search llmesr-sasrec (its front sets the count)"),
        row("dose", "dose-sasrec", 10, 75, 5.0),
    ])
    left = {(r["stage"], r["part"]): r["hours_left"] for r in rows}
    assert left[("search", "plain-sasrec")] == 0.0
    assert left[("search", "plain-sasrec-search1")] == pytest.approx(51 * 0.9 / 60)    # the whole arm's pace
    assert left[("search", "llmesr-sasrec")] is None                                   # no LLM-ESR trial yet
    assert left[("confirmation", "icc-sasrec + control-sasrec")] == pytest.approx(6 * 0.5)
    assert left[("front", "icc-sasrec")] == pytest.approx(6 * 0.5)                    # the arm's confirmation pace
    assert left[("front", "llmesr-sasrec")] is None                                    # its count is not known
    assert left[("dose", "dose-sasrec")] == pytest.approx(65 * 0.5)


def test_runs_not_yet_started_go_by_the_search_trials_that_trained_to_their_end():
    """A confirmation, front or dose run trains a setting to patience or the cap, as a search
    trial that ASHA did not stop: before any has run, those trials (both searcher seeds pooled)
    are the pace; trials ASHA cut at epoch 3 would understate it."""
    from results.orchestration.progress import WHOLE_TRIAL_KEYS, with_hours_left

    def search(part: str, trials: int, hours: float) -> dict:
        return {**row("search", part, 60, 60, 9.9, "done"), "whole_trials": trials, "whole_trial_hours": hours}

    rows = with_hours_left([
        search("llmesr-sasrec", 10, 1.0), search("llmesr-sasrec-search1", 30, 1.0),
        search("icc-sasrec", 20, 2.0), {**search("icc-sasrec-search1", 0, 0.0), "state": "running"},
        row("confirmation", "llmesr-sasrec", 0, 5, 0.0),
        row("confirmation", "llmesr-sasrec-search1", 0, 5, 0.0),
        row("front", "llmesr-sasrec", 0, 6, 0.0),
        row("confirmation", "icc-sasrec + control-sasrec", 0, 10, 0.0),
        row("confirmation", "icc-sasrec-search1", 0, 5, 0.0, "waits for search icc-sasrec-search1"),
        row("dose", "dose-sasrec", 0, 27, 0.0, "waits for confirmation of llmesr-sasrec"),
        row("confirmation", "plain-sasrec", 0, 5, 0.0),
    ])
    left = {(r["stage"], r["part"]): r["hours_left"] for r in rows}
    assert left[("confirmation", "llmesr-sasrec")] == pytest.approx(5 * 2.0 / 40)        # 40 whole trials, 2 h
    assert left[("confirmation", "llmesr-sasrec-search1")] == pytest.approx(5 * 2.0 / 40)
    assert left[("front", "llmesr-sasrec")] == pytest.approx(6 * 2.0 / 40)
    assert left[("confirmation", "icc-sasrec + control-sasrec")] == pytest.approx(10 * 0.1)
    assert left[("confirmation", "icc-sasrec-search1")] == pytest.approx(5 * 0.1)
    assert left[("dose", "dose-sasrec")] == pytest.approx(27 * 0.1)                     # ICC runs at LLM-ESR's settings
    assert left[("confirmation", "plain-sasrec")] is None                               # no plain search yet
    assert not any(key in r for r in rows for key in WHOLE_TRIAL_KEYS)                 # one set of columns


def test_an_icc_part_with_no_run_yet_goes_by_its_backbones_llmesr_part():
    """The Beauty study grew arm by arm: its LLM-ESR arm and dose stage first, the ICC arms later.
    Before any ICC run, an ICC search, its confirmation (control included) and the dose stage go
    by the LLM-ESR part of the backbone (the same model plus one loss term), not '?'."""
    from results.orchestration.progress import with_hours_left

    rows = with_hours_left([
        {**row("search", "llmesr-sasrec", 20, 20, 2.8, "done"), "whole_trials": 5, "whole_trial_hours": 1.0},
        row("search", "icc-sasrec", 0, 20, 0.0, "not started"),
        row("search", "icc-sasrec-search1", 0, 20, 0.0, "not started"),
        row("confirmation", "llmesr-sasrec", 3, 3, 0.9, "done"),
        row("confirmation", "icc-sasrec + control-sasrec", 0, 6, 0.0, "waits for search icc-sasrec"),
        row("dose", "dose-sasrec", 0, 27, 0.0),
        row("search", "plain-sasrec", 0, 20, 0.0, "not started"),
        row("search", "icc-gru4rec", 0, 20, 0.0, "not started"),
    ])
    left = {(r["stage"], r["part"]): r["hours_left"] for r in rows}
    assert left[("search", "icc-sasrec")] == pytest.approx(20 * 2.8 / 20)
    assert left[("search", "icc-sasrec-search1")] == pytest.approx(20 * 2.8 / 20)
    assert left[("confirmation", "icc-sasrec + control-sasrec")] == pytest.approx(6 * 0.3)
    assert left[("dose", "dose-sasrec")] == pytest.approx(27 * 0.2)                  # LLM-ESR's whole trials
    assert left[("search", "plain-sasrec")] is None                                    # no stand-in for plain
    assert left[("search", "icc-gru4rec")] is None                                     # nor across backbones


def test_runs_that_will_be_copied_cost_no_hours_left():
    """A part's runs that an earlier run file holds (`to_copy`) are copied, not trained: they
    count in what is planned, not in the hours still to train."""
    from results.orchestration.progress import _total, with_hours_left

    rows = with_hours_left([
        row("confirmation", "llmesr-sasrec", 3, 3, 0.9, "done"),
        {**row("confirmation", "icc-sasrec + control-sasrec", 0, 6, 0.0), "to_copy": 3},
        {**row("dose", "dose-sasrec", 0, 27, 0.0), "to_copy": 27},
    ])
    left = {(r["stage"], r["part"]): r["hours_left"] for r in rows}
    assert left[("confirmation", "icc-sasrec + control-sasrec")] == pytest.approx(3 * 0.3)
    assert left[("dose", "dose-sasrec")] == 0.0
    assert _total(rows)["to_copy"] == 30


def test_wall_time_left_divides_each_parts_hours_by_the_runs_it_trains_at_once(tmp_path):
    """Training hours say what a study costs; a user waiting on it wants wall time. On the
    Beauty study (2 CPUs, one CPU a trial, 2 confirmation workers) 7.1 training hours were 3.6."""
    from results.orchestration.progress import runs_at_once, wall_hours_left, with_hours_left

    config = demo_config(tmp_path, "tune.cpus_per_trial=1", "study.confirm_workers=3", "dose.workers=4")
    assert runs_at_once(config, "search", cpus=8) == 8 and runs_at_once(config, "search", cpus=1) == 1
    assert runs_at_once(demo_config(tmp_path, "tune.max_concurrent_trials=2"), "search", cpus=8) == 2
    assert runs_at_once(demo_config(tmp_path, "tune.cpus_per_trial=3"), "search", cpus=8) == 2
    assert (runs_at_once(config, "confirmation", 8), runs_at_once(config, "front", 8), runs_at_once(config, "dose", 8)) == (3, 3, 4)
    rows = with_hours_left([
        row("search", "llmesr-sasrec", 20, 20, 4.0, "done"), row("search", "llmesr-sasrec-search1", 0, 20, 0.0),
        row("confirmation", "llmesr-sasrec", 3, 3, 0.9, "done"), row("confirmation", "llmesr-sasrec-search1", 0, 3, 0.0),
        row("dose", "dose-sasrec", 0, 27, 0.0)])                               # no dose run yet: no estimate
    assert wall_hours_left(config, rows, cpus=2) == pytest.approx(4.0 / 2 + 0.9 / 3)


def test_report_only_refuses_what_it_cannot_read_and_runs_nothing(tmp_path, capsys):
    """`--report-only` reads a study, never starts one: a missing study, one whose searches have
    not finished, and --status beside it are each one line."""
    from results.orchestration.layout import claim

    sets = ["--set", f"tune.storage_path={tmp_path}"]
    assert launch.main(["study", "--name", "none", "--report-only", *sets]) == 2
    assert "--report-only: no study 'none'" in capsys.readouterr().err
    folder, _ = claim(demo_config(tmp_path), "fresh", resume=False)
    before = sorted(p.name for p in folder.rglob("*"))
    assert launch.main(["study", "--name", "fresh", "--report-only", *sets]) == 2
    assert "no search arm of study 'fresh' has finished yet" in capsys.readouterr().err
    assert launch.main(["study", "--name", "fresh", "--report-only", "--status", *sets]) == 2
    assert "--status and --report-only: give one" in capsys.readouterr().err
    assert sorted(p.name for p in folder.rglob("*")) == before
