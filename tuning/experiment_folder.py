"""An experiment's folder: where it lives (a local path or a URI), claiming its name before Ray
starts (of two drivers started with one name exactly one wins), releasing it when a run fails
before any trial, and the saved config a resume continues (refused, naming the key, when a
setting the user gave differs from it).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterable

from datasets.config import LOCATIONS
from settings import ConfigError, dotted_keys, dotted_value, first_difference
from tuning.config import Config, config_from_dict, config_to_dict
from tuning.optuna_db import OPTUNA_DB


CONFIG_FILE = "experiment_config.json"


class StorageError(OSError):
    """A folder that cannot be made where a setting points (tune.storage_path, --findings): the
    message names the setting; errno is kept, so a full disk still gets launch.py's advice."""

    def __str__(self) -> str:
        return str(self.strerror)


def make_folder(path: Path, key: str, value: str) -> Path:
    """`path` created with its parents; a StorageError naming `key` and its `value` otherwise
    (instead of "[Errno 17] File exists" about a path the user never typed)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file is in the way" if exc.errno in (errno.EEXIST, errno.ENOTDIR) else exc.strerror
        where = f": {exc.filename!r}" if exc.filename else ""
        raise StorageError(exc.errno, f"{key}: got {value!r}; cannot create the folder {str(path)!r} "
                                      f"({reason}{where})") from None
    return path


def is_uri(path: str) -> bool:
    """Whether a storage setting names cloud storage (s3://, gs://, ...) rather than a local path."""
    return "://" in path


def experiment_name(config: Config) -> str:
    return config.tune.name or f"{config.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def storage_root(config: Config) -> str:
    """Absolute local path or the URI as given (Ray needs one of the two)."""
    root = config.tune.storage_path
    return root if is_uri(root) else str(Path(root).expanduser().resolve())


def optuna_db_folder(config: Config, name: str) -> Path:
    """Local folder of the SQLite study: the experiment folder, or a local one for URI storage."""
    root = storage_root(config)
    if is_uri(root):
        return Path(config.data.cache_dir).resolve() / "studies" / name
    return Path(root) / name


def absolute_paths(config: Config) -> Config:
    """Trials run in their own folders (and on other nodes): make local paths absolute."""
    return config.replace({f"data.{key}": str(Path(getattr(config.data, key)).expanduser().resolve())
                           for key in LOCATIONS if getattr(config.data, key)})


def claim_experiment(config: Config, folder: Path) -> bool:
    """Claim the experiment's name by creating its experiment_config.json exclusively (O_EXCL):
    of two runs started with the same name, exactly one gets it, before either starts Ray.
    Returns whether this call created the folder itself (see `release_experiment`)."""
    make_folder(folder.parent, "tune.storage_path", config.tune.storage_path)
    try:
        folder.mkdir()
        created = True
    except FileExistsError:
        created = False
    path = folder / CONFIG_FILE
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise ConfigError(f"tune.name: experiment {folder.name!r} already exists in {str(folder.parent)!r}; "
                          f"use --resume to continue it or another --name") from None
    try:
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps(config_to_dict(config), indent=2))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return created


def release_experiment(folder: Path, created: bool) -> None:
    """Undo a claim whose run failed before any trial started (bad data, no resources), so the
    name is free again: the whole folder if this run created it, else only the files it wrote."""
    if created:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for name in (CONFIG_FILE, OPTUNA_DB):
        (folder / name).unlink(missing_ok=True)


def _saved_config(folder: Path, name: str) -> Config:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"--resume: no experiment {name!r} to resume ({str(path)!r} does not exist)")
    return config_from_dict(json.loads(path.read_text()))


#: settings that locate an experiment rather than define it (a resume may spell them differently)
LOCATION_KEYS = ("tune.name", "tune.storage_path")


def changed_setting(saved: dict, now: dict, given: Iterable[str] | None) -> str | None:
    """'key: saved X, now Y' for the first setting in `given` (None: every setting of `now`)
    whose value differs between two config dicts; settings that only locate the run are skipped."""
    if given is None:
        given = dotted_keys(now)
    for key in sorted(set(given) - set(LOCATION_KEYS)):
        diff = first_difference(dotted_value(saved, key), dotted_value(now, key), key)
        if diff:
            return diff
    return None


def resumed_config(folder: Path, name: str, wanted: Config, given: Iterable[str] | None) -> Config:
    """The saved config of the experiment (Ray restores it, whatever is asked now), refused,
    naming the first differing key, when a setting the user gave (`given`; None = every
    setting of `wanted`) differs from the saved one. Its storage is where the experiment was
    found now (`wanted`'s): a folder carried to another place resumes there."""
    saved = _saved_config(folder, name)
    diff = changed_setting(config_to_dict(saved), config_to_dict(wanted), given)
    if diff:
        raise ConfigError(f"--resume: the config differs from the one experiment {name!r} started with "
                          f"({diff}); resume without --config and --set to continue it as saved, "
                          f"or start a new --name")
    return saved.replace({"tune.storage_path": wanted.tune.storage_path})
