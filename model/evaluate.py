"""Batched evaluation: full ranking (primary) and the LLM-ESR sampled-100 protocol.

Rank of a target = number of candidates scoring strictly higher PLUS the number of other
candidates scoring exactly the same (pessimistic ties): a constant scorer gets the worst rank
instead of a perfect one, so ties can never flatter a model. NaN scores count as -inf, so a
diverged model ranks last rather than first.

Full ranking candidates: items 1..n_items minus everything in the user's input history (the whole
history, not only the last max_len items the model sees), but the target is never masked, even
when it occurs in the history. Sampled candidates: the target plus the user's fixed negatives
(data.valid_negatives / data.test_negatives), nothing masked.

Repeat targets: a target that already occurs in the user's input history is easy under full
ranking (every other history item is masked, so "recommend the history" ranks it near the top).
Every evaluation reports the users whose target repeats (`repeat_target_*`) and those whose target
is new (`new_target_*`) apart. The policy `repeats` decides who the overall and the other group
metrics cover: "keep" (everyone, the field's usual protocol) or "exclude" (only new-target users,
as in the repetition/exploration split of Li et al., SIGIR 2023); the repeat_target_ and
new_target_ metrics are the same under both.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

from datasets.prepared import PreparedDataset
from model.metrics import rank_metrics
from model.sequences import history_pairs, padded_histories, targets

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PROTOCOLS = ("full", "sampled")
GROUPS = ("tail_item", "head_item", "tail_user", "head_user")
TARGET_GROUPS = ("repeat_target", "new_target")
REPEAT_POLICIES = ("keep", "exclude")


def _target_scores(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each row's target score as a column, NaN read as -inf."""
    return torch.nan_to_num(scores.gather(1, target[:, None]), nan=-float("inf"))


def full_ranks(scores: torch.Tensor, target: torch.Tensor, hist_rows: torch.Tensor,
               hist_items: torch.Tensor, n_items: int) -> torch.Tensor:
    """Pessimistic rank of each target among items 1..n_items outside the history (int64 [B]).

    The history is given as pairs: row hist_rows[j] of the batch interacted with hist_items[j].
    """
    t = _target_scores(scores, target)
    beats = (scores >= t).contiguous()           # NaN candidates: False, i.e. below the target...
    low = torch.isneginf(t)
    if bool(low.any()):                          # ...unless the target is -inf: then they tie
        beats |= torch.isnan(scores) & low
    beats[:, 0] = False
    beats[:, n_items + 1:] = False
    beats.view(-1).index_fill_(0, hist_rows * beats.shape[1] + hist_items, False)
    beats.scatter_(1, target[:, None], False)   # the target does not beat itself
    return beats.sum(1, dtype=torch.int32).long()   # int32 sum: ~2x faster than bool -> int64


