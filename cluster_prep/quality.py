"""Quality figures written beside each cluster artifact (for people and the results tables)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import silhouette_score


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


def quality_report(low: np.ndarray, labels: np.ndarray, n_clusters: int, sample: int,
                   seed: int) -> dict[str, Any]:
    sizes = np.bincount(labels[labels >= 0], minlength=n_clusters)
    return {
        "n_items": int(labels.shape[0]),
        "n_clusters": int(n_clusters),
        "sizes": sizes.astype(int).tolist(),
        "min_size": int(sizes.min()) if sizes.size else 0,
        "max_size": int(sizes.max()) if sizes.size else 0,
        "noise_share": float((labels < 0).mean()) if labels.size else 0.0,
        "silhouette": silhouette(low, labels, sample, seed),
        "silhouette_sample": int(sample),
    }
