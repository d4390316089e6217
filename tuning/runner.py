"""Run (or resume) one tuning experiment on a local or remote Ray cluster.

Order matters: the space and the config are checked before Ray starts; the dataset is prepared
once by the driver, also before Ray starts, so the space is checked against it too (n_clusters
against the item count) and bad data fails without a Ray session; the resources are checked before
any trial is queued (Ray leaves GPU trials PENDING forever on a cluster without GPUs); the prepared
arrays go to Ray's object store. The experiment folder holds Ray's
files, the Optuna study (optuna.db) and the base config (experiment_config.json).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import signal
import socket
from pathlib import Path
from typing import Any, Iterable, Iterator

from tuning.config import Config
from tuning.experiment_folder import (absolute_paths, claim_experiment, experiment_name, is_uri, release_experiment,
                                      resumed_config, storage_root, optuna_db_folder)
from tuning.space import SearchSpace, flat_params
from tuning.space_checks import check_space_fits_data, validate_space
from tuning.summary import ExperimentInterrupted, experiment_summary
from tuning.lock import driver_lock
from runtime import sigterm_as_ctrl_c, signal_handlers_restored
from settings import ConfigError

logger = logging.getLogger(__name__)

TUNE_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}
#: the parameters the progress table shows, those of them every trial has (see _progress_columns)
PARAMETER_COLUMNS = ("backbone", "gamma", "icc_share", "n_clusters", "lr")


def _check_address(address: str) -> None:
    """Fail fast, naming the address, when nothing listens there (Ray would retry for minutes)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT "
                          f"(PORT a number from 1 to 65535)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConnectionError(f"no Ray cluster answers at {address!r} ({exc})") from None


def connect(address: str | None) -> bool:
    """Start a quiet private local Ray (no address) or join a running cluster; True if we started
    it. Without an address Ray would join any cluster `ray start` left running on the machine
    (or one RAY_ADDRESS names): address="local" always starts a new, private one."""
    import ray

    if ray.is_initialized():
        return False
    options = dict(log_to_driver=False, logging_level=logging.WARNING, configure_logging=True)
    if address is None:
        ray.init(address="local", include_dashboard=False, **options)
        return True
    _check_address(address)
    try:
        ray.init(address=address, **options)
    except ConnectionError as exc:
        raise ConnectionError(f"could not connect to the Ray cluster at {address!r}: {exc}") from None
    return True


def check_resources(config: Config) -> None:
    """Refuse requests the cluster can never meet, before trials wait for them forever."""
    import ray

    total = ray.cluster_resources()
    tune = config.tune
    if tune.trials_per_gpu > 0 and total.get("GPU", 0) <= 0:
        raise ConfigError(f"tune.trials_per_gpu: got {tune.trials_per_gpu}, but the Ray cluster has no GPU "
                          f"(resources: {_describe(total)}); allowed here: 0 (CPU only)")
    largest = max((node.get("Resources", {}).get("CPU", 0) for node in ray.nodes() if node.get("Alive")),
                  default=0)
    if tune.cpus_per_trial > largest:
        raise ConfigError(f"tune.cpus_per_trial: got {tune.cpus_per_trial:g}, but the largest node has "
                          f"{largest:g} CPUs; allowed: at most {largest:g}")


def _describe(resources: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items()) if k in ("CPU", "GPU", "memory"))


def _trainable(config: Config, arrays: dict | None, trainable: Any = None) -> Any:
    """train_trial on the prepared arrays, or the given `trainable`, with the trial's resources."""
    from ray import tune

    if trainable is None:
        from tuning.trainable import train_trial

        trainable = tune.with_parameters(train_trial, data=arrays)
    gpu = 1.0 / config.tune.trials_per_gpu if config.tune.trials_per_gpu else 0.0
    return tune.with_resources(trainable, {"cpu": config.tune.cpus_per_trial, "gpu": gpu})


def _local_experiment(config: Config, name: str) -> Path | None:
    """The experiment folder when storage is a local path (None for s3://, gs://, ...)."""
    root = storage_root(config)
    return None if is_uri(root) else Path(root) / name


