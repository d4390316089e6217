"""Quality figures written beside each cluster artifact (for people and the results tables).

A high silhouette does not make a clustering useful for the item-cluster constraint: HDBSCAN
(default settings) on ml-100k's items finds 2 clusters, one holding 80 % of the items, and the
constraint then pulls most items to the same center. `largest_share` (the largest cluster's
share of ALL items, noise included) and `degenerate` flag that. Degenerate means fewer than 2
clusters, or a largest share above DEGENERATE_SHARE (50 %: one cluster outweighs all others and
the noise together); with exactly 2 clusters, where half is the balanced share, above 1.5 times
that (75 %).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import silhouette_score

DEGENERATE_SHARE = 0.5
BALANCED_FACTOR = 1.5   # 2 clusters: degenerate above 1.5 x the balanced share 1/2


def silhouette(low: np.ndarray, labels: np.ndarray, sample: int, seed: int) -> float | None:
    """Silhouette of the clustered (non-noise) items, on a seeded sample; None if undefined."""
    keep = labels >= 0
    x, y = low[keep], labels[keep]
    n_labels = np.unique(y).size
    if sample <= 0 or n_labels < 2 or n_labels > x.shape[0] - 1:
        return None
    size = min(sample, x.shape[0])
    if size <= n_labels:
        return None
    return float(silhouette_score(x, y, sample_size=size, random_state=seed))


def degenerate_limit(n_clusters: int) -> float:
    """The largest share above which a clustering of `n_clusters` clusters counts as degenerate."""
    return max(DEGENERATE_SHARE, BALANCED_FACTOR / max(n_clusters, 1))


def is_degenerate(largest_share: float, n_clusters: int) -> bool:
    return n_clusters < 2 or largest_share > degenerate_limit(n_clusters)


def degenerate_warning(quality: dict[str, Any]) -> str | None:
    """One line for people when the clustering is degenerate (None when it is not or unknown)."""
    if not quality.get("degenerate"):
        return None
    k, share = int(quality.get("n_clusters", 0)), float(quality.get("largest_share", 0.0))
    if k < 2:
        what = f"{k} cluster(s) found"
    else:
        what = f"the largest of {k} clusters holds {share:.0%} of the items (limit {degenerate_limit(k):.0%})"
    return (f"degenerate clustering: {what}; the item-cluster constraint would pull most items to one "
            f"center. Try another clusters.method, n_clusters or min_cluster_size")


def quality_report(low: np.ndarray, labels: np.ndarray, n_clusters: int, sample: int,
                   seed: int) -> dict[str, Any]:
    sizes = np.bincount(labels[labels >= 0], minlength=n_clusters)
    largest = float(sizes.max() / labels.shape[0]) if sizes.size and labels.size else 0.0
    return {
        "n_items": int(labels.shape[0]),
        "n_clusters": int(n_clusters),
        "sizes": sizes.astype(int).tolist(),
        "min_size": int(sizes.min()) if sizes.size else 0,
        "max_size": int(sizes.max()) if sizes.size else 0,
        "largest_share": largest,
        "degenerate": is_degenerate(largest, n_clusters),
        "noise_share": float((labels < 0).mean()) if labels.size else 0.0,
        "silhouette": silhouette(low, labels, sample, seed),
        "silhouette_sample": int(sample),
    }
