"""Item clusters for the item-cluster constraint: labels, centers and per-item targets."""

from __future__ import annotations

# tuning.config imports cluster_prep.config: load tuning first, or importing `cluster_prep`
# before `tuning` would meet cluster_prep.config half-initialised (a circular import).
import tuning  # noqa: F401  isort: skip
from cluster_prep.artifact import ClusterArtifact
from cluster_prep.build import build_clusters, compute_clusters
from cluster_prep.config import ClusterConfig
from cluster_prep.reduce import reduce_embeddings

__all__ = ["ClusterArtifact", "ClusterConfig", "build_clusters", "compute_clusters",
           "reduce_embeddings"]
