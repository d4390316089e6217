"""`tune` without --address starts a private Ray: it never joins a cluster that happens to run on
the machine, even when Ray's usual pointers lead to one (RAY_ADDRESS, and the
<temp>/ray/ray_current_cluster file that `ray start` writes and a plain ray.init() reads).

The other cluster is a real `ray start --head` on 127.0.0.2 with its own --temp-dir, so neither
/tmp/ray nor its ray_current_cluster file (anyone else's) is touched. It is stopped by the pids of
its own processes (found by that temp dir), never by `ray stop`, which would stop every cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from runtime import quiet_child_environment
from test_tuning import SPACE, _results, tiny_config

HEAD_IP = "127.0.0.2"


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _processes_of(temp: str) -> set[int]:
    """Pids whose command line names `temp`, and all their descendants (workers rename
    themselves to ray::..., losing the path, but stay children of the raylet)."""
    parents, found = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if temp in cmdline and int(entry.name) != os.getpid():
            found.add(int(entry.name))
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return found


def _stop(pids: set[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        for _ in range(50):
            if not any(Path(f"/proc/{pid}").exists() for pid in pids):
                return
            time.sleep(0.1)


def _ray_start_head(temp: str, port: int) -> subprocess.CompletedProcess:
    """`ray start --head` with this venv's Ray (its `ray` script may name another interpreter)."""
    return subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--node-ip-address={HEAD_IP}",
         f"--port={port}", f"--temp-dir={temp}/ray", "--num-cpus=1", "--include-dashboard=false",
         "--disable-usage-stats"],
        capture_output=True, text=True, env=quiet_child_environment())


@pytest.fixture
def other_cluster(monkeypatch):
    """A running head node, with RAY_ADDRESS and RAY_TMPDIR of this process pointing at it;
    yields the head's session folder. Ray gives a starting node 30 s to register, which a busy
    machine can miss: a failed start is cleaned up and tried again, three times at most."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")                      # as `ray start` enables it
    temps = []
    try:
        for _ in range(3):
            temps.append(tempfile.mkdtemp(prefix="icc-ray-", dir="/tmp"))   # short: Ray's socket paths
            port = _free_port(HEAD_IP)
            started = _ray_start_head(temps[-1], port)
            if started.returncode == 0:
                break
            _stop(_processes_of(temps[-1]))
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        temp = Path(temps[-1])
        assert (temp / "ray" / "ray_current_cluster").read_text().strip() == f"{HEAD_IP}:{port}"
        session = (temp / "ray" / "session_latest").resolve()            # the head's own session
        monkeypatch.setenv("RAY_ADDRESS", f"{HEAD_IP}:{port}")
        monkeypatch.setenv("RAY_TMPDIR", str(temp))
        yield session
    finally:
        for temp in temps:
            _stop(_processes_of(temp))
            shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_tune_without_address_never_joins_a_running_cluster(other_cluster, tmp_path):
    import ray

    from tuning.runner import run_experiment

    assert not ray.is_initialized()
    config = tiny_config(tmp_path, "private", SPACE, extra=("train.epochs=1",), num_samples=1)
    summary = run_experiment(config, progress=False)
    assert summary["terminated"] == 1, summary
    (trial,) = summary["trial_states"]
    nodes = {r["node_ip"] for r in _results(Path(summary["experiment"]) / f"trial_{trial}")}
    assert HEAD_IP not in nodes, nodes                                # the trial ran on a private Ray
    drivers = list(other_cluster.glob(f"logs/python-core-driver-*_{os.getpid()}.log"))
    assert drivers == [], drivers                                     # this process never joined it
