"""Faults injected into real Ray runs (issue 6): a raising trial, bounded checkpoints, a corrupt
or missing checkpoint at resume, and bad data through launch.py (a killed worker node is in
test_multinode.py).

How a fault gets into a trial: `faulty_trial` below wraps the project's `train_trial`. The driver
(this pytest process) swaps it in for `tuning.trainable.train_trial`, which `tuning.runner` looks
up when it builds the trainable; Ray ships it to the workers *by value*
(`ray.cloudpickle.register_pickle_by_value` on this module), so no test code has to live in the
project's packages and the user config has no test-only field. Which trial fails, and when, is
decided by files in the experiment's storage folder: the first trials to start claim a role
("once" or "always") by an atomic rename, and a trial that raised "once" leaves a marker so its
retry (another process) runs clean. Inside the worker the wrapper raises from the per-epoch report,
so the checkpoints before the fault are real ones written by the real code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from runtime import quiet_child_environment
from conftest import HANG_GUARD_S, REPO
from test_tuning import (DRIVER, SPACE, _kill_driver, _restored_from_a_checkpoint, _results, _run_driver,
                         _snapshot_runtime, _snapshot_trials, _start_driver, tiny_config)

FAULT_FOLDER = "faults"
ROLES = {"once": 3, "always": 2}        # role -> the epoch whose report raises instead


# ---------------------------------------------------------------- the fault-injecting trainable

def _claim_role(plan: Path, trial_id: str) -> str:
    """This trial's role: kept across retries in plan/<trial_id>; new trials claim a free one."""
    mine = plan / trial_id
    if mine.exists():
        return mine.read_text()
    role = ""
    for name in ROLES:
        try:
            os.rename(plan / f"free-{name}", plan / f"taken-{name}")     # atomic: one winner
        except FileNotFoundError:
            continue
        role = name
        break
    mine.write_text(role)
    return role


def faulty_trial(config: dict, data: dict) -> None:
    """`train_trial`, except that the trial holding a role raises a plain RuntimeError when it is
    about to report epoch ROLES[role]: "once" on its first attempt only, "always" every time.
    Each attempt appends the epoch of the checkpoint it starts from (0: none) to plan/<id>.starts."""
    from ray import tune

    import tuning.trainable as trainable

    plan = Path(config["config"]["tune"]["storage_path"]) / FAULT_FOLDER
    trial_id = tune.get_context().get_trial_id()
    role = _claim_role(plan, trial_id)
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = json.loads((Path(folder) / trainable.METRICS_FILE).read_text())["epoch"]
    with (plan / f"{trial_id}.starts").open("a") as handle:
        handle.write(f"{start}\n")
    real_report = trainable._report
    fired = plan / f"{trial_id}.fired"

    def report(trainer, metrics):
        if role and metrics["epoch"] == ROLES[role] and not (role == "once" and fired.exists()):
            fired.write_text("1")
            raise RuntimeError(f"injected fault ({role}) before the report of epoch {metrics['epoch']}")
        real_report(trainer, metrics)

    trainable._report = report
    try:
        trainable.train_trial(config, data)
    finally:
        trainable._report = real_report


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    """6 trials x 4 epochs, max_failures=1; one trial raises once at epoch 3, one always at epoch 2.
    run_experiment starts and stops its own local Ray, as it does for a user."""
    import ray
    import ray.cloudpickle

    import tuning.trainable
    from tuning.runner import run_experiment

    storage = tmp_path_factory.mktemp("faulty")
    plan = storage / FAULT_FOLDER
    plan.mkdir()
    for role in ROLES:
        (plan / f"free-{role}").write_text("")
    config = tiny_config(storage, "faulty", SPACE, num_samples=6, grace_period=4, max_failures=1)
    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)
    real = tuning.trainable.train_trial
    tuning.trainable.train_trial = faulty_trial
    begin = time.time()
    try:
        summary = run_experiment(config, progress=False)
        assert not ray.is_initialized()
    finally:
        tuning.trainable.train_trial = real
        ray.cloudpickle.unregister_pickle_by_value(module)
    print(f"faulty run: 6 trials x 4 epochs in {time.time() - begin:.1f} s")
    roles = {p.name: p.read_text() for p in plan.iterdir() if "." not in p.name and "-" not in p.name}
    by_role = {role: trial for trial, role in roles.items() if role}
    assert set(by_role) == set(ROLES), roles
    return config, summary, Path(summary["experiment"]), plan, by_role


