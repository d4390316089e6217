"""The table of the tabular benchmark: every model of a discrete space trained once, full curves.

A record holds what `tuning.trainable.train_trial` would report at every epoch up to the cap
(`epoch_metrics`: validation metrics, losses, epoch seconds), the test metrics of the weights
after each epoch (so the test of the best epoch within any prefix of the curve is known) and the
seconds each test evaluation took (not part of the epoch seconds), and the CPU seconds of each
epoch with its test evaluation and of the set-up (the cost on a free core: wall seconds grow with
whatever else runs on the machine). Records live one file per
model in <out>/<settings key>/, written atomically when the model is done: an interrupted
recording continues where it stopped, and a table with other settings never mixes in.
Recording uses worker processes (spawned, one torch thread each), each preparing the dataset
once from the cache the parent filled.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import socket
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Mapping

from runtime import worker_process, write_atomic
from tuning.replay import model_key, settings_key

_WORKER: dict[str, Any] = {}             # per recording process: the prepared dataset


def distinct_models(space: Mapping[str, list]) -> list[dict]:
    """One parameter dict per distinct model of the grid `space` (name -> values), in grid order:
    with gamma 0 the cluster parameters change nothing, so only their first value is kept."""
    models: dict[str, dict] = {}
    for values in itertools.product(*space.values()):
        params = dict(zip(space, values))
        models.setdefault(model_key(params), params)
    return list(models.values())


def table_folder(out: str | Path, base: Any, space: Mapping[str, list]) -> Path:
    """<out>/<settings key>-e<epoch cap>: other settings or another cap never share a folder."""
    return Path(out) / f"{settings_key(base, list(space))}-e{base.train.epochs}"


def record_path(folder: Path, params: Mapping[str, Any]) -> Path:
    digest = hashlib.sha256(model_key(params).encode()).hexdigest()[:12]
    return folder / f"{params.get('backbone', 'model')}-{digest}.json"


# ---- recording (runs in the worker processes) ------------------------------------------------
def _start_worker(base: dict, threads: int) -> None:
    """Process initializer: torch threads, quiet environment, the prepared dataset (cached)."""
    worker_process(threads)
    from datasets.prepare import prepare_dataset
    from tuning.config import config_from_dict

    _WORKER["data"] = prepare_dataset(config_from_dict(base).data, progress=False)


def record_model(base: dict, params: dict) -> dict:
    """Train one model to the epoch cap; its per-epoch reports, test metrics and timings."""
    from model.pipeline import build_trainer
    from tuning.config import config_from_dict
    from tuning.space import trial_config
    from tuning.trainable import epoch_metrics

    config = trial_config(config_from_dict(base), params)
    started, started_cpu = time.perf_counter(), time.process_time()
    trainer = build_trainer(config, _WORKER["data"])
    setup, setup_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    epochs, cpu, tests, test_seconds = [], [], [], []
    while not trainer.should_stop():
        start_cpu = time.process_time()
        epochs.append(epoch_metrics(trainer.train_epoch()))
        start = time.perf_counter()
        tests.append(trainer.evaluate("test"))
        test_seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    import torch

    return {"params": params, "key": model_key(params), "epochs": epochs, "test": tests,
            "epoch_cpu_seconds": cpu, "test_seconds": test_seconds, "setup_seconds": setup,
            "setup_cpu_seconds": setup_cpu,
            "recorded": {"host": socket.gethostname(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                         "torch_threads": torch.get_num_threads(), "device": _device_name(trainer)}}


def _device_name(trainer: Any) -> str:
    """Where the epochs ran (epoch seconds on a GPU are not CPU seconds)."""
    import torch

    device = torch.device(trainer.device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


# ---- the driver ------------------------------------------------------------------------------
def missing_models(folder: Path, models: list[dict]) -> list[dict]:
    return [params for params in models if not record_path(folder, params).is_file()]


def record_table(base: Any, space: Mapping[str, list], out: str | Path, workers: int = 2,
                 threads: int = 1, log: Callable[[str], None] = print, limit: int = 0) -> Path:
    """Record every missing model of `space` (the first `limit` of them if > 0) with `workers`
    processes; return the table folder. Imports no Ray: a bare GPU machine can record."""
    from datasets.prepare import prepare_dataset
    from tuning.config import config_to_dict

    if base.train.patience != 0:
        raise ValueError(f"train.patience: got {base.train.patience}; a table records full curves (0)")
    folder = table_folder(out, base, space)
    todo = missing_models(folder, distinct_models(space))
    todo = todo[:limit] if limit > 0 else todo
    write_atomic(folder / "table.json", json.dumps({"settings": settings_key(base, list(space)), "space": dict(space),
                                                    "epochs": base.train.epochs, "config": config_to_dict(base)}))
    log(f"table {folder}: {len(todo)} of {len(distinct_models(space))} models to record "
        f"(train.device {base.train.device}, {workers} processes x {threads} threads)")
    if not todo:
        return folder
    prepare_dataset(base.data, progress=False)       # once here: workers then read the cache
    context = get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(config_to_dict(base), threads)) as pool:
        futures = {pool.submit(record_model, config_to_dict(base), params): params for params in todo}
        for done, future in enumerate(as_completed(futures), start=1):
            record = future.result()
            write_atomic(record_path(folder, futures[future]), json.dumps(record))
            seconds = sum(e["epoch_seconds"] for e in record["epochs"])
            log(f"  [{done}/{len(todo)}] {time.strftime('%H:%M:%S')} {record['key']}: best valid NDCG@10 "
                f"{max(e['valid_ndcg_10'] for e in record['epochs']):.4f}, {seconds:.0f} s on "
                f"{record['recorded']['device']}")
    return folder


def load_table(folder: str | Path) -> dict:
    """The table as tuning.replay reads it: settings key, parameters, cap and records by key."""
    folder = Path(folder)
    meta = json.loads((folder / "table.json").read_text())
    records = {}
    for params in distinct_models(meta["space"]):
        path = record_path(folder, params)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model {model_key(params)} is not recorded yet; run --record")
        record = json.loads(path.read_text())
        records[record["key"]] = record
    return {"settings": meta["settings"], "parameters": list(meta["space"]), "space": meta["space"],
            "epochs": meta["epochs"], "config": meta["config"], "records": records}


def estimate_seconds(measured: Mapping[str, Mapping[str, float]], models: list[dict], epochs: int,
                     workers: int) -> float:
    """Recording time on free cores: per backbone, measured CPU seconds of the set-up and of one
    epoch with its test evaluation (a 1-epoch table, --measure), summed over `models`, shared by
    `workers` processes."""
    total = sum(measured[m["backbone"]]["setup"] + measured[m["backbone"]]["epoch"] * epochs for m in models)
    return total / workers
