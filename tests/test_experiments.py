"""An experiment's life around its runs: one owner per name, a resume that refuses a changed
config, Ctrl-C reported truthfully, a lost Optuna study rebuilt (real Ray, Optuna, ml-100k)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from test_config_properties import one_error_line, run_launch
from test_tuning import SPACE, tiny_config
from settings import ConfigError
from tuning.runner import run_experiment


@pytest.fixture(scope="module")
def ray_session():
    import ray

    # a worker may take over a minute to start when the machine is busy (Ray's default limit: 60 s)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _system_config={"worker_register_timeout_seconds": 600})
    yield ray
    ray.shutdown()


# ---------------------------------------------------------------- one owner per name

def test_concurrent_claims_of_one_name_have_one_winner(tmp_path):
    from tuning.experiment_folder import CONFIG_FILE, claim_experiment

    config = tiny_config(tmp_path, "race", SPACE)
    barrier, outcomes = threading.Barrier(8), []

    def claim() -> None:
        barrier.wait()
        try:
            claim_experiment(config, tmp_path / "race")
            outcomes.append("won")
        except ConfigError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("won") == 1, outcomes
    assert all("already exists" in o and "--resume" in o for o in outcomes if o != "won")
    assert json.loads((tmp_path / "race" / CONFIG_FILE).read_text())["tune"]["name"] == "race"


class StopFirstRun(Exception):
    pass


def test_second_start_with_the_same_name_loses_while_the_first_prepares(ray_session, tmp_path, monkeypatch):
    """The second `tune` arrives while the first is preparing its data (after Ray started, before
    any file of Ray's exists): it must lose, before doing any work of its own."""
    import tuning.runner as runner

    config = tiny_config(tmp_path, "twice", SPACE, num_samples=1)
    second: list[str] = []
    calls: list[str] = []

    def prepare(cfg, progress):
        calls.append(cfg.tune.name)
        if len(calls) > 1:
            raise AssertionError("a second run with the same name got past the name check")
        try:
            run_experiment(config, progress=False)
        except ConfigError as error:
            second.append(str(error))
        raise StopFirstRun

    monkeypatch.setattr(runner, "_prepare_arrays", prepare)
    with pytest.raises(StopFirstRun):
        run_experiment(config, progress=False)
    assert len(second) == 1 and "tune.name: experiment 'twice' already exists" in second[0], second
    assert not (tmp_path / "twice").exists()          # the first run failed early: the name is free again


# ---------------------------------------------------------------- resume with another config

@pytest.fixture(scope="module")
def finished(ray_session, tmp_path_factory):
    """A finished one-trial, one-epoch experiment in <tmp>/runs/done."""
    runs = tmp_path_factory.mktemp("resume") / "runs"
    space = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
    config = tiny_config(runs, "done", space, extra=("train.epochs=1",), num_samples=1)
    summary = run_experiment(config, progress=False)
    assert summary["terminated"] == 1, summary
    return config, runs


def test_resume_refuses_a_changed_setting_naming_saved_and_now(finished):
    config, runs = finished
    line = one_error_line(*run_launch("tune", "--resume", "--name", "done", "--set", f"tune.storage_path={runs}",
                                      "--set", "model.gamma=0.3")[::2])
    assert "--resume: the config differs from the one experiment 'done' started with " \
           "(model.gamma: saved 0.1, now 0.3)" in line, line


def test_resume_refuses_a_changed_search_space(finished):
    from tuning.config import config_from_dict, config_to_dict

    config, runs = finished
    data = config_to_dict(config)
    data["tune"]["space"]["lr"]["high"] = 0.05
    with pytest.raises(ConfigError, match=r"\(tune.space.lr.high: saved 0.01, now 0.05\)"):
        run_experiment(config_from_dict(data), resume=True, progress=False)


def test_resume_with_only_the_name_continues_the_saved_config(finished, monkeypatch):
    from tuning.config import given_keys
    from tuning.experiment_folder import absolute_paths, resumed_config

    config, runs = finished
    elsewhere = absolute_paths(tiny_config(runs / ".." / "runs", "done", {}, extra=("model.gamma=0.5",)))
    assert resumed_config(runs / "done", "done", elsewhere, given_keys(None, [f"tune.storage_path={runs}/."])) \
        .model.gamma == 0.1                                      # only where it lies was given
    monkeypatch.chdir(runs.parent)                                # tune.storage_path "runs" (the default)
    code, out, err = run_launch("tune", "--resume", "--name", "done", "--json")
    assert code == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["trials"] == summary["finished"] == 1 and not summary["interrupted"]


# ---------------------------------------------------------------- Ctrl-C

def _interrupt_after_first_report(folder: Path, done: threading.Event, live: dict,
                                  sig: int = signal.SIGINT) -> None:
    """`sig` to this process (SIGINT: Ray Tune's handler catches it in fit(); SIGTERM reaches that
    handler through runtime.sigterm_as_ctrl_c) once a trial reported; `live` gets the states
    `report` read just before (the run still going)."""
    from results.load import load_experiment

    while not done.is_set():
        if any(p.stat().st_size for p in folder.glob("trial_*/result.json")):
            live.update(load_experiment(folder).set_index("trial_id")["state"].to_dict())
            os.kill(os.getpid(), sig)
            return
        time.sleep(0.2)


def interrupted_run(config, folder: Path, live: dict | None = None, sig: int = signal.SIGINT):
    """Run `config`, send `sig` (Ctrl-C's SIGINT) once a trial reported; return the
    ExperimentInterrupted raised."""
    from tuning.summary import ExperimentInterrupted

    done = threading.Event()
    watcher = threading.Thread(target=_interrupt_after_first_report,
                               args=(folder, done, {} if live is None else live, sig))
    watcher.start()
    try:
        with pytest.raises(ExperimentInterrupted) as stop:
            run_experiment(config, progress=False)
    finally:
        done.set()
        watcher.join()
    return stop.value


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_leaves_running_and_pending_trials_unfinished(ray_session, tmp_path, sig):
    """A scheduler's SIGTERM stops a search as Ctrl-C does (it used to end the driver at once,
    with no summary and no resume line), and the SIGTERM handler is Python's again after."""
    config = tiny_config(tmp_path, "stopped", SPACE, extra=("train.epochs=30", "train.patience=30"),
                         num_samples=4, grace_period=30)
    before = signal.getsignal(signal.SIGTERM)
    stop = interrupted_run(config, tmp_path / "stopped", sig=sig)
    assert signal.getsignal(signal.SIGTERM) is before
    summary = stop.summary
    assert summary["interrupted"] and summary["finished"] == 0, summary
    assert set(summary["trial_states"].values()) == {"unfinished"}, summary["trial_states"]
    assert summary["terminated"] == summary["stopped_early"] == summary["errored"] == 0
    assert "interrupted with 0 of 4 trials finished" in str(stop)


@pytest.mark.slow
def test_after_a_finished_search_ctrl_c_and_sigterm_reach_what_follows(ray_session, tmp_path):
    """Ray Tune's fit() leaves its own SIGINT handler behind; a study's confirmation runs after
    its search lost their first Ctrl-C or SIGTERM to it (the run pool did not stop)."""
    from results.orchestration.confirm import run_pool

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    run_experiment(tiny_config(tmp_path, "over", SPACE, num_samples=1), progress=False)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    with pytest.raises(KeyboardInterrupt):
        with run_pool(1):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)


