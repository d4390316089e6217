"""A study's and a dose-response's run files: one JSON record per trained run (arm, seed, the
config it trained with, its validation and test metrics, its history), how they are read and
written, and the one rule for "this run is done" (`trained_as`).

Why its own module: the confirmation runs, the dose-response and the lookup of runs trained
before elsewhere (results.orchestration.twins) all read run files the same way.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from runtime import write_atomic

RUN_KEYS = ("arm", "seed", "config", "valid", "test")        # what every run file holds (run_confirmation)
#: the packages whose code decides what a run computes; a fix there changes a run's results
#: without changing any setting, so a run file records a digest of their code (`training_code`)
TRAINING_PACKAGES = ("datasets", "cluster_prep", "model")

logger = logging.getLogger(__name__)


def comparable(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config as the current code reads it: settings added since it was saved appear
    with their defaults (which keep the old behaviour), so only real differences count."""
    from tuning.config import config_from_dict, config_to_dict

    return config_to_dict(config_from_dict(saved))


def write_json(path: Path, payload: Any) -> None:
    write_atomic(path, json.dumps(payload, indent=1, default=str))


def read_run(path: Path) -> dict[str, Any] | None:
    """The run record in `path`, or None, with a warning naming the file, when it is cut or not a
    run record (a hand edit, a copy stopped part way): such a run counts as not done, so reports
    leave it out and a resume trains it again, writing the file anew."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        logger.warning("run file %s does not read (%s); counted as not done", path, exc)
        return None
    if not isinstance(record, dict) or not all(key in record for key in RUN_KEYS):
        logger.warning("run file %s is not a run record (it needs %s); counted as not done", path, ", ".join(RUN_KEYS))
        return None
    return record


def read_runs(paths: Any) -> list[dict[str, Any]]:
    """`read_run` of each path, in order, leaving out the ones that do not read."""
    return [record for record in map(read_run, paths) if record is not None]


def settings_of(config_dict: dict[str, Any]) -> dict[str, Any]:
    """The settings a run trains by (model.pipeline.run_settings) of a config dict saved by any
    version of this code (`comparable`)."""
    from model.pipeline import run_settings

    return run_settings(comparable(config_dict))


def trained_as(path: Path, wanted: dict[str, Any]) -> bool:
    """Whether the run file at `path` exists and was trained with the settings of `wanted` (a
    config dict): the one rule for "this run is done", for the study's runs and the dose's alike.
    Only the settings a run trains by count (model.pipeline.run_settings), so a moved or renamed
    folder, or a grown plan, keeps every run already done; a file that does not read is not done."""
    from model.pipeline import run_settings

    record = read_run(path) if path.is_file() else None
    if record is None:
        return False
    try:
        saved = settings_of(record["config"])
    except (TypeError, ValueError) as exc:        # a value this code refuses, or no config at all
        logger.warning("run file %s holds a config that does not load (%s); counted as not done", path, exc)
        return False
    return saved == run_settings(wanted)


@functools.lru_cache(maxsize=1)
def training_code() -> str:
    """A digest of the training code (every .py file of TRAINING_PACKAGES): written into each
    run file, so a run is copied for another (results.orchestration.twins) only when the same
    code trained it."""
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for path in sorted(p for package in TRAINING_PACKAGES for p in (root / package).rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
