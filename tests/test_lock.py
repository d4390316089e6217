"""Who runs an experiment, as `study --status` says it: read from the kernel's lock table, never
by trying the lock (which could refuse a driver starting at that instant)."""

from __future__ import annotations

import json
import os
import socket

from tuning.lock import LOCK_FILE, driver_lock, running_driver


def test_a_held_lock_names_its_driver_and_a_released_or_dead_ones_file_does_not(tmp_path):
    assert running_driver(tmp_path) is None                              # no lock file
    with driver_lock(tmp_path, "demo"):
        assert running_driver(tmp_path) == f"pid {os.getpid()} on host {socket.gethostname()}"
    assert running_driver(tmp_path) is None                              # released, file removed
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": socket.gethostname()}))
    assert running_driver(tmp_path) is None                              # a SIGKILLed driver's leftover


def test_without_a_kernel_lock_table_nothing_is_claimed(tmp_path):
    with driver_lock(tmp_path, "demo"):
        assert running_driver(tmp_path, locks=tmp_path / "no-such-table") is None
