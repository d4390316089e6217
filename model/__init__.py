"""The LLM-ESR model with the item-cluster constraint, its trainer and `train_once`."""

from __future__ import annotations

from typing import Callable


def train_once(config, on_epoch: Callable | None = None, progress: bool = False):
    """Prepare the data (and clusters when model.gamma > 0), train with early stopping and
    return the TrainResult. `config` is the root tuning.config.Config."""
    from datasets import prepare_dataset
    from model.llmesr import pca_matrix
    from model.trainer import Trainer

    data = prepare_dataset(config.data, progress)
    clusters = None
    if config.model.gamma > 0:
        from cluster_prep import build_clusters

        item_pca = pca_matrix(data, config.model.hidden_size)
        clusters = build_clusters(data, config.clusters, config.data.cache_dir, item_pca)
    trainer = Trainer(config.model, config.train, data, clusters)
    return trainer.fit(on_epoch)


__all__ = ["train_once"]