def _starts(plan: Path, trial_id: str) -> list[int]:
    return [int(line) for line in (plan / f"{trial_id}.starts").read_text().split()]


@pytest.mark.slow
def test_trial_raising_once_is_retried_from_its_checkpoint(faulty_run):
    config, summary, folder, plan, by_role = faulty_run
    trial = by_role["once"]
    assert summary["trial_states"][trial] == "terminated"
    assert _starts(plan, trial) == [0, 2]                      # the retry began after epoch 2
    epochs = [r["epoch"] for r in _results(folder / f"trial_{trial}")]
    assert epochs == [1, 2, 3, 4]                              # nothing trained twice from scratch
    assert _snapshot_runtime(folder)[trial]["num_failures"] == 1
    assert "injected fault (once)" in (folder / f"trial_{trial}" / "error.txt").read_text()   # logged


@pytest.mark.slow
def test_trial_always_raising_is_errored_with_traceback_and_others_finish(faulty_run):
    from optuna.trial import TrialState

    from tuning.optuna_db import load_optuna_study

    config, summary, folder, plan, by_role = faulty_run
    trial = by_role["always"]
    assert summary["trial_states"][trial] == "errored"
    assert _starts(plan, trial) == [0, 1]                      # retried once, from its epoch-1 checkpoint
    assert _snapshot_runtime(folder)[trial]["num_failures"] == 2
    error = (folder / f"trial_{trial}" / "error.txt").read_text()
    assert error.count("RuntimeError: injected fault (always) before the report of epoch 2") == 2
    assert 'tuning/trainable.py", line' in error and "in train_trial" in error     # the traceback
    assert summary["trials"] == 6 and summary["errored"] == 1 and not summary["interrupted"]
    assert summary["terminated"] == 5 and summary["best"]["trial_id"] != trial
    states = {t.user_attrs["ray_trial_id"]: t.state for t in load_optuna_study(folder, "faulty").trials}
    assert states[trial] == TrialState.FAIL
    assert sum(s == TrialState.COMPLETE for s in states.values()) == 5


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.mark.slow
def test_checkpoints_are_best_plus_latest_and_bytes_bounded(faulty_run):
    config, summary, folder, plan, by_role = faulty_run
    sizes = {}
    for trial in summary["trial_states"]:
        trial_dir = folder / f"trial_{trial}"
        checkpoints = sorted(trial_dir.glob("checkpoint_*"))
        assert 1 <= len(checkpoints) <= 2, checkpoints
        kept = [json.loads((c / "metrics.json").read_text()) for c in checkpoints]
        results = _results(trial_dir)
        assert results[-1]["epoch"] in {k["epoch"] for k in kept}                        # the latest
        assert max(k["valid_ndcg_10"] for k in kept) == max(r["valid_ndcg_10"] for r in results)  # the best
        one = max(_bytes(c) for c in checkpoints)
        sizes[trial] = (_bytes(trial_dir), sum(_bytes(c) for c in checkpoints), one)
        assert sizes[trial][1] <= 2 * one
        assert sizes[trial][0] <= 2 * one + 256 * 1024          # logs and results: small
    worst = max(total for total, _, _ in sizes.values())
    print(f"bytes per trial after 4 epochs (folder, checkpoints, one checkpoint): {sizes}; "
          f"largest {worst} -> 50 trials ~ {50 * worst / 2**20:.1f} MiB")


# ---------------------------------------------------------------- corrupt / missing checkpoint at resume

def _snapshot_running(folder: Path) -> list[str]:
    """Trials RUNNING in the latest snapshot with a reported (checkpointed) epoch in it."""
    return [trial["trial_id"] for trial, runtime in _snapshot_trials(folder)
            if trial["status"] == "RUNNING" and isinstance(runtime.get("last_result"), dict)
            and runtime["last_result"].get("epoch", 0) >= 1]


def _wait_for_two_checkpointed_running(proc, folder: Path, limit: float = HANG_GUARD_S) -> list[str]:
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None:
        running = _snapshot_running(folder)
        if len(running) >= 2:
            return running[:2]
        time.sleep(0.1)
    raise AssertionError("never saw two running trials with checkpoints:\n" + (proc.stdout.read() or ""))


