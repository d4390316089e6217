"""A pre-norm transformer encoder shared by SASRec (causal) and Bert4Rec (bidirectional).

Written once so both backbones use the same block: attention over non-padding keys, then a
position-wise feed-forward, each with a residual and dropout, as in SASRec (Kang & McAuley 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TransformerBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"model.hidden_size {hidden} is not divisible by model.num_heads {heads}")
        self.heads = heads
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-8)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=1e-8)
        self.ffn = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden))
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x [B, L, H]; allowed [B, 1, L, L] bool (query i may look at key j)."""
        b, length, hidden = x.shape
        h = self.attn_norm(x)
        q, k, v = self.qkv(h).view(b, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        p = self.attn_dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        att = att.transpose(1, 2).reshape(b, length, hidden)
        x = x + self.dropout(self.out(att))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


def attention_mask(valid: torch.Tensor, causal: bool) -> torch.Tensor:
    """[B, 1, L, L] bool: keys must be real items (and not in the future when causal).

    Every query may always see itself, so rows of padding queries are never empty (an
    all-masked softmax row would be NaN); padding outputs are zeroed afterwards anyway.
    """
    length = valid.shape[1]
    eye = torch.eye(length, dtype=torch.bool, device=valid.device)
    allowed = valid[:, None, None, :].expand(-1, 1, length, length)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    return allowed | eye


class TransformerEncoder(nn.Module):
    """num_blocks transformer blocks and a final LayerNorm; padding positions output zero."""

    uses_positions = True

    def __init__(self, hidden: int, num_blocks: int, heads: int, dropout: float, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.blocks = nn.ModuleList(TransformerBlock(hidden, heads, dropout) for _ in range(num_blocks))
        self.final_norm = nn.LayerNorm(hidden, eps=1e-8)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        allowed = attention_mask(valid, self.causal)
        keep = valid.unsqueeze(-1).to(x.dtype)
        x = x * keep
        for block in self.blocks:
            x = block(x, allowed) * keep
        return self.final_norm(x) * keep