@pytest.mark.slow
def test_report_and_tune_agree_on_a_live_and_an_interrupted_run(ray_session, tmp_path):
    """Issue 24: a report taken while a trial runs, and the report after Ctrl-C, said
    stopped_early for trials `tune` called unfinished."""
    from results.load import load_experiment

    config = tiny_config(tmp_path, "agree", SPACE, extra=("train.epochs=30", "train.patience=30"),
                         num_samples=2, grace_period=30)
    live: dict = {}
    stop = interrupted_run(config, tmp_path / "agree", live)
    assert live and set(live.values()) == {"unfinished"}, live             # running, reported epoch 1+
    after = load_experiment(tmp_path / "agree").set_index("trial_id")["state"].to_dict()
    assert after == {t: s for t, s in stop.summary["trial_states"].items() if t in after}, (after, stop.summary)
    assert set(after.values()) == {"unfinished"}


# ---------------------------------------------------------------- a lost or broken optuna.db

def _study_matches_ray(folder: Path, name: str, summary: dict) -> None:
    """Every Ray trial once in the study, in its Ray state, with its values and every epoch."""
    from optuna.trial import TrialState

    from test_tuning import _results
    from tuning.optuna_db import load_optuna_study

    study = load_optuna_study(folder, name)
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert sorted(by_ray_id) == sorted(summary["trial_states"]) and len(study.trials) == len(by_ray_id)
    expected = {"terminated": TrialState.COMPLETE, "stopped_early": TrialState.PRUNED, "errored": TrialState.FAIL}
    for trial_id, state in summary["trial_states"].items():
        ot, results = by_ray_id[trial_id], _results(folder / f"trial_{trial_id}")
        assert ot.state == expected[state] and ot.user_attrs["ray_state"] == state, (trial_id, ot.state, state)
        assert ot.intermediate_values == {r["epoch"]: pytest.approx(r["valid_ndcg_10"]) for r in results}
        if state == "terminated":
            assert ot.value == pytest.approx(results[-1]["best_valid_ndcg_10"])