def _killed_with_two_restorable_trials(config_file: Path, folder: Path, attempts: int = 3) -> list[str]:
    """Start the experiment, kill its driver once two trials run with checkpoints, and return two trials
    the resume will restore from a checkpoint. The trials race the kill; when fewer than two are left
    restorable in the final snapshot, start again from an empty folder (no assertion rests on luck)."""
    left = []
    for _ in range(attempts):
        shutil.rmtree(folder, ignore_errors=True)
        proc, temp = _start_driver(config_file, resume=False)
        try:
            _wait_for_two_checkpointed_running(proc, folder)
        finally:
            _kill_driver(proc, temp)
        restorable = _restored_from_a_checkpoint(folder)
        if len(restorable) >= 2:
            return restorable[:2]
        left.append({trial["trial_id"]: trial["status"] for trial, _ in _snapshot_trials(folder)})
    raise AssertionError(f"in {attempts} kills, never left two trials to restore from a checkpoint; "
                         f"the snapshots the kills left: {left}")


def _worker_logs(temp: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in Path(temp).rglob("worker-*.err"))


@pytest.mark.slow
def test_corrupt_or_missing_checkpoint_at_resume(tmp_path):
    """Killed driver; one running trial's checkpoints truncated, another's deleted; then --resume."""
    from tuning.config import config_to_dict

    config = tiny_config(tmp_path, "broken", SPACE, extra=("train.epochs=4",), num_samples=4,
                         grace_period=4, max_failures=1)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config_to_dict(config)))
    folder = tmp_path / "broken"
    corrupt, missing = _killed_with_two_restorable_trials(config_file, folder)
    truncated = []                    # every trainer.pt, a held copy's too (put back, it is read by its name)
    for state in sorted((folder / f"trial_{corrupt}").glob("*checkpoint_*/trainer.pt")):
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])      # truncated file
        truncated.append(str(state.parent.with_name(state.parent.name.removeprefix("held_"))))
    removed = [str(c) for c in (folder / f"trial_{missing}").glob("*checkpoint_*")]   # kept copy too
    for checkpoint in removed:
        shutil.rmtree(checkpoint)                                                 # missing checkpoint
    epochs_before = {t: len(_results(folder / f"trial_{t}")) for t in (corrupt, missing)}
    proc, temp = _start_driver(config_file, resume=True)
    try:
        output, _ = proc.communicate(timeout=HANG_GUARD_S)
        logs = _worker_logs(temp)
    finally:
        _kill_driver(proc, temp)
    assert proc.returncode == 0, output[-3000:]
    summary = json.loads(output.split("SUMMARY ", 1)[1].splitlines()[0])
    assert summary["trials"] == summary["finished"] == 4 and not summary["interrupted"]
    states = summary["trial_states"]
    assert [states[t] for t in states if t not in (corrupt, missing)] == ["terminated"] * 2
    # truncated: a warning naming the checkpoint, then the trial starts again at epoch 1 and finishes
    assert any(f"checkpoint {path} is unreadable" in logs for path in truncated), logs[-3000:]
    epochs = [r["epoch"] for r in _results(folder / f"trial_{corrupt}")]
    assert epochs[epochs_before[corrupt]:] == [1, 2, 3, 4] and states[corrupt] == "terminated", epochs
    # deleted: Ray's error names a checkpoint of that trial which is gone; the trial is errored.
    # (Which one it names can be newer than the ones removed above: the driver may record the
    # next checkpoint between the snapshot and the kill, so match the folder, not the list.)
    error = (folder / f"trial_{missing}" / "error.txt").read_text()
    named = set(re.findall(r"path: (\S+/checkpoint_\d+)", error))
    assert "does not exist on storage anymore" in error and named, error[-2000:]
    assert all(Path(p).parent == folder / f"trial_{missing}" and not Path(p).exists() for p in named), named
    assert states[missing] == "errored"
    print(f"corrupt {corrupt}: epochs {epochs}; missing {missing}: errored, "
          f"{len(removed)} checkpoints removed")


