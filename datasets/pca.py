"""PCA of item embeddings: the initialisation of the collaborative (ID) view."""

from __future__ import annotations

import numpy as np

from datasets.errors import DataError

PCA_STD = 0.1   # overall std of the returned entries: small, like a usual embedding init


def pca_reduce(embeddings: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """float32 [n_items + 1, dim], row 0 zero; PCA fitted on rows 1.. (row 0 is padding).

    The projection is rescaled by one global factor so its entries have std PCA_STD (0.1): the
    relative variance of the components is kept (leading components stay the largest) while the
    scale suits an embedding initialisation whatever the source embedder's norm. When `dim`
    exceeds the components available (min(n_items, D)), the extra columns are zero.
    """
    from sklearn.decomposition import PCA

    if embeddings.ndim != 2 or embeddings.shape[0] < 2:
        raise DataError(f"pca_reduce: need [n_items + 1, D] embeddings with n_items >= 1, got shape {embeddings.shape}")
    if dim < 1:
        raise DataError(f"pca_reduce: dim must be >= 1, got {dim}")
    items = np.asarray(embeddings[1:], dtype=np.float64)
    n_comp = min(dim, items.shape[0], items.shape[1])
    out = np.zeros((embeddings.shape[0], dim), dtype=np.float32)
    if items.shape[0] < 2:
        return out
    reduced = PCA(n_components=n_comp, random_state=seed).fit_transform(items)
    std = reduced.std()
    if std > 0:
        reduced = reduced * (PCA_STD / std)
    out[1:, :n_comp] = reduced
    return out
