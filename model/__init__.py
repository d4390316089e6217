"""The LLM-ESR model with the item-cluster constraint, its trainer and `train_once`."""

from __future__ import annotations

from typing import Callable


def build_trainer(config, data):
    """A Trainer for the root Config on prepared `data`, with the cluster artifact (built or
    loaded from the cache, in the model's hidden-size space) when model.gamma > 0."""
    from model.llmesr import pca_matrix
    from model.trainer import Trainer

    clusters = None
    if config.model.gamma > 0:
        from cluster_prep import build_clusters

        item_pca = pca_matrix(data, config.model.hidden_size)
        clusters = build_clusters(data, config.clusters, config.data.cache_dir, item_pca)
    return Trainer(config.model, config.train, data, clusters, config.eval)


def train_once(config, on_epoch: Callable | None = None, progress: bool = False):
    """Prepare the data, train with early stopping and return the TrainResult.
    `config` is the root tuning.config.Config."""
    from datasets import prepare_dataset

    data = prepare_dataset(config.data, progress)
    return build_trainer(config, data).fit(on_epoch)


__all__ = ["build_trainer", "train_once"]
