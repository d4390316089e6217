"""From a prepared dataset to a trained model: dataset -> clusters -> model -> trainer.

`train` (launch.py), the Ray trial (tuning/trainable.py), `reproduce`, the study and the
benchmarks all assemble a run here, so they cannot drift apart. Whether the item-cluster
constraint (ICC) is on is decided by model.icc.icc_on, asked here once: below this module the
model gets the cluster artifact (its ICC term) or None.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from cluster_prep.config import ClusterConfig
from datasets.config import DataConfig
from datasets.prepared import PreparedDataset
from model.config import EvalConfig, ModelConfig, TrainConfig, check_heads
from model.icc import icc_on
from model.trainer import EpochReport, Trainer, TrainResult


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


def assemble_trainer(model_cfg: ModelConfig, train_cfg: TrainConfig, data: PreparedDataset, clusters: Any | None = None,
                     eval_cfg: EvalConfig | None = None) -> Trainer:
    """A Trainer from its parts; `clusters` reach it only when ICC is on, so a run without ICC
    trains exactly as one without any clusters."""
    return Trainer(model_cfg, train_cfg, data, clusters if icc_on(model_cfg) else None, eval_cfg)


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
