"""Options of item clustering (the `clusters:` section of a config file)."""

from __future__ import annotations

from dataclasses import dataclass

from settings import setting

METHODS = ("kmeans", "hdbscan")


def n_clusters_limit(n_items: int) -> int:
    """The most KMeans clusters `n_items` items allow (one item per cluster): the one bound on
    clusters.n_clusters, checked by the clustering and by the search space before Ray starts."""
    return n_items


@dataclass
class ClusterConfig:
    method: str = setting("kmeans", "clustering algorithm", choices=METHODS)
    n_clusters: int = setting(64, "KMeans cluster count (HDBSCAN finds its own)", low=2)
    dim: int = setting(8, "PCA dimensions the clustering runs in", low=1)
    min_cluster_size: int = setting(5, "HDBSCAN minimum cluster size", low=2)
    min_samples: int = setting(0, "HDBSCAN neighbours that make a point a core point (higher = more "
                               "noise items); 0 = HDBSCAN's default, min_cluster_size", low=0)
    soft: bool = setting(False, "membership-weighted centers instead of the hard cluster center")
    soft_temperature: float = setting(
        1.0, "soft: softmax temperature, in units of the mean squared distance of items to their "
        "own center in the clustering space", low=0, low_open=True)
    silhouette_sample: int = setting(2000, "items sampled for the silhouette score (0 = skip it)", low=0)
    seed: int = setting(42, "seed of the reduction and KMeans")