def sampled_ranks(scores: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Pessimistic rank of each target among itself and its sampled negatives (int64 [B])."""
    neg = torch.nan_to_num(scores.gather(1, negatives), nan=-float("inf"))
    return (neg >= _target_scores(scores, target)).sum(1)


def _negatives(data: PreparedDataset, split: str) -> np.ndarray:
    neg = np.asarray(data.valid_negatives if split == "valid" else data.test_negatives, dtype=np.int64)
    name = f"{split}_negatives"
    if neg.ndim != 2 or neg.shape[0] != data.n_users or neg.shape[1] == 0:
        raise ValueError(f"data.{name}: got shape {neg.shape}; the sampled protocol needs "
                         f"[n_users, N] = [{data.n_users}, N >= 1]")
    if neg.min() < 1 or neg.max() > data.n_items:
        raise ValueError(f"data.{name}: item ids must lie in 1..{data.n_items}")
    return neg


def compute_ranks(score_fn: ScoreFn, data: PreparedDataset, split: str, max_len: int,
                  batch_size: int = 1024, device: str | torch.device = "cpu",
                  protocols: Iterable[str] = PROTOCOLS) -> dict[str, np.ndarray]:
    """Ranks (int64 [n_users]) of every user's target under each protocol."""
    protocols = tuple(protocols)
    if not protocols:
        raise ValueError(f"protocols: got none; allowed: one or more of {', '.join(PROTOCOLS)}")
    for p in protocols:
        if p not in PROTOCOLS:
            raise ValueError(f"protocols: got {p!r}; allowed: {', '.join(PROTOCOLS)}")
    if split not in ("valid", "test"):
        raise ValueError(f"split: got {split!r}; allowed: 'valid' or 'test'")
    if batch_size < 1:
        raise ValueError(f"batch_size: got {batch_size}; allowed: an int >= 1")
    device = torch.device(device)
    n, width = data.n_users, data.n_items + 2
    inputs = torch.as_tensor(padded_histories(data, split, max_len), device=device)
    hist_users, hist_items, hist_starts = (torch.as_tensor(a, device=device)
                                           for a in history_pairs(data, split))
    hist_starts = hist_starts.tolist()
    target = torch.as_tensor(targets(data, split), device=device)
    negatives = torch.as_tensor(_negatives(data, split), device=device) if "sampled" in protocols else None
    users = torch.arange(n, device=device)
    out = {p: torch.empty(n, dtype=torch.int64, device=device) for p in protocols}
    with torch.no_grad():
        for lo in range(0, n, batch_size):
            sl = slice(lo, min(lo + batch_size, n))
            scores = score_fn(users[sl], inputs[sl]).to(device)
            if scores.shape != (sl.stop - lo, width):
                raise ValueError(f"score_fn: returned shape {tuple(scores.shape)}; expected "
                                 f"[batch, n_items + 2] = [{sl.stop - lo}, {width}]")
            if "full" in out:
                hs = slice(hist_starts[lo], hist_starts[sl.stop])
                out["full"][sl] = full_ranks(scores, target[sl], hist_users[hs] - lo,
                                             hist_items[hs], data.n_items)
            if negatives is not None:
                out["sampled"][sl] = sampled_ranks(scores, target[sl], negatives[sl])
    return {p: r.cpu().numpy() for p, r in out.items()}


def group_masks(data: PreparedDataset, split: str) -> dict[str, np.ndarray]:
    """Users in each group: by the TARGET item's tail flag, by the user's tail flag, and by
    whether the target repeats a history item."""
    tail_item = np.asarray(data.tail_items, dtype=bool)[targets(data, split)]
    tail_user = np.asarray(data.tail_users, dtype=bool)
    repeat = data.repeat_targets(split)
    return {"tail_item": tail_item, "head_item": ~tail_item,
            "tail_user": tail_user, "head_user": ~tail_user,
            "repeat_target": repeat, "new_target": ~repeat}


def _check_policy(repeats: str) -> None:
    if repeats not in REPEAT_POLICIES:
        raise ValueError(f"repeats: got {repeats!r}; allowed: {', '.join(REPEAT_POLICIES)}")


def summarize(ranks: dict[str, np.ndarray], groups: dict[str, np.ndarray],
              ks: Iterable[int], repeats: str = "keep") -> dict[str, float]:
    """The flat metric dict (see `evaluate`) from per-user ranks and group masks."""
    _check_policy(repeats)
    ks = tuple(ks)
    first = next(iter(ranks.values()))
    counted = np.ones(first.size, dtype=bool) if repeats == "keep" else groups["new_target"]
    out: dict[str, float] = {"n_users": int(counted.sum())}
    for g in GROUPS:
        out[f"n_{g}"] = int((groups[g] & counted).sum())
    for g in TARGET_GROUPS:
        out[f"n_{g}"] = int(groups[g].sum())
    for protocol, r in ranks.items():
        pre = "" if protocol == "full" else f"{protocol}_"
        out.update(rank_metrics(r[counted], ks, pre))
        for g in GROUPS:
            out.update(rank_metrics(r[groups[g] & counted], ks, f"{pre}{g}_"))
        for g in TARGET_GROUPS:
            out.update(rank_metrics(r[groups[g]], ks, f"{pre}{g}_"))
    return out


def evaluate(score_fn: ScoreFn, data: PreparedDataset, split: str, max_len: int,
             batch_size: int = 1024, device: str | torch.device = "cpu",
             ks: Iterable[int] = (5, 10, 20),
             protocols: Iterable[str] = PROTOCOLS, repeats: str = "keep") -> dict[str, float]:
    """Metrics of `score_fn` on the split, overall and per group, for each protocol.

    score_fn(users LongTensor[B], inputs LongTensor[B, max_len]) -> FloatTensor[B, n_items + 2]
    (columns 0 and n_items + 1 are ignored). Keys: hit_k / ndcg_k overall, with prefixes
    tail_item_ / head_item_ / tail_user_ / head_user_ / repeat_target_ / new_target_ per group,
    all again prefixed sampled_ for the sampled protocol; plus the counts n_users, n_<group>.
    `repeats` ("keep" or "exclude") is the repeat-target policy (module docstring); n_users and
    the four popularity groups count the users the policy keeps. An empty group scores 0.0.
    """
    _check_policy(repeats)
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks: got {ks}; allowed: one or more ints >= 1")
    ranks = compute_ranks(score_fn, data, split, max_len, batch_size, device, protocols)
    return summarize(ranks, group_masks(data, split), ks, repeats)
