"""Reduce item text embeddings to the low-dimensional space the clustering runs in.

Works on rows 1..n_items of the embedding matrix (row 0 is padding), so row j of the result is
item j + 1. Callers that index by item id must add the padding row back (see `build.py`).
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA


def item_rows(item_text_emb: np.ndarray, n_items: int) -> np.ndarray:
    """Rows 1..n_items of an id-aligned matrix, checked for shape and finiteness."""
    emb = np.asarray(item_text_emb)
    if emb.ndim != 2 or emb.shape[0] != n_items + 1:
        raise ValueError(
            f"item_text_emb: got shape {emb.shape}; allowed: [n_items + 1, D] = [{n_items + 1}, D] "
            "(row 0 = padding)")
    rows = emb[1:].astype(np.float64)
    if not np.isfinite(rows).all():
        raise ValueError("item_text_emb: holds NaN or infinite values")
    return rows


def reduce_embeddings(item_text_emb: np.ndarray, n_items: int, dim: int, seed: int) -> np.ndarray:
    """PCA of items 1..n to `dim` dimensions (float64 [n_items, dim]; row j = item j + 1)."""
    rows = item_rows(item_text_emb, n_items)
    limit = min(rows.shape)
    if dim > limit:
        raise ValueError(
            f"clusters.dim: got {dim}; allowed: at most min(n_items, embedding width) = {limit}")
    if dim == rows.shape[1]:
        return rows - rows.mean(axis=0)
    # eigh of the D x D covariance: ~30x faster than a full SVD for n_items >> D, deterministic
    solver = "covariance_eigh" if rows.shape[0] >= rows.shape[1] else "full"
    return PCA(n_components=dim, svd_solver=solver, random_state=seed).fit_transform(rows)
