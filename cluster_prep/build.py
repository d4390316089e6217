"""Build (or load from the cache) the cluster artifact of one setting.

Steps: PCA of the item text embeddings to `dim`, KMeans or HDBSCAN there, centers as the mean of
the members' collaborative (PCA, hidden-size) vectors, per-item targets, quality figures. All
per-item arrays come back id-aligned (n_items + 2 rows: padding 0 and mask n_items + 1 are -1 /
zero / unconstrained), so item i reads entry i: the seed code's off-by-one cannot recur silently.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from cluster_prep import cache
from cluster_prep.artifact import ClusterArtifact
from cluster_prep.assign import hdbscan_labels, kmeans_labels, member_means
from cluster_prep.config import METHODS, ClusterConfig, n_clusters_limit
from cluster_prep.quality import quality_report
from cluster_prep.reduce import reduce_embeddings
from cluster_prep.targets import item_targets, soft_weights
from datasets.prepared import PreparedDataset


def id_aligned(per_item: np.ndarray, fill: float | int | bool) -> np.ndarray:
    """Put rows of items 1..n (0-based input) at rows 1..n; rows 0 and n + 1 get `fill`."""
    shape = (per_item.shape[0] + 2, *per_item.shape[1:])
    out = np.full(shape, fill, dtype=per_item.dtype)
    out[1:-1] = per_item
    return out


def _check(data: PreparedDataset, cfg: ClusterConfig, item_pca: np.ndarray) -> None:
    if cfg.method not in METHODS:
        raise ValueError(f"clusters.method: got {cfg.method!r}; allowed: one of {', '.join(METHODS)}")
    if data.n_items < 2:
        raise ValueError(f"dataset {data.name!r}: {data.n_items} items; clustering needs at least 2")
    if cfg.method == "kmeans" and cfg.n_clusters > n_clusters_limit(data.n_items):
        raise ValueError(f"clusters.n_clusters: got {cfg.n_clusters}; allowed: at most the number "
                         f"of items of {data.name!r} ({n_clusters_limit(data.n_items)})")
    if item_pca.ndim != 2 or item_pca.shape[0] != data.n_items + 1:
        raise ValueError(f"item_pca: got shape {item_pca.shape}; allowed: [n_items + 1, H] = "
                         f"[{data.n_items + 1}, H] (row 0 = padding)")


def _key(data: PreparedDataset, cfg: ClusterConfig, item_pca: np.ndarray) -> str:
    source = data.meta.get("hash") or data.path or cache.digest(data.item_text_emb)
    return cache.cache_key({
        "data": source, "method": cfg.method, "n_clusters": cfg.n_clusters, "dim": cfg.dim,
        "seed": cfg.seed, "soft": cfg.soft, "soft_temperature": cfg.soft_temperature,
        "min_cluster_size": cfg.min_cluster_size, "silhouette_sample": cfg.silhouette_sample,
        **({"min_samples": cfg.min_samples} if cfg.min_samples else {}),    # keys of older artifacts stay
        "item_pca": cache.digest(item_pca),
    })


def compute_clusters(data: PreparedDataset, cfg: ClusterConfig,
                     item_pca: np.ndarray) -> ClusterArtifact:
    """Cluster without touching the cache (see `build_clusters`).

    Runs single-threaded: on thousands of items one thread is fastest, and BLAS/OpenMP thread
    pools fighting torch's (or parallel trials') threads made it 5-20x slower on a busy machine.
    """
    _check(data, cfg, np.asarray(item_pca))
    with threadpool_limits(limits=1):
        return _compute(data, cfg, item_pca)


def _compute(data: PreparedDataset, cfg: ClusterConfig, item_pca: np.ndarray) -> ClusterArtifact:
    t0 = time.perf_counter()
    low = reduce_embeddings(data.item_text_emb, data.n_items, cfg.dim, cfg.seed)
    t1 = time.perf_counter()
    if cfg.method == "kmeans":
        labels, centers_low = kmeans_labels(low, cfg)
        k = centers_low.shape[0]
    else:
        labels = hdbscan_labels(low, cfg)
        k = int(labels.max(initial=-1)) + 1
        centers_low = member_means(low, labels, k) if k else np.zeros((0, cfg.dim))
    t2 = time.perf_counter()
    pca_rows = np.asarray(item_pca, dtype=np.float64)[1:]
    centers = member_means(pca_rows, labels, k) if k else np.zeros((0, pca_rows.shape[1]))
    weights = soft_weights(low, labels, centers_low, cfg.soft_temperature) if cfg.soft and k else None
    targets = item_targets(labels, centers, weights)
    quality = quality_report(low, labels, k, cfg.silhouette_sample, cfg.seed)
    quality.update(soft=cfg.soft, soft_temperature=cfg.soft_temperature,
                   seconds_reduce=t1 - t0, seconds_cluster=t2 - t1,
                   seconds_total=time.perf_counter() - t0)
    return ClusterArtifact(
        method=cfg.method, n_clusters=k, dim=cfg.dim,
        labels=id_aligned(labels, -1),
        centers=centers.astype(np.float32),
        centers_low=centers_low.astype(np.float32),
        item_targets=id_aligned(targets.astype(np.float32), 0.0),
        constrained=id_aligned(labels >= 0, False),
        quality=quality,
    )


def build_clusters(data: PreparedDataset, cfg: ClusterConfig, cache_dir: str | Path,
                   item_pca: np.ndarray | None = None) -> ClusterArtifact:
    """The cluster artifact of `cfg` on `data`, computed once and then read from the cache.

    `item_pca` is the collaborative space the centers live in (default: data.item_pca, the
    ID-embedding initialisation); pass another id-aligned matrix to place centers elsewhere.
    """
    pca = np.asarray(data.item_pca if item_pca is None else item_pca)
    _check(data, cfg, pca)
    folder = Path(cache_dir) / "clusters" / _key(data, cfg, pca)
    found = cache.load(folder)
    if found is not None:
        return found
    return cache.save(compute_clusters(data, cfg, pca), folder)
