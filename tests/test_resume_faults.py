"""Faults a --resume meets, in real Ray runs: a driver killed with a corrupt or missing checkpoint,
killed between Ray recording a checkpoint and saving the state that names it, and experiment or
searcher state cut mid-write (the faults inside running trials are in test_faults.py).
"""

from __future__ import annotations

import json
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
    """Killed driver; one running trial's checkpoints truncated, another's deleted (as a folder
    carried without them); then --resume: both restart from scratch and finish."""
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
    # deleted, kept copy too (a folder carried without its checkpoints): an empty stand-in at the
    # checkpoint the state names, so the trial restarts at epoch 1 and finishes instead of erroring
    # (before: Ray's "does not exist on storage anymore", the trial errored and its budget lost)
    assert f"of trial {missing} is missing" in output, output[-3000:]
    epochs_missing = [r["epoch"] for r in _results(folder / f"trial_{missing}")]
    assert epochs_missing[epochs_before[missing]:] == [1, 2, 3, 4] and states[missing] == "terminated", epochs_missing
    assert not (folder / f"trial_{missing}" / "error.txt").exists()
    print(f"corrupt {corrupt}: epochs {epochs}; missing {missing}: epochs {epochs_missing}, "
          f"{len(removed)} checkpoints removed")


@pytest.mark.slow
def test_a_search_carried_without_checkpoints_to_another_machine_resumes(tmp_path):
    """A study's search part way, committed with Ray's run state but (by .gitignore) without its
    checkpoints, continues on another machine, here at another path: the trials that were running
    restart from scratch and every trial finishes (before: each running trial errored, and at
    another path Ray's pickled searcher failed to open its Optuna database at the first path)."""
    from tuning.config import config_to_dict

    config = tiny_config(tmp_path / "here", "carried", SPACE, extra=("train.epochs=4",), num_samples=4,
                         grace_period=4, max_failures=1)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config_to_dict(config)))
    running = _killed_with_two_restorable_trials(config_file, tmp_path / "here" / "carried")
    there = tmp_path / "there" / "carried"                                         # what a commit keeps
    shutil.copytree(tmp_path / "here" / "carried", there, ignore=shutil.ignore_patterns(
        "checkpoint_*", "held_checkpoint_*", ".held_checkpoint_*", "driver.lock"))
    shutil.rmtree(tmp_path / "here")                                               # the first machine is gone
    assert not list(there.rglob("checkpoint_*"))
    before = {t: len(_results(there / f"trial_{t}")) for t in running}
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(config_to_dict(config.replace({"tune.storage_path": str(there.parent)}))))
    summary, output = _run_driver(moved, resume=True)
    assert summary["trials"] == summary["finished"] == 4 and set(summary["trial_states"].values()) == {"terminated"}
    assert f"was started at {tmp_path / 'here' / 'carried'}: its Optuna database is opened where it is now" in output
    for trial in running:
        assert f"of trial {trial} is missing" in output, output[-3000:]
        epochs = [r["epoch"] for r in _results(there / f"trial_{trial}")]
        assert epochs[before[trial]:] == [1, 2, 3, 4], epochs
    assert not (tmp_path / "here").exists()                                        # nothing written there


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
