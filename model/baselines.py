"""Training-free reference scorers: what the item text, popularity and the history alone reach.

They set the floor a trained variant has to clear under the same evaluator. On sparse Amazon
data the text of a user's last item is a strong signal: a model that ends below the text scorer
has lost what its own inputs carried (docs/studies/fixed-setting-runs.md shows how LLM-ESR's
cross-attention did). On repeat-heavy data "the user's own history by recency, then popularity"
is the floor: full ranking masks every history item except the target, so a repeat target is
found at once.
Each returns a score function for `model.evaluate.evaluate`.
"""

from __future__ import annotations

import numpy as np
import torch

from datasets.prepared import PreparedDataset

BASELINES = ("last_item_text", "popularity", "history_then_popularity")


def _with_mask_row(rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows 0..n_items as float32 plus a zero row for the mask id n_items + 1, on the device."""
    rows = np.asarray(rows, np.float32)
    return torch.from_numpy(np.concatenate([rows, np.zeros_like(rows[:1])])).to(device)


def last_item_text_scorer(data: PreparedDataset, device: str | torch.device = "cpu"):
    """Cosine between the text embedding of the user's last input item and every item's."""
    device = torch.device(device)
    text = torch.nn.functional.normalize(_with_mask_row(data.item_text_emb, device), dim=-1)

    def score(users: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return text[inputs[:, -1].to(device)] @ text.T

    return score


def popularity_scorer(data: PreparedDataset, device: str | torch.device = "cpu"):
    """Training interactions of each item, the same for every user."""
    device = torch.device(device)
    counts = _with_mask_row(data.item_train_count, device)

    def score(users: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return counts.expand(inputs.shape[0], -1)

    return score


def history_then_popularity_scorer(data: PreparedDataset, device: str | torch.device = "cpu"):
    """The user's input items, most recent first, above every other item; the rest by training
    popularity. Scores: popularity / (max + 1) in [0, 1) for every item, 1 + position / L for
    items in the input window (the latest occurrence of a repeated item wins)."""
    device = torch.device(device)
    counts = _with_mask_row(data.item_train_count, device)
    base = counts / (counts.max() + 1.0)

    def score(users: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.to(device)
        length = inputs.shape[1]
        recency = 1.0 + torch.arange(1, length + 1, device=device, dtype=base.dtype) / length
        scores = base.expand(inputs.shape[0], -1).clone()
        recency = torch.where(inputs > 0, recency.expand_as(inputs), torch.zeros_like(recency))
        return scores.scatter_reduce(1, inputs, recency, reduce="amax")

    return score


def baseline_scorer(name: str, data: PreparedDataset, device: str | torch.device = "cpu"):
    """The scorer called `name`; a clear error names the known ones."""
    if name == "last_item_text":
        return last_item_text_scorer(data, device)
    if name == "popularity":
        return popularity_scorer(data, device)
    if name == "history_then_popularity":
        return history_then_popularity_scorer(data, device)
    raise ValueError(f"baseline: got {name!r}; allowed: {', '.join(BASELINES)}")


def reference_metrics(data: PreparedDataset, split: str, max_len: int, repeats: str = "keep",
                      device: str | torch.device = "cpu") -> dict[str, dict[str, float]]:
    """Every reference scorer's metrics on `split`, under the same protocol as a trained model."""
    from model.evaluate import evaluate
    from model.sequences import capped_max_len

    max_len = capped_max_len(max_len, data)[0]        # the same ranks, without padding columns
    return {name: evaluate(baseline_scorer(name, data, device), data, split, max_len, device=device,
                           repeats=repeats)
            for name in BASELINES}
