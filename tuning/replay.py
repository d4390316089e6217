"""Replay recorded learning curves as Ray Tune trials: the tuner on a tabular benchmark.

A table (bench/tabular.py records one) holds, for every configuration of a discrete space, the
metrics `train_trial` reported at each epoch up to an epoch cap (train.patience 0: full curves)
and the test metrics of the weights after each epoch. `replay_trial` is a Tune function trainable
that looks a trial's configuration up and reports those metrics epoch by epoch, stopping where
the trainer would (train.epochs, train.patience), with the same final report (test_* of the best
validation epoch, finished=True). The production search (searcher, ASHA, Tuner) then runs
unchanged over recorded curves, in seconds instead of hours, as in HPOBench or YAHPO.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from model import contract
from model.contract import FINISHED

#: the settings a table's curves do not depend on (where files live, threads, which more epochs
#: get tested) or that a replay may change within the recorded curves (how many epochs, patience)
UNRECORDED = {"data": ("data_root", "cache_dir"), "train": ("num_threads", "device", "eval_batch_size",
                                                              "epochs", "patience", "also_select")}
#: parameters that do not change the model when gamma is 0 (model.pipeline builds no clusters)
CLUSTER_PARAMETERS = ("n_clusters", "cluster_method")
#: settings added after tables were first recorded, left out of the key at their default so
#: that those tables still replay; any other value is keyed (its curves differ)
UNKEYED_AT_DEFAULT = {"train": {"select_metric": contract.SELECT_KEY}}
REPORTED_AT = "reported_at"          # wall clock of a replayed report: the order the searcher saw
CHECKPOINT_FILE = "replay.json"


def settings_key(config: Any, parameters: list[str]) -> str:
    """Hash of everything that shapes a table's curves except its searched `parameters`."""
    from tuning.config import config_to_dict
    from tuning.space import PARAMETERS

    data = config_to_dict(config)
    for section in ("tune", "study"):
        data.pop(section, None)
    for section, fields in UNRECORDED.items():
        for field in fields:
            data[section].pop(field, None)
    for section, defaults in UNKEYED_AT_DEFAULT.items():
        for field, default in defaults.items():
            if data[section].get(field) == default:
                data[section].pop(field)
    for name in parameters:
        section, field = PARAMETERS[name]
        data[section].pop(field, None)
    text = json.dumps({"settings": data, "parameters": sorted(parameters)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def model_key(params: Mapping[str, Any]) -> str:
    """The table key of flat parameter values: one key per distinct model, so with gamma 0 the
    cluster parameters are left out; numbers are written as floats (16 and 16.0 are one key)."""
    icc_off = float(params.get("gamma", 1.0)) == 0.0
    kept = {name: (float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value)
            for name, value in params.items() if not (icc_off and name in CLUSTER_PARAMETERS)}
    return json.dumps(kept, sort_keys=True)


def lookup(table: Mapping[str, Any], config: Any) -> dict:
    """The record of the model `config` (a root Config) trains, or a KeyError saying why not."""
    from tuning.space import flat_params

    parameters = list(table["parameters"])
    settings = settings_key(config, parameters)
    if settings != table["settings"]:
        raise KeyError(f"the trial's settings (key {settings}) are not the table's ({table['settings']}): "
                       f"replay with the config the table was recorded with")
    key = model_key(flat_params(config, parameters))
    if key not in table["records"]:
        raise KeyError(f"no recorded curve for {key}; the table holds {len(table['records'])} models")
    record = table["records"][key]
    if config.train.epochs > len(record["epochs"]):
        raise KeyError(f"train.epochs: got {config.train.epochs}; the table recorded "
                       f"{len(record['epochs'])} epochs")
    return record


def stops_after(epoch_metrics: Mapping[str, Any], epochs: int, patience: int) -> bool:
    """The trainer's stopping rule (model.contract.stops_after) after this recorded epoch (the
    recorded best epoch is the trainer's, whatever the patience)."""
    epoch = int(epoch_metrics["epoch"])
    return contract.stops_after(epoch, epoch - int(epoch_metrics["best_epoch"]), epochs, patience)


def replayed_reports(record: Mapping[str, Any], epochs: int, patience: int) -> Iterator[dict]:
    """The reports train_trial would make for this record: each epoch's metrics, the last one
    with the test metrics of the best validation epoch, finished and done."""
    for metrics in record["epochs"]:
        metrics = copy.deepcopy(dict(metrics))
        if not stops_after(metrics, epochs, patience):
            yield metrics
            continue
        best = record["test"][int(metrics["best_epoch"]) - 1]
        metrics.update({f"test_{key}": float(value) for key, value in best.items()})
        metrics[FINISHED] = True
        metrics["done"] = True
        yield metrics
        return


def _resumed_epoch(checkpoint: Any) -> int:
    """The last epoch a paused trial reported (0 without a checkpoint)."""
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return int(json.loads((Path(folder) / CHECKPOINT_FILE).read_text())["epoch"])


def _report(metrics: dict, pausable: bool) -> None:
    from ray import tune

    if not pausable:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / CHECKPOINT_FILE).write_text(json.dumps({"epoch": metrics["epoch"]}))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def replay_trial(config: dict, table: dict) -> None:
    """Ray Tune function trainable over a recorded table (config as train_trial receives it).
    Under HyperBandForBOHB, which pauses trials, each report carries a checkpoint of its epoch and
    a resumed trial goes on after it, as train_trial does from its checkpoints."""
    from ray import tune

    from tuning.config import config_from_dict

    cfg = config_from_dict(config["config"])
    record = lookup(table, cfg)
    pausable = cfg.tune.scheduler == "hyperband"
    done = _resumed_epoch(tune.get_checkpoint())
    for metrics in replayed_reports(record, cfg.train.epochs, cfg.train.patience):
        if metrics["epoch"] > done:
            _report({**metrics, REPORTED_AT: time.time()}, pausable)
