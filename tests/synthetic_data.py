"""Small hand-made prepared datasets for tests that need to know every item: sentinel held-out
targets (leak tests) and tiny batches whose losses are recomputed by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from datasets.prepared import PreparedDataset


def sentinel_dataset(n_users: int = 12, pool: int = 20, train_len: tuple[int, int] = (3, 9),
                     dim: int = 8, n_similar: int = 3, seed: int = 0) -> PreparedDataset:
    """Users whose training items come from 1..pool and whose validation and test targets are
    items used by nobody else (valid of user u: pool + 1 + 2u; test: pool + 2 + 2u).

    Similar users are the next n_similar users (cyclic), so every user teaches someone."""
    rng = np.random.default_rng(seed)
    n_items = pool + 2 * n_users
    sequences = []
    for user in range(n_users):
        train = rng.integers(1, pool + 1, size=int(rng.integers(*train_len, endpoint=True)))
        sequences.append(np.concatenate([train, sentinel_valid(user, pool), sentinel_test(user, pool)]))
    lengths = np.array([len(s) for s in sequences])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    seq_items = np.concatenate(sequences).astype(np.int64)
    text = rng.normal(size=(n_items + 1, dim)).astype(np.float32)
    text[0] = 0.0
    counts = np.bincount(np.concatenate([s[:-2] for s in sequences]), minlength=n_items + 1).astype(np.int64)
    similar = (np.arange(n_users)[:, None] + np.arange(1, n_similar + 1)[None, :]) % n_users
    negatives = np.tile(np.arange(1, 4, dtype=np.int64), (n_users, 1))
    return PreparedDataset(
        name="sentinel", n_users=n_users, n_items=n_items, seq_items=seq_items, seq_offsets=offsets,
        item_text_emb=text, item_pca=text.copy(), item_train_count=counts,
        tail_items=np.arange(n_items + 1) > pool // 2, tail_users=lengths < np.median(lengths),
        similar_users=similar.astype(np.int64), valid_negatives=negatives, test_negatives=negatives.copy())


def sentinel_valid(user: int, pool: int) -> np.ndarray:
    return np.array([pool + 1 + 2 * user])


def sentinel_test(user: int, pool: int) -> np.ndarray:
    return np.array([pool + 2 + 2 * user])



def held_out_items(data: PreparedDataset) -> tuple[set[int], set[int]]:
    """(every user's validation target, every user's test target) as sets of item ids."""
    return set(data.valid_targets.tolist()), set(data.test_targets.tolist())


def cluster_targets(data: PreparedDataset, hidden: int, n_clusters: int = 3, seed: int = 1):
    """A cluster artifact as the trainer reads it: per-item targets [n_items + 2, hidden] and the
    constrained mask (padding, mask id and every fifth item unconstrained, like noise)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, hidden)).astype(np.float32)
    labels = rng.integers(0, n_clusters, size=data.n_items + 2)
    constrained = np.ones(data.n_items + 2, dtype=bool)
    constrained[[0, data.n_items + 1]] = False
    constrained[::5] = False
    targets = np.where(constrained[:, None], centers[labels], 0.0).astype(np.float32)
    return SimpleNamespace(item_targets=targets, constrained=constrained)
