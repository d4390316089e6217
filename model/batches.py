"""The training hot loop's data side: resident tensors and index batches.

Everything lives on the device once: the padded training sequences (the last max_len + 1
training items of each user, left-padded; inputs/targets are the two shifted views of that
block) and the similar-user table (the ICC targets live in the model's ICC term). A batch is an index tensor from a seeded
permutation; the seeded sampling generator (negatives, cloze masks) is held here and drawn from
by the objective (model/objective.py), which turns a batch into its loss. No per-sample Python.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from model.config import ModelConfig
from model.sequences import INPUT_END, window


def training_block(data, max_len: int) -> np.ndarray:
    """int64 [n_users, max_len + 1]: each user's last max_len + 1 training items, left-padded."""
    off = np.asarray(data.seq_offsets, dtype=np.int64)
    return window(data.seq_items, off[:-1], off[1:] - INPUT_END["train"], max_len + 1)


class TrainBatches:
    """Resident training tensors plus the two seeded generators (batch order, sampling)."""

    def __init__(self, data, cfg: ModelConfig, device: torch.device, seed: int) -> None:
        self.device = device
        self.cfg = cfg
        self.n_items = data.n_items
        self.mask_id = data.n_items + 1
        block = torch.from_numpy(training_block(data, cfg.max_len))
        lengths = (block > 0).sum(1)
        need = 2 if _objective(cfg) == "next" else 1
        self.users = torch.nonzero(lengths >= need).squeeze(1).to(device)
        self.block = block.to(device)
        self.similar = torch.from_numpy(np.asarray(data.similar_users, np.int64)).to(device)
        self.order_gen = torch.Generator().manual_seed(seed)
        self.sample_gen = torch.Generator(device=device).manual_seed(seed + 1)
        self.teacher_reps: torch.Tensor | None = None      # [n_users, R]: model.objective.refresh_teachers

    def epoch(self, batch_size: int) -> Iterator[torch.Tensor]:
        perm = torch.randperm(self.users.shape[0], generator=self.order_gen).to(self.device)
        order = self.users[perm]
        for start in range(0, order.shape[0], batch_size):
            yield order[start:start + batch_size]

    def n_batches(self, batch_size: int) -> int:
        return -(-int(self.users.shape[0]) // batch_size)

    def rng_state(self) -> dict:
        return {"order": self.order_gen.get_state(), "sample": self.sample_gen.get_state()}

    def set_rng_state(self, state: dict) -> None:
        self.order_gen.set_state(state["order"])
        self.sample_gen.set_state(state["sample"])


def _objective(cfg: ModelConfig) -> str:
    from model.backbones import backbone_class

    return backbone_class(cfg.backbone).objective
