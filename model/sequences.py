"""Fixed-width, left-padded input histories and targets for every user, built without a loop.

The leave-one-out split is positional (see datasets/prepared.py): validation predicts seq[-2]
from seq[:-2], test predicts seq[-1] from seq[:-1]. Training uses seq[:-2] as input (the same as
validation's) with next-item targets seq[1:-1]. Older items beyond `max_len` are dropped.
"""

from __future__ import annotations

import numpy as np
import torch

from datasets.prepared import PreparedDataset

INPUT_END = {"train": 2, "valid": 2, "test": 1}     # input = seq[:-INPUT_END[split]]


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"split: got {split!r}; allowed: one of {', '.join(allowed)}")


def _lengths(data: PreparedDataset) -> np.ndarray:
    return np.diff(np.asarray(data.seq_offsets, dtype=np.int64))


def window(seq_items: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int) -> np.ndarray:
    """Rows holding seq_items[max(start, end - max_len):end], right-aligned, 0 on the left."""
    if max_len < 1:
        raise ValueError(f"max_len: got {max_len}; allowed: an int >= 1")
    idx = ends[:, None] - max_len + np.arange(max_len, dtype=np.int64)[None, :]
    keep = idx >= starts[:, None]
    if not keep.any():
        return np.zeros(idx.shape, dtype=np.int64)
    out = np.asarray(seq_items, dtype=np.int64)[np.where(keep, idx, 0)]
    out[~keep] = 0
    return out


def _require_length(data: PreparedDataset, need: int, split: str) -> None:
    short = np.flatnonzero(_lengths(data) < need)
    if short.size:
        raise ValueError(f"dataset {data.name!r}: user {int(short[0])} (and {short.size - 1} more) "
                         f"has fewer than {need} items; the {split!r} split needs {need}")


def longest_input(data: PreparedDataset) -> int:
    """The longest input history any split feeds a model: the test input seq[:-1] of the
    longest user (training and validation inputs are one item shorter); at least 2."""
    return max(int(_lengths(data).max(initial=0)) - INPUT_END["test"], 2)


def capped_max_len(max_len: int, data: PreparedDataset) -> tuple[int, str | None]:
    """(max_len capped at the longest input history, a note saying so or None). A window wider
    than every history holds only padding on the left: it changes nothing a model sees, yet the
    training block, the position table and the evaluation windows were sized by it (max_len
    100000 on ml-100k: [943, 100001] blocks, 12.1 GB peak against 10.3 GB capped in one epoch of
    a 16-wide model). Every max_len >= the longest history trains and evaluates as that length."""
    longest = longest_input(data)
    if max_len <= longest:
        return max_len, None
    return longest, (f"model.max_len {max_len} is above the longest input history of {data.name!r} "
                     f"({longest} items): windows capped at {longest} (any max_len >= {longest} "
                     f"gives these same results)")


def padded_histories(data: PreparedDataset, split: str, max_len: int) -> np.ndarray:
    """Input histories (int64 [n_users, max_len]): the last max_len items before the split's
    target, left-padded with 0."""
    _check_split(split, tuple(INPUT_END))
    _require_length(data, INPUT_END[split], split)
    off = np.asarray(data.seq_offsets, dtype=np.int64)
    return window(data.seq_items, off[:-1], off[1:] - INPUT_END[split], max_len)


def history_pairs(data: PreparedDataset, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (user, item) of the split's whole input history, grouped by user (no length cap).

    Returns users int64 [m], items int64 [m] and starts int64 [n_users + 1]: user u's pairs are
    rows starts[u]:starts[u + 1]. Memory is O(interactions), whatever the longest history.
    """
    _check_split(split, tuple(INPUT_END))
    _require_length(data, INPUT_END[split], split)
    off = np.asarray(data.seq_offsets, dtype=np.int64)
    counts = _lengths(data) - INPUT_END[split]
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    users = np.repeat(np.arange(data.n_users, dtype=np.int64), counts)
    positions = off[users] + np.arange(starts[-1], dtype=np.int64) - starts[users]
    return users, np.asarray(data.seq_items, dtype=np.int64)[positions], starts


def targets(data: PreparedDataset, split: str) -> np.ndarray:
    """The item each user's split asks for (int64 [n_users]): valid seq[-2], test seq[-1].

    Training targets are per position; see `train_targets`.
    """
    _check_split(split, ("valid", "test"))
    _require_length(data, INPUT_END[split], split)
    off = np.asarray(data.seq_offsets, dtype=np.int64)
    return np.asarray(data.seq_items, dtype=np.int64)[off[1:] - INPUT_END[split]]


def train_targets(data: PreparedDataset, max_len: int) -> np.ndarray:
    """Next-item targets aligned with padded_histories(data, "train", max_len): seq[1:-1]."""
    _require_length(data, 2, "train")
    off = np.asarray(data.seq_offsets, dtype=np.int64)
    return window(data.seq_items, off[:-1] + 1, off[1:] - 1, max_len)


def trim(block: torch.Tensor) -> torch.Tensor:
    """Drop leading columns that are padding in every row. Outputs at real positions do not
    change (positions count from the right, padding keys are masked, the GRU skips padding);
    only the cost does. One host sync per call."""
    used = int((block > 0).sum(1).max())
    return block[:, block.shape[1] - max(used, 1):]
