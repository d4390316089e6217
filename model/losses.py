"""The training objective: recommendation loss + self-distillation + ICC + view contrast.

All functions take tensors already on the device and return 0-d tensors; none syncs with the
host, so the hot loop never waits on the GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rec_bce(states: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor,
            table_rows) -> torch.Tensor:
    """BCE of each target against its sampled negatives, averaged over target positions.

    states [P, R] (one row per predicted position), targets [P], negatives [P, N];
    `table_rows(ids)` returns item representations [..., R].
    """
    pos = (states * table_rows(targets)).sum(-1)
    neg = torch.einsum("pr,pnr->pn", states, table_rows(negatives))
    loss = F.softplus(-pos) + F.softplus(neg).sum(-1)   # -log s(pos) - sum log(1 - s(neg))
    return loss.mean() if loss.numel() else states.sum() * 0.0


def rec_ce(states: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, mask_id: int,
           real_only: bool = False) -> torch.Tensor:
    """Full-softmax cross-entropy over all real items (padding and mask columns excluded).
    `real_only` scores the real items' rows 1..mask_id - 1 alone: the same loss without the two
    -inf columns, whose in-place writes cost a copy of the logits in the backward pass."""
    if real_only:
        logits, targets = states @ table[1:mask_id].T, targets - 1
    else:
        logits = states @ table.T
        logits[:, 0] = -torch.inf
        logits[:, mask_id] = -torch.inf
    return F.cross_entropy(logits, targets) if targets.numel() else states.sum() * 0.0


def uniform_negatives(n_items: int, n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """`n` distinct item ids drawn uniformly from 1..n_items (every item when n >= n_items), from
    the run's seeded stream: one draw of a permutation, so larger n extend smaller ones."""
    return torch.randperm(n_items, generator=gen, device=device)[:n] + 1


def rec_sampled_ce(states: torch.Tensor, targets: torch.Tensor, table: torch.Tensor,
                   negatives: torch.Tensor) -> torch.Tensor:
    """Sampled softmax: cross-entropy over each position's target and the batch's shared
    `negatives` [N] (a negative equal to the position's target, an accidental hit, is masked).

    The logQ correction (Yi et al., RecSys 2019) subtracts log q(item) from every candidate's
    logit; under uniform sampling q is the same for every item, so it cancels and is left out.
    With every item among the negatives this is exactly full-softmax cross-entropy (rec_ce).
    """
    if not targets.numel():
        return states.sum() * 0.0
    pos = (states * table[targets]).sum(-1, keepdim=True)                 # [P, 1]
    neg = states @ table[negatives].T                                      # [P, N]
    neg = neg.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), -torch.inf)
    logits = torch.cat([pos, neg], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets))


def self_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE between the user representation and the mean of its similar users' (no grad)."""
    return F.mse_loss(student, teacher.detach())


def batch_item_presence(items: torch.Tensor, n_rows: int, mask_id: int) -> torch.Tensor:
    """bool [n_rows]: which real item ids occur in `items` (padding and mask never count)."""
    present = torch.zeros(n_rows, dtype=torch.bool, device=items.device)
    present[items.reshape(-1)] = True
    present[0] = False
    present[mask_id] = False
    return present


def icc_loss(id_weight: torch.Tensor, present: torch.Tensor, targets: torch.Tensor,
             constrained: torch.Tensor) -> torch.Tensor:
    """Item-cluster constraint: mean over the distinct constrained batch items of
    ||E_co[i] - target[i]||^2 (squared distance summed over dimensions, then averaged over items).

    Written as a masked mean over all rows so it needs no host sync (no nonzero/unique);
    rows outside the selection get exactly zero weight and zero gradient.
    """
    weight = (present & constrained).to(id_weight.dtype)
    dist = (id_weight - targets).pow(2).sum(-1)
    return (dist * weight).sum() / weight.sum().clamp(min=1.0)


def view_contrast(co: torch.Tensor, sem: torch.Tensor, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised collaborative and semantic embeddings [M, H]:
    item i's two views are the positive pair, the other batch items the negatives."""
    if co.shape[0] < 2:
        return co.sum() * 0.0
    logits = F.normalize(co, dim=-1) @ F.normalize(sem, dim=-1).T / tau
    labels = torch.arange(co.shape[0], device=co.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def shares(parts: dict[str, float], weights: dict[str, float]) -> dict[str, float]:
    """Each term's weighted share of the total, |w * part| / sum |w * part| (0 when all are 0)."""
    weighted = {k: weights[k] * parts[k] for k in parts}
    scale = math.fsum(abs(v) for v in weighted.values())
    return {k: (abs(v) / scale if scale > 0 else 0.0) for k, v in weighted.items()}