#: The usual test driver, with a callback that SIGKILLs it inside the window where Ray has recorded a
#: trial's new checkpoint and deleted the previous one, but not yet saved the state that names the
#: new one (Ray calls on_trial_save there; the state is saved at the end of that driver step).
KILLED_MID_CHECKPOINT = """
import json, os, signal, sys
from pathlib import Path
from ray.tune import Callback
import tuning.runner

class KillBeforeTheStateIsSaved(Callback):
    def __init__(self):
        self.previous = {}
    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.previous[trial.trial_id] = trial.checkpoint.path if trial.checkpoint else None
    def on_trial_save(self, iteration, trials, trial, **info):
        previous, marker = self.previous.get(trial.trial_id), Path(sys.argv[1]).with_name("killed.json")
        if previous and not os.path.exists(previous) and not marker.exists():   # Ray restores callbacks
            marker.write_text(json.dumps({"trial": trial.trial_id, "deleted": previous}))   # on resume: once
            os.kill(os.getpid(), signal.SIGKILL)

_callbacks = tuning.runner._callbacks
tuning.runner._callbacks = lambda *args: [*(_callbacks(*args) or []), KillBeforeTheStateIsSaved()]
""" + DRIVER


def _latest_checkpoint_in_snapshot(folder: Path, trial_id: str) -> str:
    import pickle

    runtime = _snapshot_runtime(folder)[trial_id]
    return pickle.loads(bytes.fromhex(runtime["checkpoint_manager"]["value"])).latest_checkpoint_result.checkpoint.path


@pytest.mark.slow
def test_driver_killed_between_a_checkpoint_and_the_state_loses_no_trial(tmp_path):
    """Found by a real study: the stop killed the driver after Ray deleted a trial's previous checkpoint
    and before it saved the state naming the new one; the resume errored that trial. Its kept copy
    (tuning.checkpoint_hold) goes back in place and the trial finishes."""
    from tuning.config import config_to_dict

    config = tiny_config(tmp_path, "window", SPACE, extra=("train.epochs=4",), num_samples=2,
                         grace_period=4, max_failures=0)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config_to_dict(config)))
    folder = tmp_path / "window"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_CHECKPOINT, str(config_file), temp := tempfile.mkdtemp(
        prefix="rt", dir="/tmp"), "0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env=quiet_child_environment())
    try:
        output, _ = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        _kill_driver(proc, temp)
    assert proc.returncode == -9, output[-3000:]
    killed = json.loads((tmp_path / "killed.json").read_text())
    deleted = Path(killed["deleted"])
    assert not deleted.exists() and _latest_checkpoint_in_snapshot(folder, killed["trial"]) == str(deleted)
    assert (deleted.parent / f"held_{deleted.name}").is_dir()                  # the kept copy

    summary, output = _run_driver(config_file, resume=True)
    assert summary["trial_states"][killed["trial"]] == "terminated", output[-3000:]
    assert summary["trials"] == summary["terminated"] == 2 and summary["errored"] == 0
    assert _results(deleted.parent)[-1]["epoch"] == 4
    assert not list(folder.glob("*/held_*")) and not list(folder.glob("*/.held_*"))    # released at the end
    print(f"killed with {deleted.name} of trial {killed['trial']} deleted; resumed to epoch 4")


# ---------------------------------------------------------------- bad data through launch.py

