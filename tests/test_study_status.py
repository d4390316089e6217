"""`launch.py study --status`: what a study has done and has left, per stage, read from its
folder without running anything."""

from __future__ import annotations

import json
from pathlib import Path

import launch
from test_study import demo_config


def status_json(capsys, tmp: Path, name: str, *extra: str) -> dict:
    sets = [f"tune.storage_path={tmp}", *extra]
    assert launch.main(["study", "--name", name, "--status", "--json", *[a for v in sets for a in ("--set", v)]]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_status_of_a_study_not_yet_run_lists_every_stage_as_planned(tmp_path, capsys):
    from results.orchestration.study import claim

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
    assert sorted(p.name for p in folder.rglob("*")) == before                     # nothing written, nothing run


def test_the_total_adds_seconds_not_rounded_hours(tmp_path, capsys):
    """Twelve 10-second runs are 0.033 h: rounding each row before adding gave a total of 0."""
    from results.orchestration.confirm import confirmation_path
    from results.orchestration.study import claim

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
