"""The training objective of one batch: what the model is asked to predict and what it pays.

Next-item prediction (SASRec, GRU4Rec) or Bert4Rec's cloze task, scored by the recommendation
loss, plus retrieval-augmented self-distillation (teachers: the similar users' representations),
the item-cluster constraint and view contrast (model/losses.py holds the terms themselves).
Batches (model/batches.py) only hold the tensors and the seeded generators drawn from here; the
draws happen in a fixed order (cloze masks, then negatives), so a run reproduces bit for bit.
"""

from __future__ import annotations

import torch

from model import losses
from model.batches import TrainBatches
from model.llmesr import trim


def _next_item(block: torch.Tensor):
    """Inputs and next-item targets: the two shifted views of the training block."""
    inputs, targets = block[:, :-1], block[:, 1:]
    return inputs, targets, inputs > 0, inputs


def _cloze(batches: TrainBatches, block: torch.Tensor):
    """Bert4Rec: mask a seeded random share of the last max_len items and predict them; every
    sequence predicts at least its last item. A block trimmed below max_len + 1 columns holds
    no older item, so it is the sequence as it is. A full window's first item is the last of
    the window before it (train.windows sliding), so each item is a cloze candidate once."""
    seq = block[:, 1:] if block.shape[1] > batches.cfg.max_len else block
    valid = seq > 0
    draw = torch.rand(seq.shape, generator=batches.sample_gen, device=seq.device)
    masked = (draw < batches.cfg.mask_prob) & valid
    masked[:, -1] |= ~masked.any(1) & valid[:, -1]
    inputs = torch.where(masked, torch.full_like(seq, batches.mask_id), seq)
    return inputs, torch.where(masked, seq, torch.zeros_like(seq)), masked, seq


def _inputs_targets(model, batches: TrainBatches, block: torch.Tensor):
    """(inputs, targets, predicted positions, the batch's input items) for the model's task."""
    if model.objective == "next":
        return _next_item(block)
    return _cloze(batches, block)


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
    """model.teacher "epoch": every user's representation (its newest window) once, at the
    start of an epoch. Teachers then lag the weights by at most one epoch, for one forward pass
    over the users instead of K per trained window. Deterministic (eval mode), so resume stays exact."""
    histories = batches.newest[:, 1:]
    batches.teacher_reps = torch.cat([_frozen_reps(model, histories[i:i + chunk])
                                      for i in range(0, histories.shape[0], chunk)])


def _teacher(model, batches: TrainBatches, rows: torch.Tensor) -> torch.Tensor:
    """Mean representation of the K users similar to each window's owner (their newest windows:
    the users' representations, whichever of its owner's windows a row is)."""
    sim = batches.similar[batches.owner[rows]]                       # [B, K]
    if batches.teacher_reps is not None:
        return batches.teacher_reps[sim].mean(1)
    reps = _frozen_reps(model, batches.newest[sim.reshape(-1), 1:])  # [B*K, R]
    return reps.view(sim.shape[0], sim.shape[1], -1).mean(1)


def _rec_loss(batches: TrainBatches, states: torch.Tensor, targets: torch.Tensor,
              table: torch.Tensor) -> torch.Tensor:
    """Full-softmax cross-entropy, or BCE against seeded negatives (drawn after the cloze masks)."""
    cfg = batches.cfg
    if cfg.loss == "ce":
        return losses.rec_ce(states, targets, table, batches.mask_id)
    negs = torch.randint(1, batches.n_items + 1, (targets.shape[0], cfg.n_negatives),
                         generator=batches.sample_gen, device=states.device)
    return losses.rec_bce(states, targets, negs, lambda i: table[i])


def batch_loss(model, batches: TrainBatches, rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss of one batch of training windows (rows of batches.block; user ids under
    train.windows "last") and its parts (rec, sd, icc, cl), all 0-d tensors.
    ICC is a term exactly when the model holds one (`model.icc`, with its weight)."""
    cfg = batches.cfg
    block = trim(batches.block[rows])
    inputs, targets, predict, items = _inputs_targets(model, batches, block)
    co_all, sem_all = model.all_item_views()                         # adapter once per batch
    table = model.join(co_all, sem_all)
    sem_seq = None if sem_all is None else sem_all[inputs]
    states = model.encode_views(co_all[inputs], sem_seq, inputs > 0)
    rec = _rec_loss(batches, states[predict], targets[predict], table)
    zero = rec.new_zeros(())
    parts = {"rec": rec, "sd": zero, "icc": zero, "cl": zero}
    total = rec
    if cfg.alpha > 0 and model.semantic:
        parts["sd"] = losses.self_distillation(states[:, -1], _teacher(model, batches, rows))
        total = total + cfg.alpha * parts["sd"]
    present = None
    if model.icc is not None:
        present = losses.batch_item_presence(items, batches.n_items + 2, batches.mask_id)
        parts["icc"] = model.icc(model.id_emb.weight, present)
        total = total + model.icc.gamma * parts["icc"]
    if cfg.lambda_cl > 0 and model.semantic:
        if present is None:
            present = losses.batch_item_presence(items, batches.n_items + 2, batches.mask_id)
        chosen = torch.nonzero(present).squeeze(1)
        parts["cl"] = losses.view_contrast(co_all[chosen], sem_all[chosen], cfg.tau)
        total = total + cfg.lambda_cl * parts["cl"]
    return total, parts


def mean_parts_at_init(model, batches: TrainBatches, batch_size: int, seed: int,
                       n_batches: int) -> dict[str, float]:
    """Mean unweighted loss parts over `n_batches` seeded batches of training windows, measured
    as training would see them (train mode) but without gradients and without moving any of
    the run's random streams (dropout, batch order, sampling): the calibration of icc_share."""
    order_gen = torch.Generator().manual_seed(seed)
    order = batches.rows[torch.randperm(batches.rows.shape[0], generator=order_gen).to(batches.rows.device)]
    saved = batches.rng_state()
    was_training = model.training
    sums: dict[str, float] = {}
    devices = [order.device] if order.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            model.train()
            for start in range(0, min(order.shape[0], n_batches * batch_size), batch_size):
                _, parts = batch_loss(model, batches, order[start:start + batch_size])
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
    finally:
        batches.set_rng_state(saved)
        model.train(was_training)
    n = max(1, -(-min(order.shape[0], n_batches * batch_size) // batch_size))
    return {key: value / n for key, value in sums.items()}
