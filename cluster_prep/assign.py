"""Cluster the reduced item vectors: KMeans (fixed count) or HDBSCAN (label -1 = noise).

Labels returned here are 0-based over items (entry j = item j + 1); `build.py` turns them into
the id-aligned array with padding and mask rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import HDBSCAN, KMeans

from cluster_prep.config import ClusterConfig

KMEANS_N_INIT = 1     # scikit-learn's own default for k-means++; 3 costs 3x for little gain


def kmeans_labels(low: np.ndarray, cfg: ClusterConfig) -> tuple[np.ndarray, np.ndarray]:
    """KMeans labels and the centers they were assigned by (labels = nearest center)."""
    km = KMeans(n_clusters=cfg.n_clusters, n_init=KMEANS_N_INIT, random_state=cfg.seed)
    labels, kept = compact_labels(km.fit_predict(low).astype(np.int64))
    return labels, km.cluster_centers_[kept].astype(np.float64)


def hdbscan_labels(low: np.ndarray, cfg: ClusterConfig) -> np.ndarray:
    """HDBSCAN labels (-1 = noise), numbered 0..k-1."""
    n = low.shape[0]
    if cfg.min_cluster_size > n:
        raise ValueError(f"clusters.min_cluster_size: got {cfg.min_cluster_size}; allowed: at most "
                         f"the number of items ({n})")
    if cfg.min_samples > n:
        raise ValueError(f"clusters.min_samples: got {cfg.min_samples}; allowed: at most the number of "
                         f"items ({n})")
    labels = HDBSCAN(min_cluster_size=cfg.min_cluster_size, min_samples=cfg.min_samples or None,
                     copy=True).fit_predict(low).astype(np.int64)
    return compact_labels(labels)[0]


def compact_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber the labels in use to 0..k-1 (keeping -1); also return the old ids kept.

    KMeans can leave a cluster empty when items repeat; an empty cluster has no center.
    """
    found = np.unique(labels[labels >= 0])
    remap = np.full(int(labels.max(initial=-1)) + 2, -1, dtype=np.int64)
    remap[found] = np.arange(found.size)
    return np.where(labels >= 0, remap[np.maximum(labels, 0)], -1), found


def member_means(vectors: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Mean of each cluster's members' rows (noise rows, label -1, are ignored)."""
    keep = labels >= 0
    sums = np.zeros((n_clusters, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, labels[keep], vectors[keep])
    counts = np.bincount(labels[keep], minlength=n_clusters).astype(np.float64)
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0).tolist()
        raise RuntimeError(f"clusters {empty[:10]} have no members (cannot form their centers)")
    return sums / counts[:, None]
