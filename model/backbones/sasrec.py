"""SASRec: causal self-attention over the item sequence, trained on next-item prediction.

`causal=False` drops the future mask, which reproduces the LLM-ESR seed code (it omitted it).
"""

from __future__ import annotations

from model.backbones.transformer import TransformerEncoder


class SASRec(TransformerEncoder):
    objective = "next"

    def __init__(self, hidden: int, num_blocks: int, heads: int, dropout: float, causal: bool = True) -> None:
        super().__init__(hidden, num_blocks, heads, dropout, causal=causal)
