"""From raw interactions to id-indexed, time-ordered sequences, the split and the popularity groups.

Numbering: users 0..U-1 and items 1..I in ascending key order (integers numerically), so ids do
not depend on file order. Users need 3 interactions for the leave-one-out split, so the user
core used is max(user_core, 3). Exact duplicate rows (same user, item and time) are found here
too: a log that repeats each event would otherwise make every test target the last input item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datasets.errors import DataError
from datasets.raw import RawData

MIN_USER_LENGTH = 3  # train (>= 1) + validation + test


@dataclass
class KcoreCounts:
    """What iterative k-core kept: its settings and (users, items, interactions) before and after."""

    user_core: int
    item_core: int
    before: tuple[int, int, int]
    after: tuple[int, int, int]

    def text(self) -> str:
        """One line for error messages: the settings and what they kept of what."""
        split = "; users need 3 for the split" if self.user_core < MIN_USER_LENGTH else ""
        kept = ", ".join(f"{a} of {b} {what}" for a, b, what in
                         zip(self.after, self.before, ("users", "items", "interactions")))
        return f"k-core (data.user_core={self.user_core}, data.item_core={self.item_core}{split}) kept {kept}"

    def as_meta(self) -> dict:
        return {"user_core": self.user_core, "item_core": self.item_core,
                "before": dict(zip(("users", "items", "interactions"), self.before)),
                "after": dict(zip(("users", "items", "interactions"), self.after))}


@dataclass
class Sequences:
    user_keys: np.ndarray     # [U] original user key of each user id
    item_keys: np.ndarray     # [I] original item key of item id i at position i - 1
    seq_items: np.ndarray     # int64 [n] concatenated per-user sequences, time-ordered
    seq_offsets: np.ndarray   # int64 [U + 1]
    kcore: KcoreCounts        # what k-core kept of what

    @property
    def n_users(self) -> int:
        return int(self.user_keys.size)

    @property
    def n_items(self) -> int:
        return int(self.item_keys.size)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.seq_offsets)

    def train_mask(self) -> np.ndarray:
        """bool [n]: the positions in seq[:-2] of each user (the training part)."""
        lengths = self.lengths
        start = np.repeat(self.seq_offsets[:-1], lengths)
        position = np.arange(self.seq_items.size) - start
        return position < np.repeat(lengths - 2, lengths)


def kcore(users: np.ndarray, items: np.ndarray, user_core: int, item_core: int) -> np.ndarray:
    """bool mask of interactions kept by iterative k-core (repeat until every count holds)."""
    keep = np.ones(users.size, dtype=bool)
    while True:
        u, i = users[keep], items[keep]
        ok_u = np.bincount(u, minlength=users.max() + 1 if users.size else 0) >= user_core
        ok_i = np.bincount(i, minlength=items.max() + 1 if items.size else 0) >= item_core
        drop = keep.copy()
        drop[keep] = ~(ok_u[u] & ok_i[i])
        if not drop.any():
            return keep
        keep &= ~drop


def exact_duplicates(raw: RawData) -> np.ndarray:
    """bool [n]: rows repeating an earlier row's (user, item, order) exactly; the first copy is kept."""
    _, users = np.unique(raw.users, return_inverse=True)
    _, items = np.unique(raw.items, return_inverse=True)
    position = np.arange(raw.users.size)
    rank = np.lexsort((position, raw.order, items, users))
    u, i, t = users[rank], items[rank], raw.order[rank]
    same = (u[1:] == u[:-1]) & (i[1:] == i[:-1]) & (t[1:] == t[:-1])
    out = np.zeros(raw.users.size, dtype=bool)
    out[rank[1:][same]] = True
    return out


def build_sequences(raw: RawData, user_core: int, item_core: int) -> Sequences:
    """k-core, renumber, and sort each user's interactions by (order, file position)."""
    user_keys, user_codes = np.unique(raw.users, return_inverse=True)
    item_keys, item_codes = np.unique(raw.items, return_inverse=True)
    keep = kcore(user_codes, item_codes, max(user_core, MIN_USER_LENGTH), item_core)
    kept_u, u = np.unique(user_codes[keep], return_inverse=True)
    kept_i, i = np.unique(item_codes[keep], return_inverse=True)
    counts = KcoreCounts(user_core, item_core, (user_keys.size, item_keys.size, raw.users.size),
                         (kept_u.size, kept_i.size, int(keep.sum())))
    if not keep.any():
        raise DataError(f"{counts.text()}: nothing is left; lower data.user_core / data.item_core")
    position = np.flatnonzero(keep)
    order = np.lexsort((position, raw.order[keep], u))          # user, then time, then file order
    u, i = u[order], i[order] + 1
    lengths = np.bincount(u, minlength=kept_u.size)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Sequences(user_keys=user_keys[kept_u], item_keys=item_keys[kept_i],
                     seq_items=i.astype(np.int64), seq_offsets=offsets, kcore=counts)


def item_train_count(seqs: Sequences) -> np.ndarray:
    """int64 [I + 1]: interactions of each item in the training parts (row 0 = 0)."""
    return np.bincount(seqs.seq_items[seqs.train_mask()], minlength=seqs.n_items + 1).astype(np.int64)


def tail_items(train_count: np.ndarray, share: float) -> np.ndarray:
    """bool [I + 1]: the round(share * I) least popular items by training count.

    Ties are broken by item id: among equally popular items the lower id counts as tail first
    (a stable sort of the counts). Row 0 (padding) is False.
    """
    n_items = train_count.size - 1
    ranked = np.argsort(train_count[1:], kind="stable") + 1
    out = np.zeros(n_items + 1, dtype=bool)
    out[ranked[: int(round(share * n_items))]] = True
    return out


def tail_users(train_lengths: np.ndarray, share: float, threshold: int) -> np.ndarray:
    """bool [U]: training length <= threshold when threshold > 0; else the round(share * U)
    shortest training sequences (ties broken by user id, lower first)."""
    if threshold > 0:
        return train_lengths <= threshold
    ranked = np.argsort(train_lengths, kind="stable")
    out = np.zeros(train_lengths.size, dtype=bool)
    out[ranked[: int(round(share * train_lengths.size))]] = True
    return out
