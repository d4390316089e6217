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
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
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
