"""Bert4Rec: bidirectional self-attention trained with the cloze task.

Training masks items with the mask id and predicts them; at inference the mask id is appended
after the history (the model's `inference_inputs` shifts the history left by one).
"""

from __future__ import annotations

from model.backbones.transformer import TransformerEncoder


class Bert4Rec(TransformerEncoder):
    objective = "cloze"

    def __init__(self, hidden: int, num_blocks: int, heads: int, dropout: float, causal: bool = False) -> None:
        super().__init__(hidden, num_blocks, heads, dropout, causal=False)
