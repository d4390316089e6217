"""The process set-up every entry point shares: a quiet, offline environment and torch's threads.

Why one module: launch.py, the Ray trial, reproduce, the study's worker processes, the benchmarks
and the tests each set these, and the copies drifted (launch.py set six variables, the benchmarks
and tests four, the table-recording workers three). Entry points call `quiet_environment()` once at start; code that trains calls
`trial_threads(config)` so a reproduction uses the thread count its tuning trial used. Importing
this module changes nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

#: offline model loading, no usage reports, and Ray's log dedup; a user's own value wins
QUIET_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_DEDUP_LOGS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
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


def worker_process(threads: int = 1) -> None:
    """Start of a worker process (study confirmation, benchmark recording): quiet, `threads`."""
    quiet_environment()
    set_torch_threads(threads)
