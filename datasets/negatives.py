"""Fixed sampled negatives for the sampled-100 evaluation protocol (LLM-ESR's), vectorised.

Each user gets N distinct items drawn uniformly from the items they NEVER interacted with (whole
sequence, so neither the validation nor the test target can appear). Rows are drawn with
replacement in bulk, rejected where seen or repeated, and the first N survivors kept; the rare
rows that fall short are redrawn with twice as many draws, and after a few rounds sampled exactly.
"""

from __future__ import annotations

import numpy as np

from datasets.errors import DataError

CHUNK_USERS = 4096   # fixed, so the random stream (and thus the result) never depends on memory
ROUNDS = 4


def _seen_keys(seq_items: np.ndarray, seq_offsets: np.ndarray, n_items: int) -> np.ndarray:
    users = np.repeat(np.arange(seq_offsets.size - 1), np.diff(seq_offsets))
    return np.unique(users * (n_items + 1) + seq_items)


def _first_valid(cand: np.ndarray, keys: np.ndarray, seen: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (done mask, the first n unseen, non-repeated candidates of the done rows)."""
    pos = np.minimum(np.searchsorted(seen, keys), seen.size - 1)
    valid = seen[pos] != keys
    first = np.zeros(keys.size, dtype=bool)
    first[np.unique(keys.ravel(), return_index=True)[1]] = True
    valid &= first.reshape(keys.shape)
    done = valid.sum(axis=1) >= n
    take = valid & (np.cumsum(valid, axis=1) <= n)
    return done, cand[done][take[done]].reshape(-1, n)


def sample_negatives(seq_items: np.ndarray, seq_offsets: np.ndarray, n_items: int, n: int,
                     rng: np.random.Generator) -> np.ndarray:
    """int64 [U, n] negatives; DataError if some user has fewer than n unseen items."""
    n_users = seq_offsets.size - 1
    seen = _seen_keys(seq_items, seq_offsets, n_items)
    available = n_items - np.bincount(seen // (n_items + 1), minlength=n_users)
    short = np.flatnonzero(available < n)
    if short.size:
        u = int(short[0])
        raise DataError(f"data.n_eval_negatives={n} but user {u} has only {int(available[u])} items "
                        f"they never interacted with (of {n_items}); lower data.n_eval_negatives")
    out = np.zeros((n_users, n), dtype=np.int64)
    for start in range(0, n_users, CHUNK_USERS):
        todo = np.arange(start, min(start + CHUNK_USERS, n_users))
        accept = available[todo].min() / n_items
        draws = int(min(np.ceil(n / accept * 1.3) + 16, 4 * n_items + 16))
        for _ in range(ROUNDS):
            cand = rng.integers(1, n_items + 1, size=(todo.size, draws))
            done, picked = _first_valid(cand, todo[:, None] * (n_items + 1) + cand, seen, n)
            out[todo[done]] = picked
            todo = todo[~done]
            if not todo.size:
                break
            draws *= 2
        for u in todo.tolist():   # exact fallback for very dense users
            items = seq_items[seq_offsets[u]:seq_offsets[u + 1]]
            pool = np.setdiff1d(np.arange(1, n_items + 1), items)
            out[u] = rng.choice(pool, size=n, replace=False)
    return out
