"""What users hand a dose-response: its settings (`--set dose.*`, refused in one line naming the
setting) and its files on disk (run files and the saved plan that do not read: named, never a bare
traceback). The plan, the runs and the report are in tests/test_dose.py."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from conftest import REPO
from settings import ConfigError
from test_dose import SMALL_PLAN, _whole_screen
from tuning.config import load_config


@pytest.mark.parametrize("override, key", [
    ("dose.clusterings=[dbscan-3]", "dose.clusterings"), ("dose.clusterings=[kmeans-x]", "dose.clusterings"),
    ("dose.shares=[0.0]", "dose.shares"), ("dose.shares=[1.5]", "dose.shares"), ("dose.seeds=[42]", "dose.seeds"),
])
def test_bad_dose_settings_fail_in_one_line(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, [override])

def test_confirmation_seeds_must_be_new_seeds():
    with pytest.raises(ConfigError, match=r"dose.confirm_seeds: got \[43, 44\]"):
        load_config("configs/dose-scientific.yaml", ["dose.confirm_seeds=[43,44]"])

@hyp_settings(max_examples=150, deadline=None)
@given(st.text(alphabet="kmeanshdbsc-0123456789x ", max_size=14))
def test_any_clustering_name_parses_or_fails_naming_the_setting(spec):
    """A user's `dose.clusterings` entry is either a clustering (its method and size set) or one
    ConfigError naming the setting and the bad value, never another exception."""
    from tuning.config import clustering_changes

    try:
        changes = clustering_changes(spec)
    except ConfigError as error:
        assert str(error).startswith("dose.clusterings: got ") and repr(spec) in str(error)
        return
    method, size = spec.split("-")
    assert changes["clusters.method"] == method and int(size) >= 2
    assert changes[f"clusters.{'n_clusters' if method == 'kmeans' else 'min_cluster_size'}"] == int(size)


@hyp_settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 60), max_size=4), st.lists(st.integers(0, 60), min_size=2, max_size=4))
def test_confirmation_seeds_are_accepted_exactly_when_new_and_distinct(confirm, seeds):
    from tuning.config import load_config as load

    sets = [f"dose.seeds=[{','.join(map(str, seeds))}]", f"dose.confirm_seeds=[{','.join(map(str, confirm))}]"]
    good_screen = len(set(seeds)) == len(seeds)
    good = good_screen and len(set(confirm)) == len(confirm) and not set(confirm) & set(seeds)
    try:
        config = load(None, sets)
    except ConfigError as error:
        assert not good and str(error).startswith("dose.seeds" if not good_screen else "dose.confirm_seeds")
        return
    assert good and config.dose.confirm_seeds == confirm

BAD_CONFIG = json.dumps({"arm": "kmeans-16-share0.2", "seed": 43, "valid": {"ndcg_10": 0.1},
                         "test": {"ndcg_10": 0.08, "tail_item_ndcg_10": 0.03}, "config": {"model": {"dropout": 7}}})


@pytest.mark.parametrize("broken", ['{"arm": "control", "seed": 4', "[]", '{"arm": "control"}', "", BAD_CONFIG])
def test_a_run_file_that_does_not_read_is_a_run_not_done(tmp_path, caplog, broken):
    """A cut or hand-broken seed-S.json: reports leave it out naming it, a resume trains it again
    (before: every report, --summary and resume stopped at a JSON error naming no file)."""
    from results.orchestration.dose import load_runs, pending_jobs, run_path

    config = load_config("configs/dose-scientific.yaml", SMALL_PLAN)
    _whole_screen(tmp_path, config)
    bad = run_path(tmp_path, "kmeans-16-share0.2", 43)
    bad.write_text(broken)
    with caplog.at_level("WARNING"):
        runs = load_runs(tmp_path)
        pending = [(arm, seed) for arm, seed, _, _ in pending_jobs(config, tmp_path)]
    if broken != BAD_CONFIG:                  # a record whose config no longer loads still reads as a record
        assert len(runs) == 9 and ("kmeans-16-share0.2", 43) not in {(r["arm"], r["seed"]) for r in runs}
    assert f"run file {bad}" in caplog.text and "counted as not done" in caplog.text
    assert pending == [("kmeans-16-share0.2", 43)]


def test_the_summary_and_report_name_a_cut_run_file_and_go_on(tmp_path, caplog):
    """Through launch.py, on a copy of the committed Beauty dose-response with one file cut."""
    import shutil

    import launch

    shutil.copytree(REPO / "docs" / "studies" / "dose-beauty", tmp_path / "dose-beauty")
    cut = sorted((tmp_path / "dose-beauty" / "dose" / "runs").glob("*/seed-*.json"))[0]
    cut.write_text(cut.read_text()[:100])
    done = len(list((tmp_path / "dose-beauty" / "dose" / "runs").glob("*/seed-*.json"))) - 1
    with caplog.at_level("WARNING"):
        assert launch.main(["dose", "--summary", "--set", f"tune.storage_path={tmp_path}"]) == 0
        assert launch.main(["dose", "--name", "dose-beauty", "--report-only", "--set", f"tune.storage_path={tmp_path}"]) == 0
    assert f"run file {cut}" in caplog.text
    assert f"| {done} of 27 |" in (tmp_path / "icc-answers.md").read_text()
    assert f"Partial: {27 - done} of 27 planned runs" in (tmp_path / "dose-beauty" / "dose" / "dose.md").read_text()


@pytest.mark.parametrize("saved", ['{"data": {', '{"model": {"dropout": 7}}'])
def test_a_saved_plan_that_does_not_load_is_one_line_naming_it(tmp_path, capsys, saved):
    """--report-only, --resume and study --status on a folder whose study_config.json is cut or
    holds a value this code refuses (before: a bare JSON error naming no file)."""
    import shutil

    import launch

    shutil.copytree(REPO / "docs" / "studies" / "dose-beauty", tmp_path / "dose-beauty")
    plan = tmp_path / "dose-beauty" / "study_config.json"
    plan.write_text(saved)
    for args in (["dose", "--name", "dose-beauty", "--report-only"], ["dose", "--name", "dose-beauty", "--resume"],
                 ["study", "--name", "dose-beauty", "--status"]):
        assert launch.main([*args, "--set", f"tune.storage_path={tmp_path}"]) == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith("error: ") and f"the saved plan '{plan}' does not load" in line, line
