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
from tuning import ConfigError, run_experiment


@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


# ---------------------------------------------------------------- one owner per name

def test_concurrent_claims_of_one_name_have_one_winner(tmp_path):
    from tuning.runner import CONFIG_FILE, claim_experiment

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
    assert summary["finished"] == 1
    return config, runs


def test_resume_refuses_a_changed_setting_naming_saved_and_now(finished):
    config, runs = finished
    line = one_error_line(*run_launch("tune", "--resume", "--name", "done", "--set", f"tune.storage_path={runs}",
                                      "--set", "model.gamma=0.3")[::2])
    assert "--resume: the config differs from the one experiment 'done' started with " \
           "(model.gamma: saved 0.1, now 0.3)" in line, line


def test_resume_refuses_a_changed_search_space(finished):
    from tuning import config_from_dict, config_to_dict

    config, runs = finished
    data = config_to_dict(config)
    data["tune"]["space"]["lr"]["high"] = 0.05
    with pytest.raises(ConfigError, match=r"\(tune.space.lr.high: saved 0.01, now 0.05\)"):
        run_experiment(config_from_dict(data), resume=True, progress=False)


def test_resume_with_only_the_name_continues_the_saved_config(finished, monkeypatch):
    from tuning.config import given_keys
    from tuning.runner import _absolute_paths, _resumed_config

    config, runs = finished
    elsewhere = _absolute_paths(tiny_config(runs / ".." / "runs", "done", {}, extra=("model.gamma=0.5",)))
    assert _resumed_config(runs / "done", "done", elsewhere, given_keys(None, [f"tune.storage_path={runs}/."])) \
        .model.gamma == 0.1                                      # only where it lies was given
    monkeypatch.chdir(runs.parent)                                # tune.storage_path "runs" (the default)
    code, out, err = run_launch("tune", "--resume", "--name", "done", "--json")
    assert code == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["trials"] == summary["finished"] == 1 and not summary["interrupted"]


# ---------------------------------------------------------------- Ctrl-C

def _interrupt_after_first_report(folder: Path, done: threading.Event) -> None:
    """SIGINT to this process (Ray Tune's handler catches it in fit()) once a trial reported."""
    while not done.is_set():
        if any(p.stat().st_size for p in folder.glob("trial_*/result.json")):
            os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.2)


@pytest.mark.slow
def test_ctrl_c_leaves_running_and_pending_trials_unfinished(ray_session, tmp_path):
    from tuning import ExperimentInterrupted

    config = tiny_config(tmp_path, "stopped", SPACE, extra=("train.epochs=30", "train.patience=30"),
                         num_samples=4, grace_period=30)
    done = threading.Event()
    watcher = threading.Thread(target=_interrupt_after_first_report, args=(tmp_path / "stopped", done))
    watcher.start()
    try:
        with pytest.raises(ExperimentInterrupted) as stop:
            run_experiment(config, progress=False)
    finally:
        done.set()
        watcher.join()
    summary = stop.value.summary
    assert summary["interrupted"] and summary["finished"] == 0, summary
    assert set(summary["trial_states"].values()) == {"unfinished"}, summary["trial_states"]
    assert summary["terminated"] == summary["stopped_early"] == summary["errored"] == 0
    assert "interrupted with 0 of 4 trials finished" in str(stop.value)
