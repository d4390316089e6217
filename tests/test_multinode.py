"""A real two-node Ray cluster on this machine: trials run on both nodes, data via the object store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_tuning import SPACE, tiny_config


@pytest.fixture(scope="module")
def two_nodes():
    """Head and worker node, one CPU each, so two concurrent trials must use both; always torn down."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_trials_run_on_both_nodes(two_nodes, tmp_path):
    import ray

    from tuning import run_experiment

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
