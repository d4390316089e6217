"""The driver around real Ray runs (issue 24): a device no trial can have and a run whose every
trial errored end in one line and exit 2; one driver per experiment (a lock, taken over from a
dead driver); Ctrl-C during a study points at the study's resume, which needs no --config; ASHA
decides after a crash and resume exactly as without the crash.

Drivers run as real processes (launch.py, or test_tuning's DRIVER script) on ml-100k with a tiny
model; each test waits for states it can see in the experiment folder, never for a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import HANG_GUARD_S, REPO, SHARED_DATA, TEST_CACHE
from runtime import quiet_child_environment
from test_config_properties import one_error_line, run_launch
from test_tuning import _kill_driver, _kill_session, _run_driver, _snapshot_states, _start_driver, tiny_config

LR = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}


def _write_config(config, path: Path) -> Path:
    from tuning.config import config_to_dict

    path.write_text(json.dumps(config_to_dict(config)))
    return path


def _launch(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "launch.py", *args], cwd=REPO, env=quiet_child_environment(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **popen)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        _kill_session(proc)
    return proc.returncode, out, err


def _wait(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + HANG_GUARD_S
    while time.time() < deadline and proc.poll() is None:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"never saw {what} (exit {proc.poll()})")


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and "Traceback" not in stderr, stderr[-3000:]
    return lines[-1]


# ---------------------------------------------------------------- defect 4: nothing can succeed

@pytest.mark.parametrize("sets, says", [
    (("train.device=cuda",), "train.device: got 'cuda' with tune.trials_per_gpu 0 (trials get no GPU)"),
    (("train.device=cuda:0", "tune.trials_per_gpu=1"), "train.device: got 'cuda:0' but no CUDA device"),
])
def test_tune_refuses_a_device_the_trials_cannot_have_before_ray_starts(tmp_path, sets, says):
    import torch

    if torch.cuda.is_available() and "tune.trials_per_gpu=1" in sets:
        pytest.skip("this machine has a CUDA device")
    args = ["tune", "--name", "gpu", "--set", f"tune.storage_path={tmp_path}"]
    code, out, err = _finish(_launch(*args, *[part for s in sets for part in ("--set", s)]))
    line = one_error_line(code, err)
    assert says in line, line
    assert not (tmp_path / "gpu").exists()                       # nothing claimed, Ray never started


@pytest.mark.slow
def test_a_run_whose_every_trial_errored_exits_2_naming_one_error(tmp_path):
    config = tiny_config(tmp_path, "allbad", {"lr": {"type": "float", "low": 1e6, "high": 1e7, "log": True}},
                         extra=("train.epochs=2",), num_samples=2, grace_period=2)
    code, out, err = _finish(_launch("tune", "--config", str(_write_config(config, tmp_path / "c.json")), "--json"))
    line = [line for line in err.splitlines() if line.strip()][-1]      # Ray logs each trial's traceback before
    assert code == 2 and line.startswith("error: every trial of experiment 'allbad' errored (2 of 2); trial "), err
    assert "AllTrialsErrored" not in err and 'launch.py", line' not in err           # ours ends in one line
    assert "non-finite loss at epoch 1" in line and "error.txt" in line, line
    *_, summary, error = [json.loads(x) for x in out.strip().splitlines() if x.startswith("{")]
    assert summary["errored"] == summary["trials"] == 2 and summary["best"] is None
    assert error["error"] == line.removeprefix("error: ")           # then the JSON error line


# ---------------------------------------------------------------- defect 5: one driver per experiment

def _lock_pid(folder: Path) -> int | None:
    try:
        return json.loads((folder / "driver.lock").read_text()).get("pid")
    except (OSError, ValueError):
        return None


def _reported(folder: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.glob("trial_*/result.json"))


@pytest.mark.slow
def test_a_second_driver_is_refused_and_a_dead_drivers_lock_taken_over(tmp_path):
    import ray

    config = tiny_config(tmp_path, "locked", LR, extra=("train.epochs=3",), num_samples=2, grace_period=3,
                         max_concurrent_trials=1)
    config_file = _write_config(config, tmp_path / "config.json")
    folder = tmp_path / "locked"
    first, temp = _start_driver(config_file, resume=False)
    try:
        _wait(lambda: _lock_pid(folder) == first.pid and _reported(folder) > 0, first, "the first driver running")
        code, _, err = run_launch("tune", "--resume", "--name", "locked", "--set", f"tune.storage_path={tmp_path}")
        line = one_error_line(code, err)
        assert f"experiment 'locked' is being run by another driver (pid {first.pid} on host" in line, line
        assert not ray.is_initialized()                               # refused before Ray started
    finally:
        _kill_driver(first, temp)
    assert _lock_pid(folder) == first.pid                              # SIGKILL leaves the file behind
    summary, output = _run_driver(config_file, resume=True)
    assert f"taking over the lock {folder / 'driver.lock'} left by a driver that is no longer running " \
           f"(pid {first.pid} on host" in output, output[-3000:]
    assert summary["trials"] == summary["finished"] == 2
    assert not (folder / "driver.lock").exists()                      # released at exit


# ---------------------------------------------------------------- defect 8: Ctrl-C during a study

@pytest.mark.slow
def test_ctrl_c_in_a_study_names_the_study_resume_which_needs_no_config(tmp_path):
    demo = REPO / "configs" / "study-demo.yaml"
    sets = [f"tune.storage_path={tmp_path}", f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}",
            "train.epochs=20"]                                       # long enough to be interrupted mid-search
    arm = tmp_path / "s" / "search" / "plain-sasrec"
    first = _launch("study", "--config", str(demo), "--name", "s", *[p for s in sets for p in ("--set", s)])
    _wait(lambda: _reported(arm) > 0, first, "a search trial reporting")
    os.kill(first.pid, signal.SIGINT)
    code, _, err = _finish(first)
    command = f"python launch.py study --config {demo} --name s " + " ".join(f"--set {s}" for s in sets) + " --resume"
    assert code == 130 and _last_line(err) == f"error: study 's' was interrupted; continue it with: {command}", err
    reported = _reported(arm)
    again = _launch("study", "--name", "s", "--resume", "--set", f"tune.storage_path={tmp_path}",   # no --config,
                    "--set", "study.confirm_workers=1")     # and the plan changed while an arm is part way
    _wait(lambda: _lock_pid(arm) == again.pid and _reported(arm) > reported, again, "the arm's search resumed")
    os.kill(again.pid, signal.SIGINT)
    code, _, err = _finish(again)
    assert "search plain-sasrec: resuming" in err, err[-3000:]
    assert code == 130 and _last_line(err) == "error: study 's' was interrupted; continue it with: " \
        f"python launch.py study --name s --set tune.storage_path={tmp_path} --set study.confirm_workers=1 --resume", \
        err[-3000:]


# ---------------------------------------------------------------- ASHA across a resume

def _decisions(folder: Path) -> dict[float, tuple[int, str]]:
    """lr -> (epochs run, state) of every trial: which trials ASHA stopped, at which epoch."""
    from results.load import load_experiment

    table = load_experiment(folder)
    return {round(float(row.lr), 12): (int(row.epochs), row.state) for row in table.itertuples()}


@pytest.mark.slow
@pytest.mark.parametrize("prune", [(), ("tune.objectives=[valid_ndcg_10,valid_tail_item_ndcg_10]",
                                        "tune.prune_metric=pareto")], ids=["asha", "pareto-asha"])
def test_asha_stops_the_same_trials_at_the_same_epochs_after_a_crash_and_resume(tmp_path, prune):
    """Random search (seeded), one trial at a time, rungs at epochs 1, 2 and 4: the driver is
    SIGKILLed once two trials went through the rungs, then resumed. Before issue 24 the resumed
    scheduler started with empty rungs and let later trials run on that the cut would stop. The
    Pareto ASHA (tune.prune_metric: pareto) keeps its own rung records, restored alike."""
    def config(name: str):
        return tiny_config(tmp_path, name, LR, extra=("train.epochs=4", "train.patience=4", *prune), num_samples=6,
                           grace_period=1, reduction_factor=2, max_concurrent_trials=1, sampler="random")

    _run_driver(_write_config(config("whole"), tmp_path / "whole.json"), resume=False)
    whole = _decisions(tmp_path / "whole")

    config_file = _write_config(config("crashed"), tmp_path / "crashed.json")
    folder = tmp_path / "crashed"
    proc, temp = _start_driver(config_file, resume=False)
    try:
        def two_decided() -> bool:
            states = _snapshot_states(folder)
            return sum(s == "TERMINATED" for s in states.values()) >= 2 and len(states) >= 3
        _wait(two_decided, proc, "two trials through the rungs in the saved state")
    finally:
        _kill_driver(proc, temp)
    decided = {round(float(json.loads((folder / f"trial_{t}" / "params.json").read_text())["params"]["lr"]), 12)
               for t, s in _snapshot_states(folder).items() if s == "TERMINATED"}
    summary, _ = _run_driver(config_file, resume=True)
    assert summary["trials"] == summary["finished"] == 6, summary
    resumed = _decisions(folder)
    assert resumed == whole, (resumed, whole)
    later = [lr for lr in whole if lr not in decided]
    assert any(whole[lr][1] == "stopped_early" for lr in later), (whole, decided)   # the rungs mattered
    print(f"ASHA decisions (lr -> epochs, state): {whole}; decided before the crash: {sorted(decided)}")


@pytest.mark.slow
def test_ctrl_c_during_tune_exits_130_with_the_resume_line(tmp_path):
    """Like a study, an interrupted `tune` is resumable, not an error of the input: exit 130 (what
    a shell reports for Ctrl-C) and one line saying how to continue, no traceback (it exited 1)."""
    sets = [f"tune.storage_path={tmp_path}", f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}",
            "train.epochs=20", "tune.num_samples=2", "tune.max_concurrent_trials=1"]
    run = _launch("tune", "--config", str(REPO / "configs" / "demo.yaml"), "--name", "t",
                  *[p for s in sets for p in ("--set", s)])
    _wait(lambda: _reported(tmp_path / "t") > 0, run, "a trial reporting")
    os.kill(run.pid, signal.SIGINT)
    code, _, err = _finish(run)
    assert code == 130, err[-3000:]
    assert _last_line(err).startswith("error: experiment 't' was interrupted with 0 of 2 trials finished; "
                                      "continue it with --resume --name t"), err[-3000:]


@pytest.mark.slow
def test_a_sigterm_stops_a_dose_with_its_workers_and_the_resume_continues(tmp_path):
    """A scheduler's SIGTERM to a dose-response's driver: exit 130 with the resume line, no
    worker left training (the runs' epoch checkpoints stop changing), and `--resume --name`
    alone continues them from those checkpoints."""
    storage = f"tune.storage_path={tmp_path}"
    run = _launch("dose", "--config", "configs/demo.yaml", "--name", "d", "--set", storage,
                  "--set", f"data.cache_dir={TEST_CACHE}", "--set", f"data.data_root={SHARED_DATA}",
                  "--set", "dose.shares=[0.05]", "--set", "dose.clusterings=[kmeans-8]", "--set", "dose.seeds=[42,43]",
                  "--set", "dose.workers=2", "--set", "train.epochs=5000", "--set", "train.patience=0")
    partial = lambda: sorted((tmp_path / "d" / "dose" / "runs").glob("*/seed-42.partial.pt"))  # noqa: E731
    _wait(lambda: len(partial()) == 2, run, "both runs' first epoch checkpoints")
    os.kill(run.pid, signal.SIGTERM)
    code, _, err = _finish(run)
    assert code == 130 and _last_line(err).endswith("continues with --resume --name NAME"), err[-3000:]
    stamps = [path.stat().st_mtime_ns for path in partial()]
    time.sleep(4)                                            # a demo epoch takes about a second
    assert [path.stat().st_mtime_ns for path in partial()] == stamps
    stopped_at = min(_checkpoint_epoch(path) for path in partial())
    resumed = _launch("dose", "--name", "d", "--resume", "--set", storage)
    _wait(lambda: all(path.stat().st_mtime_ns not in stamps for path in partial()), resumed, "new checkpoints")
    _kill_session(resumed)
    assert min(_checkpoint_epoch(path) for path in partial()) > stopped_at     # continued, not restarted


def _checkpoint_epoch(path: Path) -> int:
    import torch

    return int(torch.load(path, weights_only=False)["trainer"]["epoch"])
