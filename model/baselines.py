"""Training-free reference scorers: what the item text alone, and popularity alone, reach.

They set the floor a trained variant has to clear under the same evaluator. On sparse Amazon
data the text of a user's last item is a strong signal: a model that ends below the text scorer
has lost what its own inputs carried (the README shows how LLM-ESR's cross-attention did).
Both return score functions for `model.evaluate.evaluate`.
"""

from __future__ import annotations

import numpy as np
import torch

from datasets.prepared import PreparedDataset

BASELINES = ("last_item_text", "popularity")


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


def baseline_scorer(name: str, data: PreparedDataset, device: str | torch.device = "cpu"):
    """The scorer called `name`; a clear error names the known ones."""
    if name == "last_item_text":
        return last_item_text_scorer(data, device)
    if name == "popularity":
        return popularity_scorer(data, device)
    raise ValueError(f"baseline: got {name!r}; allowed: {', '.join(BASELINES)}")