def _callbacks(config: Config, name: str, scheduler: Any, trial_lines: bool) -> list | None:
    """The driver's callbacks: the state backup (local storage), ASHA's rung keeper and, with
    `trial_lines`, a line per finished trial (tuning.trial_lines)."""
    from tuning.asha import RungKeeper
    from tuning.state_backup import StateBackup

    callbacks = [StateBackup(local)] if (local := _local_experiment(config, name)) else []
    if config.tune.scheduler == "asha":
        callbacks.append(RungKeeper(scheduler))
    if trial_lines:
        from tuning.trial_lines import TrialLines

        callbacks.append(TrialLines(name))
    return callbacks or None


def progress_columns(config: Config) -> dict[str, str]:
    """Ray's progress columns of the searched parameters every trial has: its best-trial line
    looks each one up without a default, so a conditional one (n_clusters under KMeans only)
    would end the driver with a KeyError as soon as the best trial lacks it."""
    space = SearchSpace(config.tune.space, flat_params(config))
    return {f"params/{p}": p for p in PARAMETER_COLUMNS if space.always_active(p)}


def _run_config(config: Config, name: str, progress: bool, scheduler: Any, trial_lines: bool = False) -> Any:
    from ray import tune

    from model.contract import BEST_SO_FAR, METRIC

    reporter = None
    if progress:
        reporter = tune.CLIReporter(
            metric_columns={"epoch": "epoch", METRIC: "ndcg@10", BEST_SO_FAR: "best",
                            **{name: name.removeprefix("valid_") for name in config.tune.objectives if name != METRIC}},
            parameter_columns=progress_columns(config),
            max_progress_rows=12, max_error_rows=5, max_report_frequency=30, sort_by_metric=True)
    return tune.RunConfig(
        name=name, storage_path=storage_root(config), verbose=1 if progress else 0,
        progress_reporter=reporter,
        failure_config=tune.FailureConfig(max_failures=config.tune.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=METRIC,
                                                checkpoint_score_order="max"),
        callbacks=_callbacks(config, name, scheduler, trial_lines),
    )


def trial_dirname(trial: Any) -> str:
    """Short trial folder names (Ray's default spells out the whole config)."""
    return f"trial_{trial.trial_id}"


def _scheduler(config: Config) -> Any:
    """The trial scheduler `tune.scheduler` names (None: Ray's FIFO, every trial runs to its end)."""
    from model.contract import TIME_ATTR

    if config.tune.scheduler == "asha" and config.tune.prunes_on_front:
        from tuning.pareto_asha import ParetoASHA

        return ParetoASHA(config.tune.objectives, time_attr=TIME_ATTR, max_t=config.train.epochs,
                          grace_period=min(config.tune.grace_period, config.train.epochs),
                          reduction_factor=config.tune.reduction_factor)
    if config.tune.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(time_attr=TIME_ATTR, max_t=config.train.epochs,
                             grace_period=min(config.tune.grace_period, config.train.epochs),
                             reduction_factor=config.tune.reduction_factor)
    if config.tune.scheduler == "hyperband":
        from ray.tune.schedulers import HyperBandForBOHB

        return HyperBandForBOHB(time_attr=TIME_ATTR, max_t=config.train.epochs,
                                reduction_factor=config.tune.reduction_factor)
    return None


def _tune_config(config: Config, searcher: Any, scheduler: Any) -> Any:
    from ray import tune

    from model.contract import MODE

    # Ray's schedulers take one metric: ASHA compares trials on tune.prune_metric alone (the
    # Pareto ASHA reads every objective itself and ignores it)
    return tune.TuneConfig(metric=config.tune.pruned_on, mode=MODE, search_alg=searcher, scheduler=scheduler,
                           num_samples=config.tune.num_samples,
                           max_concurrent_trials=config.tune.max_concurrent_trials or None,
                           reuse_actors=config.tune.reuse_actors, trial_dirname_creator=trial_dirname,
                           trial_name_creator=trial_dirname)


@contextlib.contextmanager
def _quiet_tune() -> Iterator[None]:
    """Ray's newer console output prints every metric of every finished trial (pages with our ~100
    metrics) and ignores the CLIReporter; it and a snapshot warning (snapshots are wanted here:
    they keep resume exact) are switched by environment variables that fit() reads."""
    old = {key: os.environ.get(key) for key in TUNE_ENV}
    os.environ.update(TUNE_ENV)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _prepare_arrays(config: Config, progress: bool) -> dict:
    from datasets.prepare import prepare_dataset

    return prepare_dataset(config.data, progress=progress).to_arrays()


