"""The training hot loop's data side: resident tensors and index batches.

Everything lives on the device once: the training windows (left-padded rows of max_len + 1
training items; inputs/targets are the two shifted views of a row), the window -> user owner
index and the similar-user table (the ICC targets live in the model's ICC term). With train.windows "last" each user has
one window (the last max_len + 1 training items), so older items are never targets; with
"sliding" a user's whole training history is cut into windows going back by the stride. Rows
0..n_users-1 are always each user's newest window (the user's representation: self-distillation
teachers), older windows follow. A batch is an index tensor of rows from a seeded permutation;
the seeded sampling generator (negatives, cloze masks) is held here and drawn from by the
model, whose `calculate_loss` turns a `Batch` into its loss. No per-sample Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from model.config import WINDOWS, ModelConfig
from model.sequences import INPUT_END, trim, window


@dataclass
class Batch:
    """One batch of training windows as the model's loss reads it (`LLMESR.calculate_loss`):
    the tensors and the seeded sampling stream, nothing about how the loss is weighted."""

    block: torch.Tensor                 # [B, <= max_len + 1] windows, all-padding columns trimmed
    sample_gen: torch.Generator         # the run's sampling stream: cloze masks, then negatives
    similar: torch.Tensor               # [B, K] users similar to each window's owner
    newest: torch.Tensor                # [n_users, max_len + 1] each user's newest window
    teacher_reps: torch.Tensor | None   # [n_users, R] every user's representation (teacher "epoch")


def training_block(data, max_len: int) -> np.ndarray:
    """int64 [n_users, max_len + 1]: each user's last max_len + 1 training items, left-padded."""
    off = np.asarray(data.seq_offsets, dtype=np.int64)
    return window(data.seq_items, off[:-1], off[1:] - INPUT_END["train"], max_len + 1)


def window_ends(data, max_len: int, windows: str = "last", stride: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(owner user, exclusive end in seq_items) of every training window, newest windows first.

    Row u < n_users is user u's newest window, ending at its last training item. "sliding" adds,
    per user, windows ending `stride` items (0 = max_len) further back each, until one reaches
    the user's first training item; with stride max_len consecutive windows share one item, so
    every training position after the first is a next-item target exactly once.
    """
    if windows not in WINDOWS:
        raise ValueError(f"train.windows: got {windows!r}; allowed: one of {', '.join(WINDOWS)}")
    step = stride or max_len
    if not 1 <= step <= max_len:
        raise ValueError(f"train.window_stride: got {stride}; allowed: 0 (= max_len) to max_len {max_len}")
    off = np.asarray(data.seq_offsets, dtype=np.int64)
    ends = off[1:] - INPUT_END["train"]
    users = np.arange(ends.size, dtype=np.int64)
    if windows == "last":
        return users, ends
    last = ends - 1 - off[:-1]                                # newest target's position in the history
    older = -(-np.maximum(last - max_len, 0) // step)         # windows before the newest one
    owner = np.repeat(users, older)
    back = np.arange(owner.size, dtype=np.int64) - np.repeat(np.cumsum(older) - older, older) + 1
    return np.concatenate([users, owner]), np.concatenate([ends, ends[owner] - back * step])


def training_windows(data, max_len: int, windows: str = "last", stride: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(int64 [n_windows, max_len + 1] left-padded windows, int64 [n_windows] owner user).
    The first n_users rows are training_block(data, max_len)."""
    owner, ends = window_ends(data, max_len, windows, stride)
    starts = np.asarray(data.seq_offsets, dtype=np.int64)[:-1][owner]
    return window(data.seq_items, starts, ends, max_len + 1), owner


class TrainBatches:
    """Resident training tensors plus the two seeded generators (batch order, sampling)."""

    def __init__(self, data, cfg: ModelConfig, device: torch.device, seed: int, windows: str = "last",
                 stride: int = 0) -> None:
        self.device = device
        self.cfg = cfg
        self.n_items = data.n_items
        self.mask_id = data.n_items + 1
        block, owner = training_windows(data, cfg.max_len, windows, stride)
        block = torch.from_numpy(block)
        lengths = (block > 0).sum(1)
        need = 2 if _objective(cfg) == "next" else 1
        self.rows = torch.nonzero(lengths >= need).squeeze(1).to(device)    # windows with a target
        self.block = block.to(device)
        self.owner = torch.from_numpy(owner).to(device)                     # window -> user
        self.newest = self.block[:data.n_users]                             # user -> newest window
        self.similar = torch.from_numpy(np.asarray(data.similar_users, np.int64)).to(device)
        self.order_gen = torch.Generator().manual_seed(seed)
        self.sample_gen = torch.Generator(device=device).manual_seed(seed + 1)
        self.teacher_reps: torch.Tensor | None = None      # [n_users, R]: refreshed by the trainer

    def epoch(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Batches of window rows (the user ids under "last"), in a seeded random order."""
        perm = torch.randperm(self.rows.shape[0], generator=self.order_gen).to(self.device)
        order = self.rows[perm]
        for start in range(0, order.shape[0], batch_size):
            yield order[start:start + batch_size]

    def batch(self, rows: torch.Tensor) -> Batch:
        """The Batch of window `rows` (user ids under "last")."""
        return Batch(trim(self.block[rows]), self.sample_gen, self.similar[self.owner[rows]],
                     self.newest, self.teacher_reps)

    def n_batches(self, batch_size: int) -> int:
        return -(-int(self.rows.shape[0]) // batch_size)

    def rng_state(self) -> dict:
        return {"order": self.order_gen.get_state(), "sample": self.sample_gen.get_state()}

    def set_rng_state(self, state: dict) -> None:
        self.order_gen.set_state(state["order"])
        self.sample_gen.set_state(state["sample"])


def _objective(cfg: ModelConfig) -> str:
    from model.backbones import backbone_class

    return backbone_class(cfg.backbone).objective
