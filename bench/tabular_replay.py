"""Searches replayed over a recorded table through the production path.

Each replay is one `tuning.runner.run_experiment` call (the searcher of `tune.sampler`, the scheduler of
`tune.scheduler`, Ray Tune's Tuner, the Optuna study) with `tuning.replay.replay_trial` as the
trainable: trials read their curves from the table instead of training. One Ray session serves
every replay (started here with `concurrent` CPUs, one per trial, actors reused). What a replay
leaves is read back from its experiment folder as events, one per reported epoch, in the order
the trials reported them, and the folder is then removed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tuning.replay import REPORTED_AT

REGISTER_TIMEOUT_S = 600
RAYLET_WAIT_S = 600                  # see _patient_raylet_wait

#: method name -> the tune settings it changes; "grid" is computed from the table, not replayed
METHODS: dict[str, dict[str, Any]] = {
    "tpe+asha": {"sampler": "tpe", "scheduler": "asha"},
    "random+asha": {"sampler": "random", "scheduler": "asha"},
    "tpe": {"sampler": "tpe", "scheduler": "none"},
    "random": {"sampler": "random", "scheduler": "none"},
    "bohb": {"sampler": "bohb", "scheduler": "hyperband"},     # needs the bohb extra
    "tpe+pareto-asha": {"sampler": "tpe", "scheduler": "asha", "prune_metric": "pareto"},   # two objectives
}
#: methods that need two or more tune.objectives (asked for by name, never by default)
MULTI_OBJECTIVE_METHODS = ("tpe+pareto-asha",)


def available_methods() -> list[str]:
    """The replayable methods by default: bohb only where hpbandster and ConfigSpace are
    installed; the multi-objective ones only when asked for."""
    import importlib.util

    bohb = all(importlib.util.find_spec(name) for name in ("hpbandster", "ConfigSpace"))
    return [m for m in METHODS if (m != "bohb" or bohb) and m not in MULTI_OBJECTIVE_METHODS]


@dataclass
class Event:
    """One reported epoch of one replayed trial."""
    trial: str
    epoch: int
    value: float                  # validation NDCG@10 of this epoch
    seconds: float                # the recorded epoch seconds
    key: str                      # the table key of the trial's model
    finished: bool                # the trial stopped by itself here (not by the scheduler)
    at: float                     # wall clock of the report (orders events across trials)
    point: list = field(default_factory=list)   # with 2+ objectives: each at the trial's best epoch so far


@dataclass
class Replay:
    method: str
    seed: int
    events: list[Event]
    best_key: str | None          # the model the search picked (best validation NDCG@10 of any trial)
    trials: int
    tune: dict = field(default_factory=dict)


def replay_config(table: Mapping[str, Any], tune: Mapping[str, Any], epochs: int, patience: int,
                  storage: str, name: str) -> Any:
    """The table's recorded config with the searched space and the replay's tune settings."""
    from tuning.config import config_from_dict

    space = {parameter: {"type": "categorical", "values": list(values)}
             for parameter, values in table["space"].items()}
    changes = {"train.epochs": epochs, "train.patience": patience, "tune.storage_path": storage,
               "tune.name": name, "tune.max_failures": 0, "tune.cpus_per_trial": 1.0, "tune.trials_per_gpu": 0,
               **{f"tune.{key}": value for key, value in tune.items()}, "tune.space": space}
    return config_from_dict(table["config"]).replace(changes)


def start_ray(concurrent: int) -> bool:
    """A private Ray session with `concurrent` CPUs (one per replayed trial); True if started here.
    Every replay starts its trial actors afresh: on a loaded machine (nice 19 beside a running
    experiment) their start-up outlasts Ray's 60 s registration timeout, so it is raised."""
    import logging
    import os

    import optuna
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)       # one "study created" line per replay
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_worker_register_timeout_seconds", str(REGISTER_TIMEOUT_S))
    # the raylet likewise waits 30 s for its agents' port files, then aborts (seen at nice 19)
    os.environ.setdefault("RAY_agent_register_timeout_ms", str(REGISTER_TIMEOUT_S * 1000))
    for name in ("RAY_gcs_rpc_server_connect_timeout_s", "RAY_py_gcs_connect_timeout_s",
                 "RAY_gcs_server_request_timeout_seconds"):
        os.environ.setdefault(name, str(REGISTER_TIMEOUT_S))
    with _patient_raylet_wait():
        ray.init(address="local", num_cpus=concurrent, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=True)
    return True