def _launch(*args: str) -> subprocess.CompletedProcess:
    env = quiet_child_environment()
    return subprocess.run([sys.executable, "launch.py", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=HANG_GUARD_S)


def _one_clear_line(run: subprocess.CompletedProcess) -> str:
    """Exit code 2, one `error: ...` line (the last on stderr) and no traceback. Ray's own log
    lines may come before it (e.g. its token-authentication notice when `tune` starts Ray)."""
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert run.returncode == 2 and errors == lines[-1:], run.stderr[-3000:]
    assert "Traceback" not in run.stderr + run.stdout
    return errors[0]


def test_launch_tune_with_malformed_interactions(tmp_path):
    """Through `tune`: the data fails to parse before Ray starts; no experiment is left."""
    from test_datasets import random_matrix, write_csv

    bad = write_csv(tmp_path / "bad.csv", "user,item,timestamp", ["a,1,1", "b,2,yesterday"])
    emb = random_matrix(tmp_path / "emb.npy", 2)
    run = _launch("tune", "--name", "bad-data", "--set", "data.name=csv", "--set", f"data.path={bad}",
                  "--set", "data.embedder=file", "--set", f"data.embedding_path={emb}",
                  "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", f"tune.storage_path={tmp_path}")
    line = _one_clear_line(run)
    assert "bad.csv, line 3: timestamp 'yesterday'" in line, line
    assert not (tmp_path / "bad-data").exists()


def test_launch_prepare_with_wrong_embedding_shape(tmp_path):
    from test_datasets import random_matrix, tiny_csv

    good = tiny_csv(tmp_path)                        # 9 distinct items: (9, D) or (10, D) allowed
    wrong = random_matrix(tmp_path / "wrong.npy", 7)
    run = _launch("prepare", "--dataset", "csv", "--set", f"data.path={good.path}",
                  "--set", "data.embedder=file", "--set", f"data.embedding_path={wrong}",
                  "--set", f"data.cache_dir={good.cache_dir}",
                  "--set", "data.user_core=3", "--set", "data.item_core=2", "--set", "data.pca_dim=4",
                  "--set", "data.n_eval_negatives=3")
    line = _one_clear_line(run)
    assert "wrong.npy" in line and "(7, 8)" in line and "(9, D)" in line, line


def test_launch_tune_with_unreachable_address(tmp_path):
    run = _launch("tune", "--address", "127.0.0.1:1", "--name", "nowhere",
                  "--set", f"tune.storage_path={tmp_path}")
    line = _one_clear_line(run)
    assert "no Ray cluster answers at '127.0.0.1:1'" in line, line


# ---------------------------------------------------------------- experiment state cut mid-write

def test_state_cut_mid_write_is_repaired_from_its_last_good_copy(tmp_path):
    """A driver killed while Ray rewrites experiment_state-*.json leaves it empty; without the
    copy, Tuner.restore would start the whole experiment over."""
    from tuning.state_backup import StateBackup, repair

    state = tmp_path / "experiment_state-2026-11-23_20-00-00.json"
    state.write_text(json.dumps({"trial_data": [["a", "b"]]}))
    backup = StateBackup(tmp_path)
    backup.save()
    good = state.read_text()
    state.write_text("")                                  # the crash mid-write
    backup.save()                                         # an unreadable state is never copied
    assert repair(tmp_path) == [state.name]
    assert state.read_text() == good
    assert repair(tmp_path) == []                         # a readable state is left alone


def test_searcher_state_cut_mid_write_is_repaired_too(tmp_path):
    """The searcher's pickle is rewritten in place as well; a cut one made Tuner.restore fail with
    EOFError and start the experiment over."""
    import pickle

    from tuning.state_backup import StateBackup, repair

    searcher = tmp_path / "searcher-state-2026-11-30_00-51-12.pkl"
    searcher.write_bytes(pickle.dumps({"trials": [1, 2, 3]}))
    generator = tmp_path / "search_gen_state-2026-11-30_00-51-12.json"
    generator.write_text(json.dumps({"counter": 3}))
    StateBackup(tmp_path).save()
    good = searcher.read_bytes(), generator.read_text()
    searcher.write_bytes(good[0][:7])                     # cut mid-write
    generator.write_text("")
    assert sorted(repair(tmp_path)) == sorted([searcher.name, generator.name])
    assert (searcher.read_bytes(), generator.read_text()) == good


class _OpensAFileWhenLoaded:
    """Stands for the searcher's state: unpickling it builds an Optuna storage, which creates
    optuna.db; a test caught a deleted study reappearing empty at --resume that way."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_state_files_are_checked_without_unpickling_them(tmp_path):
    import pickle

    from tuning.state_backup import StateBackup, repair

    created = tmp_path / "created-by-unpickling"
    searcher = tmp_path / "searcher-state-2026-11-30_00-51-12.pkl"
    searcher.write_bytes(pickle.dumps(_OpensAFileWhenLoaded(created)))
    StateBackup(tmp_path).save()
    assert (tmp_path / (searcher.name + ".last-good")).read_bytes() == searcher.read_bytes()
    searcher.write_bytes(searcher.read_bytes()[:-1])        # the STOP opcode cut off
    assert repair(tmp_path) == [searcher.name]
    assert not created.exists()
