"""The process set-up every entry point shares: a quiet, offline environment, torch's threads,
and how a file or folder is written so that no reader ever sees half of it.

Why one module: launch.py, the Ray trial, reproduce, the study's worker processes, the benchmarks
and the tests each set these, and the copies drifted (launch.py set six variables, the benchmarks
and tests four, the table-recording workers three). Entry points call `quiet_environment()` once at start; code that trains calls
`trial_threads(config)` so a reproduction uses the thread count its tuning trial used. Importing
this module changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: offline model loading, no usage reports, Ray's log dedup, and Ray Tune's "may be a performance
#: bottleneck" warnings only for driver steps over 5 s (its 0.5 s default fires on every result
#: while trials keep each core busy: half the lines of a study's log); a user's own value wins
QUIET_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_DEDUP_LOGS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "TUNE_WARN_THRESHOLD_S": "5",
}


def quiet_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set the quiet defaults where unset (in `environ`, default os.environ); return it."""
    environ = os.environ if environ is None else environ
    for key, value in QUIET_ENVIRONMENT.items():
        environ.setdefault(key, value)
    return environ


def quiet_child_environment(**extra: str) -> dict[str, str]:
    """A copy of this process's environment, quiet, with `extra` set: for subprocesses."""
    return {**quiet_environment(dict(os.environ)), **extra}


def set_torch_threads(threads: int) -> None:
    """torch's intra-op threads for this process; 0 or less leaves torch's default."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def trial_threads(config: Any) -> int:
    """The threads a training run of `config` uses: train.num_threads, or (0) one per CPU its
    tuning trial holds, so a trial and its reproduction run with the same count."""
    if config.train.num_threads > 0:
        return int(config.train.num_threads)
    return max(1, int(config.tune.cpus_per_trial))


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` torch threads, then put the previous count back."""
    import torch

    before = torch.get_num_threads()
    set_torch_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: exit status of a worker that stopped because its driver died
PARENT_GONE = 75
_watched_parent: list[int] = []


def worker_process(threads: int = 1) -> None:
    """Start of a worker process (study confirmation, dose, benchmark recording): quiet,
    `threads`, and gone when its driver is (see `exit_with_parent`)."""
    quiet_environment()
    set_torch_threads(threads)
    exit_with_parent()


def exit_with_parent(poll_s: float = 1.0) -> None:
    """End this process soon after its parent dies, once per process.

    Why: a pool worker outlives a driver killed by SIGTERM or SIGKILL (only Ctrl-C reaches the
    whole process group); it would finish its run and take the next queued one, racing a resumed
    driver for the same result file and taking a core from it. Results are written atomically,
    so a worker stopped mid-run leaves no result, and the resumed driver runs that job again
    (from its last epoch's checkpoint: model.pipeline.train_resumable).
    Only in a multiprocessing child: a driver run inline (or under nohup) must outlive its shell."""
    import multiprocessing

    if _watched_parent or multiprocessing.parent_process() is None:
        return
    parent = os.getppid()
    _watched_parent.append(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(PARENT_GONE)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While inside, a SIGTERM does what Ctrl-C would: it calls whatever handles SIGINT at that
    moment. Around Ray Tune's fit(), whose own SIGINT handler stops the run, saves the experiment
    and returns (code that stops on KeyboardInterrupt uses `interrupts_raise`). The previous
    SIGTERM handler comes back after.

    Why: a scheduler (SLURM, Kubernetes, `kill`) stops a job with SIGTERM, which would end the
    driver at once, where Ctrl-C saves the experiment and prints how to resume it. Main thread
    only (Python runs signal handlers there); elsewhere this does nothing."""
    def as_ctrl_c(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if handler is signal.SIG_IGN:
            return
        if not callable(handler):                     # SIG_DFL or set outside Python
            _raise_interrupt(signum, frame)
        handler(signal.SIGINT, frame)

    with signal_handlers_restored(signal.SIGTERM):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, as_ctrl_c)
        yield


@contextlib.contextmanager
def signal_handlers_restored(*signums: int) -> Iterator[None]:
    """The handlers of `signums` come back as they were, whatever the code inside installs.

    Why: Ray Tune's fit() installs its own SIGINT and SIGUSR1 handler and leaves it there after
    a normal end, so in a study the first Ctrl-C (or SIGTERM) during the confirmation runs that
    follow a search went to a Tune run long over and was lost. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.getsignal(signum) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in before.items():
            if handler is not None:                   # None: installed outside Python, cannot be put back
                signal.signal(signum, handler)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """While inside, Ctrl-C and a SIGTERM both raise KeyboardInterrupt in the main thread,
    whatever handlers were there before (one a finished Ray Tune run or `ray.init` left: Ray's
    SIGTERM handler exits the process); both come back after. For code that stops itself on
    KeyboardInterrupt, the run pool. Main thread only."""
    with signal_handlers_restored(signal.SIGINT, signal.SIGTERM):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, _raise_interrupt)
        yield


def _temporary_sibling(path: Path) -> Path:
    """A hidden name beside `path`, unique to this call (two writers never share one)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def write_atomic(path: str | Path, content: bytes | str) -> Path:
    """`content` (a str as UTF-8) at `path`, through a temporary file beside it and a rename:
    a reader never sees half a file, and a killed writer leaves no file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        tmp.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_folder_atomic(folder: Path, fill: Callable[[Path], None], complete: Callable[[Path], bool]) -> None:
    """`fill` a temporary folder beside `folder`, then rename it into place, so a crash never
    leaves a half-written folder that could pass for a finished one. A cache entry is a folder of
    files, hence the folder-level rename; when another process finished `folder` first
    (`complete(folder)`), its copy is kept."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(folder)
    tmp.mkdir()
    try:
        fill(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not complete(folder):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
