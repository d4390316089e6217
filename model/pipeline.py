"""From a prepared dataset to a trained model: dataset -> clusters -> model -> batches -> trainer.

`train` (launch.py), the Ray trial (tuning/trainable.py), `reproduce`, the study and the
benchmarks all assemble a run here, so they cannot drift apart. Whether the item-cluster
constraint (ICC) is on is decided by model.icc.icc_on, asked here once: the model is built with
its ICC term (model.icc) or without, and the term's weight is calibrated here from icc_share;
the Trainer below only runs the loop.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from cluster_prep.config import ClusterConfig
from datasets.cache import NOT_IN_KEY
from datasets.config import DataConfig
from datasets.prepared import PreparedDataset
from model.batches import TrainBatches
from model.config import EvalConfig, ModelConfig, TrainConfig, check_heads
from model.device import apply_torch_settings, resolve_device, rng_devices, torch_rng_state
from model.icc import calibrate_share, icc_on
from model.llmesr import LLMESR, build_model
from model.sequences import capped_max_len
from model.trainer import EpochReport, Trainer, TrainResult
from runtime import write_atomic

logger = logging.getLogger(__name__)


class RunConfig(Protocol):
    """The sections of the root Config (tuning.config.Config) a run reads: typed here without
    importing the layer above."""

    data: DataConfig
    clusters: ClusterConfig
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig


def icc_clusters(config: RunConfig, data: PreparedDataset) -> Any | None:
    """The cluster artifact (built, or loaded from the cache, in the model's hidden-size space)
    when ICC is on, else None: a run without ICC never pays for clustering."""
    return run_clusters(config, data) if icc_on(config.model) else None


def run_clusters(config: RunConfig, data: PreparedDataset) -> Any:
    """The cluster artifact a run of `config` uses (centers in the model's hidden-size PCA
    space), built or read from the cache: `launch.py clusters` warms the entry trials read."""
    from cluster_prep.build import build_clusters
    from model.llmesr import pca_matrix

    item_pca = pca_matrix(data, config.model.hidden_size)
    return build_clusters(data, config.clusters, config.data.cache_dir, item_pca)


def seeded_model(model_cfg: ModelConfig, data: PreparedDataset, clusters: Any | None, seed: int,
                 device: torch.device) -> tuple[LLMESR, dict]:
    """build_model under torch seed `seed`, on `device`, and the torch RNG state right after it
    (the run's dropout stream starts there), without touching the caller's global RNG: the same
    seed gives the same weights and the same dropout masks in any process."""
    with torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(seed)
        model = build_model(model_cfg, data, clusters).to(device)
        return model, torch_rng_state(device)


def assemble_trainer(model_cfg: ModelConfig, train_cfg: TrainConfig, data: PreparedDataset, clusters: Any | None = None,
                     eval_cfg: EvalConfig | None = None) -> Trainer:
    """A Trainer from its parts; `clusters` reach the model only when ICC is on, so a run without
    ICC trains exactly as one without any clusters. With icc_share the ICC weight is calibrated
    on the run's own seeded batches before the first step."""
    check_heads(model_cfg)
    max_len, note = capped_max_len(model_cfg.max_len, data)     # the one effective max_len
    model_cfg = replace(model_cfg, max_len=max_len)
    notes = [note] if note else []
    device = resolve_device(train_cfg.device)
    apply_torch_settings(device, train_cfg.deterministic, train_cfg.num_threads)
    model, dropout_rng = seeded_model(model_cfg, data, clusters if icc_on(model_cfg) else None, train_cfg.seed, device)
    batches = TrainBatches(data, model_cfg, device, train_cfg.seed, train_cfg.windows, train_cfg.window_stride)
    if model.icc is not None and model_cfg.icc_share > 0:
        note = calibrate_share(model, batches, model_cfg.icc_share, train_cfg.batch_size, train_cfg.seed + 2)
        notes += [note] if note else []
    return Trainer(model, batches, train_cfg, data, dropout_rng, eval_cfg, notes)


def build_trainer(config: RunConfig, data: PreparedDataset) -> Trainer:
    """The Trainer of the root Config (its model, train, eval, clusters and data sections) on
    the prepared `data`."""
    return assemble_trainer(config.model, config.train, data, icc_clusters(config, data), config.eval)


def trainer_from_arrays(config: RunConfig, arrays: dict) -> Trainer:
    """build_trainer on a dataset shipped as plain arrays (a Ray trial gets it from the object
    store, so trials need no shared disk)."""
    return build_trainer(config, PreparedDataset.from_arrays(arrays))


def train_once(config: RunConfig, on_epoch: Callable[[EpochReport], None] | None = None,
               progress: bool = False) -> TrainResult:
    """Prepare the data, train with early stopping and return the TrainResult."""
    from datasets.prepare import prepare_dataset

    check_heads(config.model)                  # before the data: a bad config costs nothing
    data = prepare_dataset(config.data, progress)
    return build_trainer(config, data).fit(on_epoch)


def train_resumable(config: RunConfig, checkpoint: Path, progress: bool = False, label: str = "") -> TrainResult:
    """train_once that saves the trainer's whole state to `checkpoint` after every epoch and,
    started again with the same run settings, continues from it exactly (the state carries every
    RNG, as a Ray trial's checkpoint does): a run ended part way, by a session's end or a killed
    worker, loses at most one epoch. The caller deletes `checkpoint` once it has kept the result.
    `label`: a line per epoch on stderr, "<label>: epoch E/N, valid NDCG@10 V (S s)", so a pool of
    half-hour runs shows it is alive between its runs' results."""
    from datasets.prepare import prepare_dataset

    check_heads(config.model)
    data = prepare_dataset(config.data, progress)
    trainer = build_trainer(config, data)
    settings = run_settings_text(config)
    state = read_checkpoint(checkpoint, settings)
    if state is not None:
        trainer.load_state_dict(state)
        trainer.notes.append(f"continued from the checkpoint of epoch {trainer.epoch}")
    def after_epoch(report: EpochReport) -> None:
        write_checkpoint(checkpoint, settings, trainer)
        if label:
            print(f"{label}: epoch {report.epoch}/{config.train.epochs}, valid NDCG@10 "
                  f"{report.valid['ndcg_10']:.4f} ({report.seconds:.0f} s)", file=sys.stderr, flush=True)

    return trainer.fit(after_epoch)


#: The config sections a run trains by. The others (tune, study, dose) say where a run's files live
#: and which runs a plan holds, never how one trains: a moved, renamed or grown plan keeps its runs.
RUN_SECTIONS = ("data", "clusters", "model", "train", "eval")


def run_settings(config_dict: dict[str, Any]) -> dict[str, Any]:
    """A config dict's RUN_SECTIONS: the one rule for "these two runs train alike". The data
    settings that never change the prepared data (datasets.cache.NOT_IN_KEY: where inputs and the
    cache lie, permissions, speed knobs) are left out: a Ray trial writes the locations absolute,
    so a study moved to another folder or machine would otherwise retrain every confirmation."""
    sections = {name: dict(config_dict[name]) for name in RUN_SECTIONS}
    sections["data"] = {key: value for key, value in sections["data"].items() if key not in NOT_IN_KEY}
    return sections


def run_settings_text(config: RunConfig) -> str:
    """Every setting a run trains by (run_settings), as one canonical text: a checkpoint continues
    only the run it was written by."""
    sections = run_settings({name: asdict(getattr(config, name)) for name in RUN_SECTIONS})
    return json.dumps(sections, sort_keys=True, default=str)


def same_run_settings(saved: Any, settings: str) -> bool:
    """Whether a checkpoint's saved settings text names this run, judged by run_settings: a text
    that also holds data locations (written before they left the key, or by another machine), or
    lacks a setting added since (with_defaults), still continues the run."""
    if saved == settings:
        return True
    try:
        return run_settings(with_defaults(json.loads(saved))) == json.loads(settings)
    except (TypeError, ValueError, KeyError, AttributeError):
        return False


#: The dataclass of each RUN_SECTIONS section, whose defaults fill a setting an old text lacks.
SECTION_TYPES = {"data": DataConfig, "clusters": ClusterConfig, "model": ModelConfig, "train": TrainConfig,
                 "eval": EvalConfig}


def with_defaults(sections: dict[str, Any]) -> dict[str, Any]:
    """Run settings saved by older code, as the current code writes them: a setting added since
    appears with its default, which keeps the old behaviour (the rule results' `comparable` applies
    to run files, kept here without importing the layers above)."""
    return {name: {**asdict(SECTION_TYPES[name]()), **sections[name]} for name in RUN_SECTIONS}


def write_checkpoint(path: Path, settings: str, trainer: Trainer) -> None:
    """The trainer's state with its run's settings, written whole or not at all. A write that
    fails (a full disk) is logged and the run goes on: the checkpoint only saves time."""
    buffer = io.BytesIO()
    torch.save({"settings": settings, "trainer": trainer.state_dict()}, buffer)
    try:
        write_atomic(path, buffer.getvalue())
    except OSError as exc:
        logger.warning("could not write the run's checkpoint %s (%s); the run goes on without it", path, exc)


def read_checkpoint(path: Path, settings: str) -> dict | None:
    """The trainer state saved at `path` by a run with these `settings`; None (start afresh) when
    there is none, it is unreadable, or another run wrote it."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint restarts the run, it does not end it
        logger.warning("checkpoint %s is unreadable (%s: %s); the run starts afresh", path, type(exc).__name__, exc)
        return None
    if not same_run_settings(saved.get("settings"), settings):
        logger.warning("checkpoint %s was written by a run with other settings; the run starts afresh", path)
        return None
    return saved["trainer"]