def run_experiment(config: Config, address: str | None = None, resume: bool = False,
                   progress: bool = True, given: Iterable[str] | None = None, trainable: Any = None,
                   trial_lines: bool = False) -> dict:
    """Run the experiment of `config` (or continue it with `resume`); return its summary dict.

    With `resume` the saved config runs, and the settings named in `given` (None: all of them;
    launch.py passes those its --config and --set write) must equal the saved ones, so a changed
    setting is refused instead of silently ignored. `--resume --name N` alone gives none.
    `trainable` replaces the training trial (tuning.trainable.train_trial on the prepared data)
    with another Tune function trainable of the same reports, e.g. tuning.replay's replay of
    recorded learning curves; the dataset is then neither prepared nor checked against the space.
    `trial_lines` (with progress off: a study's searches) prints a line per finished trial
    instead of Ray's table; like `progress`, it is fixed when the experiment starts.
    Raises ConfigError or DataError for bad input before Ray starts (the space is checked against
    the prepared data too), ConnectionError for an address that does not answer, and
    ExperimentInterrupted (carrying the partial summary) if the run was stopped, AllTrialsErrored
    (a ValueError carrying the summary) if every trial raised, and ExperimentLocked (a
    ConfigError) while another driver runs the same experiment (tuning.lock).
    """
    name = experiment_name(config)
    if resume and not config.tune.name:
        raise ConfigError("tune.name: --resume needs the experiment's name (give --name or tune.name)")
    folder = optuna_db_folder(config, name)
    wanted = absolute_paths(config.replace({"tune.name": name}))
    config = resumed_config(folder, name, wanted, given) if resume else wanted
    validate_space(config.tune.space, config)
    check_device(config, address)
    if address is not None:
        _check_address(address)                 # before a long prepare
    release = None if resume else functools.partial(release_experiment, folder, claim_experiment(config, folder))
    moved = optuna_db_moved(config, name) if resume else contextlib.nullcontext()
    with driver_lock(folder, name), moved:      # one driver per experiment, until it ends
        return _run(config, name, folder, address, resume, progress, trainable, release, trial_lines)


def _run(config: Config, name: str, folder: Path, address: str | None, resume: bool, progress: bool,
         trainable: Any, release: Any, trial_lines: bool = False) -> dict:
    """run_experiment once the experiment is checked, claimed and locked: prepare the data,
    start Ray, fit, experiment_summary; `release` undoes the claim if no trial could start."""
    started = fitting = False
    try:
        arrays = None
        if trainable is None:
            arrays = _prepare_arrays(config, progress)
            check_space_fits_data(config.tune.space, config, int(arrays["n_items"]),
                                  int(arrays["item_text_emb"].shape[1]), config.data.name)
        started = connect(address)
        tuner = (_resume_tuner if resume else _new_tuner)(config, name, folder, arrays, progress, trainable,
                                                          trial_lines)
        fitting = True
        with _quiet_tune(), signal_handlers_restored(signal.SIGINT, signal.SIGUSR1), sigterm_as_ctrl_c():
            grid = tuner.fit()                          # a scheduler's SIGTERM saves, as Ctrl-C does
        summary = experiment_summary(grid, config, folder)
    except BaseException:
        if release is not None and not fitting:
            release()
        raise
    finally:
        if started:
            import ray

            ray.shutdown()
    if summary.get("interrupted"):
        raise ExperimentInterrupted(summary)
    if summary["trials"] and summary["errored"] == summary["trials"]:
        raise AllTrialsErrored(summary, _example_error(config, name, summary))
    return summary


def check_device(config: Config, address: str | None) -> None:
    """Refuse a train.device no trial can have, before Ray starts (otherwise every trial errors
    and the run "succeeds" with no result): Ray hides the GPUs from trials without a GPU share
    (tune.trials_per_gpu 0), and a local run checks the device as `train` does."""
    device = config.train.device
    if device.startswith("cuda") and not config.tune.trials_per_gpu:
        raise ConfigError(f"train.device: got {device!r} with tune.trials_per_gpu 0 (trials get no GPU); "
                          f"set tune.trials_per_gpu, or use auto or cpu")
    if address is None and device not in ("auto", "cpu"):
        from model.device import resolve_device

        resolve_device(device)


