"""The training hot loop's data side: resident tensors, index batches, one batch's loss.

Everything lives on the device once: the padded training sequences (the last max_len + 1
training items of each user, left-padded; inputs/targets are the two shifted views of that
block), the similar-user table and the cluster targets. A batch is an index tensor from a seeded
permutation; negatives and cloze masks come from a seeded generator on the device; teacher
histories are gathered by index. No per-sample Python, no host sync except the batch's longest
sequence (used to drop all-padding columns, which changes nothing but the cost).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from model import losses
from model.config import ModelConfig
from model.llmesr import trim


def training_block(data, max_len: int) -> np.ndarray:
    """int64 [n_users, max_len + 1]: each user's last max_len + 1 training items, left-padded."""
    width = max_len + 1
    starts = data.seq_offsets[:-1]
    ends = data.seq_offsets[1:] - 2                       # training part = seq[:-2]
    idx = ends[:, None] - width + np.arange(width)[None, :]
    ok = idx >= starts[:, None]
    return np.where(ok, data.seq_items[np.clip(idx, 0, None)], 0).astype(np.int64)


class TrainBatches:
    """Resident training tensors plus the two seeded generators (batch order, sampling)."""

    def __init__(self, data, cfg: ModelConfig, device: torch.device, seed: int, clusters=None) -> None:
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
        self.teacher_reps: torch.Tensor | None = None      # [n_users, R] with model.teacher "epoch"
        self.icc = None
        if clusters is not None:                           # ICC on (model.pipeline decides)
            self.icc = (torch.from_numpy(np.asarray(clusters.item_targets, np.float32)).to(device),
                        torch.from_numpy(np.asarray(clusters.constrained, bool)).to(device))

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


def _inputs_targets(model, batches: TrainBatches, block: torch.Tensor):
    """(inputs, targets, predicted positions, the batch's input items) for the objective."""
    if model.objective == "next":
        inputs, targets = block[:, :-1], block[:, 1:]
        return inputs, targets, inputs > 0, inputs
    # the last max_len items; a block trimmed below max_len + 1 columns holds no older item
    seq = block[:, 1:] if block.shape[1] > batches.cfg.max_len else block
    valid = seq > 0
    draw = torch.rand(seq.shape, generator=batches.sample_gen, device=seq.device)
    masked = (draw < batches.cfg.mask_prob) & valid
    masked[:, -1] |= ~masked.any(1) & valid[:, -1]      # every sequence predicts something
    inputs = torch.where(masked, torch.full_like(seq, batches.mask_id), seq)
    return inputs, torch.where(masked, seq, torch.zeros_like(seq)), masked, seq


def _frozen_reps(model, histories: torch.Tensor) -> torch.Tensor:
    """User representations as targets: no grad, no dropout (eval mode), inference form
    (Bert4Rec: history + mask token)."""
    was_training = model.training
    model.eval()                       # a target, not a sample: no dropout noise (and cheaper)
    try:
        with torch.no_grad():
            return model.user_repr(histories)
    finally:
        model.train(was_training)


def refresh_teachers(model, batches: TrainBatches, chunk: int = 1024) -> None:
    """model.teacher "epoch": every user's representation once, at the start of an epoch.
    Teachers then lag the weights by at most one epoch, for one forward pass over the users
    instead of K per trained user. Deterministic (eval mode), so resume stays exact."""
    histories = batches.block[:, 1:]
    batches.teacher_reps = torch.cat([_frozen_reps(model, histories[i:i + chunk])
                                      for i in range(0, histories.shape[0], chunk)])


def _teacher(model, batches: TrainBatches, users: torch.Tensor) -> torch.Tensor:
    """Mean representation of each user's K similar users' training histories."""
    sim = batches.similar[users]                                     # [B, K]
    if batches.teacher_reps is not None:
        return batches.teacher_reps[sim].mean(1)
    reps = _frozen_reps(model, batches.block[sim.reshape(-1), 1:])   # [B*K, R]
    return reps.view(sim.shape[0], sim.shape[1], -1).mean(1)


def batch_loss(model, batches: TrainBatches, users: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss of one batch of users and its parts (rec, sd, icc, cl), all 0-d tensors."""
    cfg = batches.cfg
    block = trim(batches.block[users])
    inputs, targets, predict, items = _inputs_targets(model, batches, block)
    co_all, sem_all = model.all_item_views()                         # adapter once per batch
    table = model.join(co_all, sem_all)
    sem_seq = None if sem_all is None else sem_all[inputs]
    states = model.encode_views(co_all[inputs], sem_seq, inputs > 0)
    pos_states, pos_targets = states[predict], targets[predict]
    if cfg.loss == "ce":
        rec = losses.rec_ce(pos_states, pos_targets, table, batches.mask_id)
    else:
        negs = torch.randint(1, batches.n_items + 1, (pos_targets.shape[0], cfg.n_negatives),
                             generator=batches.sample_gen, device=block.device)
        rec = losses.rec_bce(pos_states, pos_targets, negs, lambda i: table[i])
    zero = rec.new_zeros(())
    parts = {"rec": rec, "sd": zero, "icc": zero, "cl": zero}
    total = rec
    if cfg.alpha > 0 and model.semantic:
        parts["sd"] = losses.self_distillation(states[:, -1], _teacher(model, batches, users))
        total = total + cfg.alpha * parts["sd"]
    present = None
    if batches.icc is not None:
        present = losses.batch_item_presence(items, batches.n_items + 2, batches.mask_id)
        parts["icc"] = losses.icc_loss(model.id_emb.weight, present, *batches.icc)
        total = total + cfg.gamma * parts["icc"]
    if cfg.lambda_cl > 0 and model.semantic:
        if present is None:
            present = losses.batch_item_presence(items, batches.n_items + 2, batches.mask_id)
        chosen = torch.nonzero(present).squeeze(1)
        parts["cl"] = losses.view_contrast(co_all[chosen], sem_all[chosen], cfg.tau)
        total = total + cfg.lambda_cl * parts["cl"]
    return total, parts
