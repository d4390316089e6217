"""A real two-node Ray cluster on this machine: trials run on both nodes, data via the object
store, and a trial whose worker node is killed mid-run finishes on the survivor."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import HANG_GUARD_S
from test_tuning import SPACE, _results, _snapshot_runtime, tiny_config


@contextmanager
def _private_ray_tmpdir():
    """Ray's temp dir (sessions, logs and the `ray_current_cluster` address file) in a folder of
    our own while the cluster lives. Ray's test Cluster writes that file when it starts and
    deletes it at shutdown: in the default place (/tmp/ray) that would overwrite, then remove,
    the pointer to a cluster the user started with `ray start`. The folder name is short, since
    Ray's socket paths have a length limit."""
    folder = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    before = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = folder
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = before
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _head_and_worker(**system_config):
    """A head and a worker node, one CPU each (so two concurrent trials must use both), in a
    private Ray temp dir; yields (cluster, worker node); always torn down."""
    import ray
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 1, "include_dashboard": False}
    if system_config:
        head["_system_config"] = system_config
    with _private_ray_tmpdir():
        cluster = Cluster(initialize_head=True, head_node_args=head)
        try:
            worker = cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            yield cluster, worker
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()


@pytest.fixture(scope="module")
def two_nodes():
    with _head_and_worker() as (cluster, _):
        yield cluster


@pytest.mark.slow
def test_the_users_cluster_pointer_is_left_alone(tmp_path, monkeypatch):
    """A user's `ray start` cluster is named in <RAY_TMPDIR or /tmp>/ray/ray_current_cluster
    (plain ray.init() joins it): the two-node helper neither overwrites nor deletes that file."""
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    pointer = tmp_path / "ray" / "ray_current_cluster"
    pointer.parent.mkdir()
    pointer.write_text("10.0.0.9:6379")
    with _head_and_worker() as (cluster, _):
        assert pointer.read_text() == "10.0.0.9:6379"
        private = Path(os.environ["RAY_TMPDIR"]) / "ray" / "ray_current_cluster"
        assert private.read_text() == cluster.address               # Ray wrote its own pointer there
    assert pointer.read_text() == "10.0.0.9:6379"
    assert os.environ["RAY_TMPDIR"] == str(tmp_path)


@pytest.mark.slow
def test_trials_run_on_both_nodes(two_nodes, tmp_path):
    import ray

    from tuning.runner import run_experiment

    # a fresh worker per trial: a reused warm worker on one node could otherwise take every short trial
    config = tiny_config(tmp_path, "two-nodes", SPACE, extra=("train.epochs=3",), num_samples=4,
                         grace_period=3, reuse_actors=False)
    summary = run_experiment(config, address=two_nodes.address, progress=False)
    assert not ray.is_initialized()                     # run_experiment left the cluster, not stopped it
    assert summary["trials"] == summary["finished"] == 4 and summary["errored"] == 0
    nodes = {}
    for trial_id in summary["trial_states"]:
        lines = (Path(summary["experiment"]) / f"trial_{trial_id}" / "result.json").read_text().splitlines()
        last = json.loads(lines[-1])
        nodes[trial_id] = (last["node_id"], last["node_ip"])
    node_ids = {node for node, _ in nodes.values()}
    alive = {node.node_id for node in two_nodes.list_all_nodes()}
    assert len(node_ids) == 2 and node_ids <= alive, nodes


# ---------------------------------------------------------------- a worker node killed mid-run

@pytest.fixture()
def doomed_worker():
    """A fresh cluster whose worker node the test kills; node death detected within ~1.5 s."""
    with _head_and_worker(health_check_period_ms=500, health_check_failure_threshold=3) as nodes:
        yield nodes


def _kill_node_when_used(cluster, worker, folder: Path, killed: dict, run_over: threading.Event) -> None:
    """Remove (SIGKILL) the worker node as soon as a trial has reported an epoch from it; give up
    only when the run is over (no wall-clock limit: a busy machine is slow, not wrong)."""
    while not run_over.is_set():
        for result_file in folder.glob("trial_*/result.json"):
            if worker.node_id in result_file.read_text(errors="replace"):
                killed.update(trial=result_file.parent.name.split("_", 1)[1], at=time.time())
                cluster.remove_node(worker, allow_graceful=False)
                return
        time.sleep(0.1)


NODE_EPOCHS = 15


@pytest.mark.slow
def test_killed_worker_node_trials_finish_on_the_survivor(doomed_worker, tmp_path):
    from tuning.runner import run_experiment

    cluster, worker = doomed_worker
    head = cluster.head_node.node_id
    # enough epochs that the trial cannot finish on the worker before the kill lands
    config = tiny_config(tmp_path, "node-lost", SPACE, extra=(f"train.epochs={NODE_EPOCHS}", "train.patience=0"),
                         num_samples=3, grace_period=NODE_EPOCHS, max_failures=2, reuse_actors=False)
    killed: dict = {}
    run_over = threading.Event()
    killer = threading.Thread(target=_kill_node_when_used,
                              args=(cluster, worker, tmp_path / "node-lost", killed, run_over), daemon=True)
    killer.start()
    begin = time.time()
    try:
        summary = run_experiment(config, address=cluster.address, progress=False)
    finally:
        run_over.set()
        killer.join(timeout=HANG_GUARD_S)
    print(f"node killed {killed.get('at', begin) - begin:.1f} s in; run took {time.time() - begin:.1f} s")
    assert killed, "no trial ever reported from the worker node"
    assert summary["trials"] == summary["finished"] == 3 and summary["errored"] == 0
    folder = Path(summary["experiment"])
    trial = killed["trial"]
    results = _results(folder / f"trial_{trial}")
    nodes = [r["node_id"] for r in results]
    assert nodes[0] == worker.node_id and nodes[-1] == head      # rescheduled on the survivor
    # continued from its checkpoint: never back to epoch 1, no epoch skipped, ends at the budget.
    # An epoch reported just before the node died may run again (its checkpoint died with the
    # node: at-least-once); the rerun must give the same numbers (exact resume).
    epochs = [r["epoch"] for r in results]
    assert epochs[0] == 1 and epochs.count(1) == 1 and epochs[-1] == NODE_EPOCHS, epochs
    assert all(b == a + 1 or b <= a for a, b in zip(epochs, epochs[1:])), epochs
    assert set(epochs) == set(range(1, NODE_EPOCHS + 1)), epochs
    seen: dict[int, float] = {}
    for r in results:
        assert seen.setdefault(r["epoch"], r["valid_ndcg_10"]) == r["valid_ndcg_10"], (r["epoch"], seen)
    assert summary["trial_states"][trial] == "terminated"
    assert _snapshot_runtime(folder)[trial]["num_failures"] >= 1