@pytest.mark.slow
def test_deleted_study_is_rebuilt_from_ray_records_and_the_resume_finishes(ray_session, tmp_path, caplog):
    config = tiny_config(tmp_path, "lost", SPACE, extra=("train.epochs=3",), num_samples=3, grace_period=3)
    folder = tmp_path / "lost"
    interrupted_run(config, folder)
    (folder / "optuna.db").unlink()
    summary = run_experiment(config, resume=True, progress=False)
    assert summary["trials"] == summary["terminated"] == 3 and not summary["interrupted"], summary
    assert f"the Optuna study {str(folder / 'optuna.db')!r} could not be used (the file is missing); " \
           f"rebuilt it from 3 Ray trial records" in caplog.text
    _study_matches_ray(folder, "lost", summary)


def test_corrupt_study_is_rebuilt_and_kept_aside(finished, caplog):
    config, runs = finished
    folder = runs / "done"
    (folder / "optuna.db").write_bytes(b"this is not a SQLite database" * 100)
    summary = run_experiment(config, resume=True, progress=False)
    assert "could not be used (DatabaseError: " in caplog.text and "rebuilt it from 1 Ray trial records; " \
           "the damaged file is kept as optuna.db.broken-" in caplog.text, caplog.text
    (kept,) = folder.glob("optuna.db.broken-*")
    assert kept.read_bytes().startswith(b"this is not a SQLite database")
    _study_matches_ray(folder, "done", summary)


# ---------------------------------------------------------------- a tail-aware epoch, end to end

@pytest.mark.slow
def test_a_tail_aware_epoch_is_the_one_tune_and_the_results_table_report(ray_session, tmp_path):
    """train.select_metric through Ray: each trial's best epoch is its first maximum of validation
    tail-item NDCG@10; the values the search is told (best_*) and the results table's row are that
    epoch's, and the trial's score is overall NDCG@10 there."""
    from results.load import load_experiment, load_history

    config = tiny_config(tmp_path, "tail", SPACE, extra=("train.select_metric=tail_item_ndcg_10", "train.patience=0",
                                                         "tune.objectives=[valid_ndcg_10,valid_tail_item_ndcg_10]"),
                         num_samples=2, scheduler="none")
    summary = run_experiment(config, progress=False)
    assert summary["terminated"] == 2, summary
    table = load_experiment(tmp_path / "tail").set_index("trial_id")
    history = load_history(tmp_path / "tail")
    differs = []
    for trial_id, curve in history.groupby("trial_id"):
        curve = curve.sort_values("epoch")
        tail = curve["valid_tail_item_ndcg_10"].tolist()
        chosen = tail.index(max(tail)) + 1
        last = curve.iloc[-1]
        assert last["best_epoch"] == chosen and table.loc[trial_id, "best_epoch"] == chosen, (trial_id, tail)
        at_chosen = curve[curve["epoch"] == chosen].iloc[0]
        assert last["best_valid_ndcg_10"] == at_chosen["valid_ndcg_10"]
        assert last["best_valid_tail_item_ndcg_10"] == max(tail)
        assert table.loc[trial_id, "valid_tail_item_ndcg_10"] == max(tail)
        ndcg = curve["valid_ndcg_10"].tolist()
        differs.append(chosen != ndcg.index(max(ndcg)) + 1)
    assert any(differs), "no trial where the two metrics pick different epochs: the test tells nothing"
