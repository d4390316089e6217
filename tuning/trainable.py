"""One Ray Tune trial: train the model of the trial's config, reporting and checkpointing each epoch.

The dataset arrives through Ray's object store (the driver puts it there once), so trials work on
any node without a shared disk. Cluster artifacts for the sampled (method, n_clusters) are built
here and cached on the node's disk. Each epoch reports the validation metrics as `valid_<key>`
with an explicit `epoch` (ASHA's time attribute, kept across resumes), for ICC trials the
clustering's `cluster_largest_share` and `cluster_degenerate`, and a checkpoint holding
everything needed to continue exactly. The final report of a trial that stops by itself carries
`test_<key>` metrics of its best-validation weights and `done: True`; a trial ASHA stops has none.
A non-finite loss raises in the trainer and fails the trial: it is never reported as a score.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from model.contract import FINISHED, epoch_metrics
from runtime import set_torch_threads, trial_threads

logger = logging.getLogger(__name__)

STATE_FILE = "trainer.pt"
METRICS_FILE = "metrics.json"
MAX_DISK_WAIT_S = 60.0


def cluster_metrics(trainer: Any) -> dict[str, Any]:
    """ICC trials only: how lopsided the trial's clustering is (cluster_prep.quality), so a result
    bought with a degenerate clustering is visible beside its score."""
    icc = trainer.model.icc
    if icc is None:
        return {}
    return {"cluster_largest_share": float(icc.quality.get("largest_share", math.nan)),
            "cluster_degenerate": bool(icc.quality.get("degenerate", False))}


def _where() -> dict[str, str]:
    import ray

    return {"node_ip": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id(),
            "hostname": socket.gethostname()}


def _restore(trainer: Any, checkpoint: Any) -> dict[str, Any] | None:
    """Load the trainer state of `checkpoint`; return its last metrics (None if unreadable)."""
    import torch

    try:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)
            metrics = json.loads((Path(folder) / METRICS_FILE).read_text())
        trainer.load_state_dict(state)
        return metrics
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint restarts the trial, it does not end it
        logger.warning("checkpoint %s is unreadable (%s: %s); the trial restarts from scratch",
                       getattr(checkpoint, "path", checkpoint), type(exc).__name__, exc)
        return None


def _report(trainer: Any, metrics: dict[str, Any]) -> None:
    """Report `metrics` with a checkpoint of the trainer (Ray keeps the best and the latest).

    A full disk while the checkpoint is written or copied to storage does not fail the trial
    (its retries would fail the same way, and an errored trial stays errored after a resume):
    the trial says so in one line and tries again, 1 s, 2 s, ... up to a minute apart, until
    space is freed. Nothing half-written is reported; Ctrl-C meanwhile leaves the trial
    unfinished, resumable from its last good checkpoint."""
    delay = 1.0
    while True:
        try:
            _checkpoint_and_report(trainer, metrics)
            return
        except OSError as exc:
            if not disk_full(exc):
                raise
            logger.warning("no space left on device for the checkpoint of epoch %s (%s); trying again in "
                           "%.0f s: free some space (or stop the run and --resume it later)",
                           metrics.get("epoch"), exc, delay)
            time.sleep(delay)
            delay = min(2 * delay, MAX_DISK_WAIT_S)


def disk_full(exc: OSError) -> bool:
    """ENOSPC (or EDQUOT), also as pyarrow's OSError, which carries the text but no errno."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)


def _checkpoint_and_report(trainer: Any, metrics: dict[str, Any]) -> None:
    import torch
    from ray import tune

    with tempfile.TemporaryDirectory() as folder:
        torch.save(trainer.state_dict(), Path(folder) / STATE_FILE)
        (Path(folder) / METRICS_FILE).write_text(json.dumps(metrics))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _final(trainer: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    out = dict(metrics)
    out.update({f"test_{key}": float(value) for key, value in trainer.test().items()})
    out[FINISHED] = True      # the trial stopped by itself (Tune also sets "done" when ASHA stops it)
    out["done"] = True
    return out


def train_trial(config: dict, data: dict) -> None:
    """Ray Tune function trainable. `config` = {"params": ..., "config": nested Config dict}."""
    from ray import tune

    from model.pipeline import trainer_from_arrays
    from tuning.config import config_from_dict

    cfg = config_from_dict(config["config"])
    set_torch_threads(trial_threads(cfg))
    trainer = trainer_from_arrays(cfg, data)
    where = _where()
    metrics: dict[str, Any] | None = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        metrics = _restore(trainer, checkpoint)
        if metrics is None:
            trainer = trainer_from_arrays(cfg, data)
    while True:
        if trainer.should_stop():
            if metrics is None:
                raise RuntimeError("the trainer stopped before its first epoch (check train.epochs)")
            _report(trainer, _final(trainer, {**metrics, **where}))
            return
        metrics = {**epoch_metrics(trainer.train_epoch()), **cluster_metrics(trainer), **where}
        if trainer.should_stop():
            _report(trainer, _final(trainer, metrics))
            return
        _report(trainer, metrics)
