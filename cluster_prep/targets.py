"""What each item is pulled towards by the item-cluster constraint.

Hard: the center (collaborative space) of the item's own cluster. Soft: a membership-weighted
mix of all centers, with weights w_ik = softmax_k(-||z_i - c_k||^2 / (T * s2)), z_i the item's
reduced vector, c_k the low-dim centers, T = `soft_temperature` and s2 the mean squared distance
of clustered items to their own center (so T is scale-free: T = 1 weighs a center one typical
within-cluster spread away by 1/e). The same rule serves KMeans and HDBSCAN (scikit-learn's
HDBSCAN gives no cross-cluster memberships); HDBSCAN noise items stay unconstrained.
"""

from __future__ import annotations

import numpy as np


def squared_distances(low: np.ndarray, centers_low: np.ndarray) -> np.ndarray:
    """||z_i - c_k||^2 for every item and center (float64 [n, k])."""
    d2 = (low * low).sum(1)[:, None] - 2.0 * low @ centers_low.T + (centers_low * centers_low).sum(1)[None, :]
    return np.maximum(d2, 0.0)


def soft_weights(low: np.ndarray, labels: np.ndarray, centers_low: np.ndarray,
                 temperature: float) -> np.ndarray:
    """Membership weights (rows sum to 1) of every item over the clusters."""
    d2 = squared_distances(low, centers_low)
    member = labels >= 0
    own = d2[np.flatnonzero(member), labels[member]]
    spread = float(own.mean()) if own.size and own.mean() > 0 else 1.0
    logits = -d2 / (temperature * spread)
    logits -= logits.max(axis=1, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(axis=1, keepdims=True)


def item_targets(labels: np.ndarray, centers: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Target per item (float64 [n, H]); rows of unclustered (noise) items are zero."""
    out = np.zeros((labels.shape[0], centers.shape[1]), dtype=np.float64)
    member = labels >= 0
    if weights is None:
        out[member] = centers[labels[member]]
    else:
        out[member] = weights[member] @ centers
    return out