class AllTrialsErrored(ValueError):
    """Every trial of a finished run raised: no result at all (one line for the user, exit 2)."""

    def __init__(self, summary: dict, example: str):
        self.summary = summary
        super().__init__(f"every trial of experiment {summary['name']!r} errored ({summary['errored']} of "
                         f"{summary['trials']}); {example}")


def _example_error(config: Config, name: str, summary: dict) -> str:
    """'trial ID: <its error's first line> (<error.txt>)' for the first errored trial."""
    trial_id = next(t for t, state in summary["trial_states"].items() if state == "errored")
    local = _local_experiment(config, name)
    path = local / f"trial_{trial_id}" / "error.txt" if local else None
    line = error_line(path) if path else None
    return f"trial {trial_id}: {line} ({path})" if line else f"trial {trial_id} (see its error.txt)"


def error_line(path: Path) -> str | None:
    """The exception line (`Type: message`) of the last failure in a Ray error.txt."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    last = text.rsplit("Failure # ", 1)[-1].splitlines()[1:]
    lines = [line.strip() for line in last if line.strip() and not line[:1].isspace()]
    found = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", line)]
    return (found or lines or [None])[-1]


def _new_tuner(config: Config, name: str, folder: Path, arrays: dict | None, progress: bool,
               trainable: Any = None, trial_lines: bool = False) -> Any:
    from ray import tune

    from tuning.search import make_searcher

    check_resources(config)
    trainable = _trainable(config, arrays, trainable)
    searcher = make_searcher(config, folder, name)
    scheduler = _scheduler(config)
    return tune.Tuner(trainable, tune_config=_tune_config(config, searcher, scheduler),
                      run_config=_run_config(config, name, progress, scheduler, trial_lines))


def optuna_db_moved(config: Config, name: str) -> contextlib.AbstractContextManager:
    """Ray's saved searcher opens its Optuna database at the absolute path the experiment started
    at: one carried to another path (another machine, another checkout) failed deep in SQLAlchemy
    ("unable to open database file"). While the context is active, that path opens the copy
    where the experiment now is; Ray saves the searcher again with the new path."""
    from tuning.optuna_db import saved_storage_url, storage_url

    local = _local_experiment(config, name)
    started = saved_storage_url(local) if local is not None else None
    if started is None or started == storage_url(local):
        return contextlib.nullcontext()
    import optuna

    from tuning.adapters import storage_url_moved

    logger.warning("experiment %r was started at %s: its Optuna database is opened where it is now, %s",
                   name, Path(started.removeprefix("sqlite:///")).parent, local)
    return storage_url_moved(optuna.storages.RDBStorage, started, storage_url(local))


def _resume_tuner(config: Config, name: str, folder: Path, arrays: dict | None, progress: bool,
                  trainable: Any = None, trial_lines: bool = False) -> Any:
    """Tuner.restore, after putting back a last good experiment state and any checkpoint the dead
    driver deleted before saving the state (tuning.checkpoint_hold; an empty stand-in for one gone
    without a copy, so its trial restarts instead of erroring), and rebuilding a missing
    or broken Optuna study from Ray's trial records. `progress` and `trial_lines` are those the
    experiment started with: Ray restores its run config, reporter and callbacks included."""
    from ray import tune

    from tuning.optuna_db_rebuild import ensure_optuna_db

    check_resources(config)
    trainable = _trainable(config, arrays, trainable)
    local = _local_experiment(config, name)
    if local is not None:
        from tuning.checkpoint_hold import put_back, stand_in_for_missing
        from tuning.state_backup import repair

        repair(local)
        put_back(local)
        stand_in_for_missing(local)
    path = f"{storage_root(config).rstrip('/')}/{name}"
    ensure_optuna_db(folder, name, path, SearchSpace(config.tune.space, flat_params(config)),
                 tuple(config.tune.objectives))
    return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False)
