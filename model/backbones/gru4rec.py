"""GRU4Rec: a stacked GRU over the item sequence (num_blocks layers), next-item objective.

Sequences arrive left-padded. The GRU must not read the padding (its hidden state would drift
on zero inputs, making outputs depend on how much padding a batch has), so each row is rotated
to right-padding, run as a packed sequence, and rotated back.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class GRU4Rec(nn.Module):
    objective = "next"
    uses_positions = False
    causal = True

    def __init__(self, hidden: int, num_blocks: int, heads: int, dropout: float, causal: bool = True) -> None:
        super().__init__()
        self.gru = nn.GRU(hidden, hidden, num_layers=num_blocks, batch_first=True,
                          dropout=dropout if num_blocks > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        lengths = valid.sum(1)
        cols = torch.arange(length, device=x.device)
        to_right = (cols[None, :] + (length - lengths)[:, None]) % length     # [B, L]
        right = torch.gather(x, 1, to_right[..., None].expand_as(x))
        packed = pack_padded_sequence(right, lengths.clamp(min=1).cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=length)
        to_left = (cols[None, :] + lengths[:, None]) % length
        out = torch.gather(out, 1, to_left[..., None].expand_as(out))
        return self.dropout(out) * valid.unsqueeze(-1).to(x.dtype)
