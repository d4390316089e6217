"""Faults injected into real Ray runs (issue 6): a raising trial, bounded checkpoints, and bad data
through launch.py (faults a resume meets are in test_resume_faults.py, a killed worker node in
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
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime import quiet_child_environment
from conftest import HANG_GUARD_S, REPO
from test_tuning import SPACE, _results, _snapshot_runtime, tiny_config

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

