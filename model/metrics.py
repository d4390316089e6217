"""Hit@k and NDCG@k from 0-based ranks (rank 0 = the target scored best), and group means.

Per-user values come from a table of 1 / log2(rank + 2) computed with Python floats, and group
means use math.fsum (a correctly rounded sum), so results do not depend on batch size, device or
summation order: the evaluator reproduces a plain Python reference bit for bit.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np


def ndcg_table(k: int) -> np.ndarray:
    return np.array([1.0 / math.log2(r + 2) for r in range(k)], dtype=np.float64)


def hit_values(ranks: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the target ranks within the top k, else 0.0 (float64 per user)."""
    return (np.asarray(ranks) < k).astype(np.float64)


def ndcg_values(ranks: np.ndarray, k: int) -> np.ndarray:
    """1 / log2(rank + 2) within the top k, else 0.0 (one relevant item: IDCG = 1)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    inside = ranks < k
    out = np.zeros(ranks.shape, dtype=np.float64)
    out[inside] = ndcg_table(k)[ranks[inside]]
    return out


def mean(values: np.ndarray) -> float:
    """Correctly rounded mean; 0.0 for an empty group (never NaN)."""
    return math.fsum(values.tolist()) / values.size if values.size else 0.0


def rank_metrics(ranks: np.ndarray, ks: Iterable[int], prefix: str = "") -> dict[str, float]:
    """{prefix}hit_k and {prefix}ndcg_k for each k, averaged over the given users."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"{prefix}hit_{k}"] = mean(hit_values(ranks, k))
        out[f"{prefix}ndcg_{k}"] = mean(ndcg_values(ranks, k))
    return out