@contextlib.contextmanager
def _patient_raylet_wait() -> Iterator[None]:
    """Ray waits a fixed 30 s for its raylet to register; at nice 19 beside a busy study it
    registered later, ray.init failed and left orphan processes. Bench-only: the node lookup
    Ray polls (a private API) retries for up to RAYLET_WAIT_S instead."""
    import time

    from ray._private import services

    original = services.get_node

    def get_node(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + RAYLET_WAIT_S
        while True:
            try:
                return original(*args, **kwargs)
            except Exception as exc:      # RuntimeError, or RaySystemError while the GCS starts
                if time.monotonic() > deadline:
                    raise
                print(f"waiting for Ray's node to register: {exc}", file=sys.stderr, flush=True)
                time.sleep(1.0)

    services.get_node = get_node
    try:
        yield
    finally:
        services.get_node = original


def _results(trial: Path) -> Iterator[dict]:
    for line in (trial / "result.json").read_text().splitlines():
        if line.strip():
            yield json.loads(line)


def read_events(experiment: Path, objectives: Sequence[str] = ()) -> list[Event]:
    """Every reported epoch of the experiment's trials, in report order; with two or more
    `objectives`, each event carries the trial's point (their values at its best epoch so far)."""
    from tuning.config import config_from_dict
    from tuning.replay import model_key
    from tuning.space import flat_params

    events = []
    for trial in sorted(experiment.glob("trial_*")):
        params = json.loads((trial / "params.json").read_text())
        config = config_from_dict(params["config"])
        key = model_key(flat_params(config, list(params["params"])))
        for r in _results(trial):
            point = [float(r[f"best_{name}"]) for name in objectives] if len(objectives) > 1 else []
            events.append(Event(trial.name, int(r["epoch"]), float(r["valid_ndcg_10"]), float(r["epoch_seconds"]),
                                key, bool(r.get("finished", False)), float(r[REPORTED_AT]), point))
    return sorted(events, key=lambda e: (e.at, e.trial, e.epoch))


def run_replay(table: dict, method: str, seed: int, tune: Mapping[str, Any], epochs: int, patience: int,
               num_samples: int, concurrent: int) -> Replay:
    """One search of `method` (its settings over `tune`) with `seed`, replayed over `table`."""
    from ray import tune as ray_tune

    from tuning.runner import run_experiment
    from tuning.summary import ExperimentInterrupted
    from tuning.replay import model_key, replay_trial

    settings = {**tune, **METHODS[method], "search_seed": seed, "num_samples": num_samples,
                "max_concurrent_trials": concurrent}
    storage = tempfile.mkdtemp(prefix="tabular-replay-", dir=_fast_temp())
    try:
        name = f"{method.replace('+', '-')}-s{seed}-{uuid.uuid4().hex[:6]}"     # tune.name allows no '+'
        config = replay_config(table, settings, epochs, patience, storage, name)
        trainable = ray_tune.with_parameters(replay_trial, table=table)
        try:
            summary = run_experiment(config, progress=False, trainable=trainable)
        except ExperimentInterrupted as exc:
            # HyperBandForBOHB can end a search with a trial still paused in an unfilled bracket:
            # its reported epochs count; any other method stopping early is an error here
            if method != "bohb" or exc.summary["errored"]:
                raise
            summary = exc.summary
        _raise_errors(Path(summary["experiment"]), summary)
        events = read_events(Path(summary["experiment"]), config.tune.objectives)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    best = summary["best"]
    return Replay(method, seed, events, model_key(best["config"]) if best else None, summary["trials"], settings)


def _raise_errors(experiment: Path, summary: Mapping[str, Any]) -> None:
    """A replay with an errored trial measures nothing: stop, showing the first error."""
    if summary["errored"]:
        errors = sorted(experiment.glob("trial_*/error.txt"))
        detail = errors[0].read_text()[-2000:] if errors else "(no error.txt)"
        raise RuntimeError(f"replay {summary['name']}: {summary['errored']} trial(s) errored:\n{detail}")


def _fast_temp() -> str | None:
    """/dev/shm when there is one: the study's SQLite commits and Ray's files stay in memory."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None
