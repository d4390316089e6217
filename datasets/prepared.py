"""The prepared dataset: the one in-memory form every source is turned into.

Users are indexed 0..n_users-1. Items are 1..n_items; 0 is padding and n_items + 1 the mask
token (Bert4Rec). Each user's full, time-ordered sequence is stored; the leave-one-out split is
positional: training = seq[:-2], validation target = seq[-2], test target = seq[-1].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ARRAY_FIELDS = (
    "seq_items", "seq_offsets", "item_text_emb", "item_pca", "item_train_count",
    "tail_items", "tail_users", "similar_users", "valid_negatives", "test_negatives",
)


@dataclass
class PreparedDataset:
    name: str
    n_users: int
    n_items: int
    seq_items: np.ndarray          # int64 [n_interactions]: all users' sequences, concatenated
    seq_offsets: np.ndarray        # int64 [n_users + 1]: user u = seq_items[off[u]:off[u + 1]]
    item_text_emb: np.ndarray      # float32 [n_items + 1, D], row 0 zero
    item_pca: np.ndarray           # float32 [n_items + 1, pca_dim], row 0 zero
    item_train_count: np.ndarray   # int64 [n_items + 1]: interactions in the training part
    tail_items: np.ndarray         # bool [n_items + 1]: least popular share; row 0 False
    tail_users: np.ndarray         # bool [n_users]: short training sequences
    similar_users: np.ndarray      # int64 [n_users, K]: most similar other users, best first
    valid_negatives: np.ndarray    # int64 [n_users, N]: fixed sampled negatives (never interacted)
    test_negatives: np.ndarray     # int64 [n_users, N]
    meta: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def mask_id(self) -> int:
        return self.n_items + 1

    @property
    def n_interactions(self) -> int:
        return int(self.seq_items.shape[0])

    def sequence(self, user: int) -> np.ndarray:
        return self.seq_items[self.seq_offsets[user]:self.seq_offsets[user + 1]]

    @property
    def valid_targets(self) -> np.ndarray:
        """seq[-2] of every user (int64 [n_users])."""
        return self.seq_items[self.seq_offsets[1:] - 2]

    @property
    def test_targets(self) -> np.ndarray:
        """seq[-1] of every user (int64 [n_users])."""
        return self.seq_items[self.seq_offsets[1:] - 1]

    def first_users(self, n_users: int) -> "PreparedDataset":
        """The first n_users users (every item kept; similar users folded into the subset): real
        data that trains in seconds, for tests and benchmark smoke runs."""
        off = self.seq_offsets[:n_users + 1]
        return dataclasses.replace(
            self, n_users=n_users, seq_items=self.seq_items[:off[-1]], seq_offsets=off,
            tail_users=self.tail_users[:n_users], similar_users=self.similar_users[:n_users] % n_users,
            valid_negatives=self.valid_negatives[:n_users], test_negatives=self.test_negatives[:n_users])

    def repeat_targets(self, split: str) -> np.ndarray:
        """bool [n_users]: the split's target ("valid": seq[-2], "test": seq[-1]) already occurs
        earlier in the user's sequence, i.e. in the split's input history."""
        cut = {"valid": 2, "test": 1}.get(split)
        if cut is None:
            raise ValueError(f"split: got {split!r}; allowed: 'valid' or 'test'")
        off = np.asarray(self.seq_offsets, dtype=np.int64)
        kept = np.maximum(np.diff(off) - cut, 0)                 # history length of each user
        users = np.repeat(np.arange(self.n_users), kept)
        first = np.repeat(np.cumsum(kept) - kept, kept)           # each user's block in `users`
        history = self.seq_items[off[users] + np.arange(users.size) - first]
        target = self.seq_items[off[1:] - cut]
        return np.bincount(users[history == target[users]], minlength=self.n_users) > 0

    def to_arrays(self) -> dict[str, Any]:
        """Plain dict of arrays and scalars (for Ray's object store and npz files)."""
        out = {name: getattr(self, name) for name in ARRAY_FIELDS}
        out.update(name=self.name, n_users=self.n_users, n_items=self.n_items,
                   meta=self.meta, path=self.path)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> "PreparedDataset":
        return cls(**{k: arrays[k] for k in (*ARRAY_FIELDS, "name", "n_users", "n_items", "meta", "path")})
