"""A full disk during `tune`: the trial waits and goes on, the driver and the CLI stay clear.

How the disk gets full: `disk_full_trial` wraps the project's `train_trial` (swapped in by the
driver, shipped to Ray's workers by value, as in test_faults.py). Inside the worker it makes the
checkpoint write of one epoch fail like a full disk does: half the bytes land in the file, then
OSError(ENOSPC). That happens FULL_WRITES times in a row, then space is "freed". The trial runs
with max_failures=0, so an error that escaped the trainable would end it.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from pathlib import Path

import pytest

from test_config_properties import one_error_line, run_launch
from test_tuning import SPACE, _results, tiny_config

FULL_AT = 3          # the epoch whose checkpoint meets the full disk
FULL_WRITES = 2      # failed writes before space is free again


def disk_full_trial(config: dict, data: dict) -> None:
    """`train_trial` with the checkpoint of epoch FULL_AT hitting a full disk FULL_WRITES times."""
    import torch

    import tuning.trainable as trainable

    left, reporting = {"writes": FULL_WRITES}, {"epoch": None}
    real_save, real_report = torch.save, trainable._report

    def report(trainer, metrics):
        reporting["epoch"] = metrics["epoch"]
        return real_report(trainer, metrics)

    def save(obj, path, *args, **kwargs):
        if reporting["epoch"] != FULL_AT or left["writes"] == 0 or Path(path).name != trainable.STATE_FILE:
            return real_save(obj, path, *args, **kwargs)
        left["writes"] -= 1
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        Path(path).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    trainable._report, torch.save = report, save
    try:
        trainable.train_trial(config, data)
    finally:
        trainable._report, torch.save = real_report, real_save


def _worker_logs_of_this_process() -> str:
    """Worker stderr of the private Ray sessions this process started (named by its pid)."""
    sessions = Path("/tmp/ray").glob(f"session_*_{os.getpid()}")
    return "\n".join(p.read_text(errors="replace") for s in sessions for p in s.glob("logs/worker-*.err"))


@pytest.mark.slow
def test_full_disk_while_checkpointing_waits_then_the_trial_finishes(tmp_path):
    import ray.cloudpickle
    import torch

    import tuning.trainable
    from tuning.runner import run_experiment

    config = tiny_config(tmp_path, "full", SPACE, extra=("train.epochs=4",), num_samples=1, grace_period=4,
                         max_failures=0)
    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)
    real = tuning.trainable.train_trial
    tuning.trainable.train_trial = disk_full_trial
    try:
        summary = run_experiment(config, progress=False)
    finally:
        tuning.trainable.train_trial = real
        ray.cloudpickle.unregister_pickle_by_value(module)
    assert summary["terminated"] == 1 and summary["errored"] == 0, summary
    (trial,) = summary["trial_states"]
    folder = Path(summary["experiment"]) / f"trial_{trial}"
    assert [r["epoch"] for r in _results(folder)] == [1, 2, 3, 4]          # nothing lost, nothing rerun
    for state in folder.glob("checkpoint_*/trainer.pt"):                    # none half-written
        torch.load(state, map_location="cpu", weights_only=True)
    logs = _worker_logs_of_this_process()
    assert logs.count(f"no space left on device for the checkpoint of epoch {FULL_AT}") == FULL_WRITES, logs[-3000:]


def test_a_full_disk_in_the_driver_is_one_line_with_the_way_out(monkeypatch):
    import launch

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/runs/exp/experiment_state.json")

    monkeypatch.setattr(launch, "cmd_tune", full)
    line = one_error_line(*run_launch("tune", "--name", "exp")[::2])
    assert "No space left on device: '/runs/exp/experiment_state.json'" in line
    assert "free some space, then continue a tune run with --resume --name" in line


def test_state_backup_that_cannot_be_written_does_not_stop_the_run(tmp_path, caplog):
    from tuning.state_backup import SUFFIX, StateBackup

    state = tmp_path / "experiment_state-2026-11-29_20-00-00.json"
    state.write_text('{"trial_data": []}')
    blocker = tmp_path / f"{state.name}{SUFFIX}"
    (blocker / "inside").mkdir(parents=True)                      # the copy cannot be renamed into place
    StateBackup(tmp_path).save()
    assert f"could not keep a copy of {state.name}" in caplog.text
    assert blocker.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == sorted([state.name, blocker.name])
