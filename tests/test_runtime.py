"""The one process set-up (runtime.py): a user's environment wins, threads come back, no other
module sets torch's threads or the quiet variables itself, and an atomic write leaves the old file
or folder whole when it fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, strategies as st

from runtime import QUIET_ENVIRONMENT, quiet_child_environment, quiet_environment, torch_threads, trial_threads
from tuning.config import load_config

REPO = Path(__file__).resolve().parents[1]


def test_a_value_the_user_set_is_kept():
    environ = {"HF_HUB_OFFLINE": "0"}
    quiet_environment(environ)
    assert environ["HF_HUB_OFFLINE"] == "0"
    assert {k: v for k, v in environ.items() if k != "HF_HUB_OFFLINE"} == {
        k: v for k, v in QUIET_ENVIRONMENT.items() if k != "HF_HUB_OFFLINE"}


def test_a_child_environment_leaves_this_process_alone(monkeypatch):
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    child = quiet_child_environment(EXTRA="1")
    assert child["TOKENIZERS_PARALLELISM"] == "false" and child["EXTRA"] == "1"
    import os

    assert "TOKENIZERS_PARALLELISM" not in os.environ and "EXTRA" not in os.environ


@given(num_threads=st.integers(0, 8), cpus=st.floats(0.1, 8))
def test_trial_threads_match_what_the_trial_holds(num_threads, cpus):
    config = load_config(None, [f"train.num_threads={num_threads}", f"tune.cpus_per_trial={cpus}"])
    expected = num_threads if num_threads else max(1, int(cpus))
    assert trial_threads(config) == expected


def test_torch_threads_are_put_back_even_after_an_error():
    before = torch.get_num_threads()
    try:
        with torch_threads(before + 1):
            assert torch.get_num_threads() == before + 1
            raise RuntimeError("a failed run")
    except RuntimeError:
        pass
    assert torch.get_num_threads() == before


def test_only_runtime_sets_threads_and_the_quiet_environment():
    """Copies of the set-up drifted apart before it had one home."""
    setters = re.compile(r"set_num_threads\(|environ\.setdefault\(\"(%s)\"" % "|".join(QUIET_ENVIRONMENT))
    offenders = [str(path.relative_to(REPO)) for folder in ("datasets", "cluster_prep", "model", "tuning",
                                                             "results", "bench", "tests")
                 for path in (REPO / folder).rglob("*.py") if setters.search(path.read_text())]
    offenders += [name for name in ("launch.py", "settings.py") if setters.search((REPO / name).read_text())]
    assert offenders == [], offenders


def _full_disk(src, dst):
    raise OSError(28, "No space left on device")


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    import runtime

    path = runtime.write_atomic(tmp_path / "a.json", "old")
    monkeypatch.setattr(runtime.os, "replace", _full_disk)
    with pytest.raises(OSError):
        runtime.write_atomic(path, b"new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_folder_appears_whole_and_a_finished_one_is_kept(tmp_path):
    import runtime

    folder = tmp_path / "entry"
    runtime.write_folder_atomic(folder, lambda tmp: (tmp / "f").write_text("first"), lambda f: False)
    runtime.write_folder_atomic(folder, lambda tmp: (tmp / "f").write_text("second"),
                                lambda f: (f / "f").is_file())       # another process finished it first
    assert (folder / "f").read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["entry"]
    with pytest.raises(OSError):
        runtime.write_folder_atomic(folder, lambda tmp: (tmp / "f").write_text("third"), lambda f: False)
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


DRIVER = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from runtime import worker_process

if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(worker_process, 1).result()
        open(sys.argv[1], "w").write(str(pool.submit(os.getpid).result()))
        pool.submit(time.sleep, 120).result()
"""


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:             # a zombie is gone for our purpose
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to tell a zombie from a process")
def test_a_pool_worker_stops_when_its_driver_is_killed(tmp_path):
    """SIGKILL reaches the driver only; its worker must not go on training (a resumed driver
    would race it for the same result file)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script, pid_file = tmp_path / "driver.py", tmp_path / "worker.pid"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), str(pid_file)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        worker = int(pid_file.read_text())
        assert _alive(worker)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 15
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the worker outlived its killed driver"
    finally:
        driver.kill()


def test_a_process_that_is_not_a_pool_worker_never_watches_its_parent():
    """A driver run under nohup must outlive the shell that started it."""
    import runtime

    runtime.exit_with_parent()
    assert runtime._watched_parent == []


def test_the_command_line_sets_the_quiet_environment_before_ray_reads_it():
    """Ray Tune reads TUNE_WARN_THRESHOLD_S once, when ray.tune is first imported: launch.py
    must not import Ray before main() calls quiet_environment()."""
    import subprocess
    import sys

    env = {k: v for k, v in quiet_child_environment().items() if k != "TUNE_WARN_THRESHOLD_S"}
    code = ("import sys, launch; print('ray' in sys.modules); launch.quiet_environment(); "
            "from ray.tune.utils.util import warn_if_slow; print(warn_if_slow.DEFAULT_THRESHOLD)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", str(float(QUIET_ENVIRONMENT["TUNE_WARN_THRESHOLD_S"]))]


def test_a_sigterm_inside_does_what_the_sigint_handler_of_that_moment_does():
    import os
    import signal

    from runtime import sigterm_as_ctrl_c

    calls = []
    before_int = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    before_term = signal.getsignal(signal.SIGTERM)
    try:
        with sigterm_as_ctrl_c():
            os.kill(os.getpid(), signal.SIGTERM)
            signal.signal(signal.SIGINT, signal.SIG_IGN)          # ignored Ctrl-C: SIGTERM ignored too
            os.kill(os.getpid(), signal.SIGTERM)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [signal.SIGINT]
        assert signal.getsignal(signal.SIGTERM) is before_term
    finally:
        signal.signal(signal.SIGINT, before_int)


def test_outside_the_main_thread_the_sigterm_handler_is_left_alone():
    import signal
    import threading

    from runtime import sigterm_as_ctrl_c

    seen = []

    def enter() -> None:
        with sigterm_as_ctrl_c():
            seen.append(signal.getsignal(signal.SIGTERM))
    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGTERM)]


def test_handlers_installed_inside_are_undone_after():
    import signal

    from runtime import signal_handlers_restored

    before = signal.getsignal(signal.SIGUSR1)
    with signal_handlers_restored(signal.SIGUSR1):
        signal.signal(signal.SIGUSR1, lambda signum, frame: None)      # as Ray Tune's fit() does
    assert signal.getsignal(signal.SIGUSR1) is before


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_inside_interrupts_raise_both_signals_raise_whatever_was_installed(signame):
    """A handler left by a finished Ray Tune run (it only logs) or by ray.init (it exits) must
    not decide what the run pool does with Ctrl-C or a scheduler's SIGTERM."""
    import os
    import signal

    from runtime import interrupts_raise

    sig = getattr(signal, signame)
    stale = lambda signum, frame: None                               # noqa: E731
    before = {s: signal.signal(s, stale) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts_raise():
                os.kill(os.getpid(), sig)
                for _ in range(100):
                    __import__("time").sleep(0.05)
        assert signal.getsignal(signal.SIGINT) is stale and signal.getsignal(signal.SIGTERM) is stale
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
