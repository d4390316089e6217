"""LLM-ESR (Liu et al., NeurIPS 2024) over a sequential backbone: two item views, one encoder.

Semantic view: frozen item text embeddings -> adapter -> H. The paper's code uses two Linear
layers with no activation or dropout between them (D -> D/2 -> H); we keep that shape, with
the middle width `adapter_hidden`. Collaborative view: trainable ID embeddings (H), initialised
from the PCA of the text embeddings. Each view's sequence is scaled by sqrt(H), given positional
embeddings (transformers) and dropout, optionally mixed by cross-attention (each view's stream
keeps its own values and takes its queries from the other view, as LLM-ESR's llm2id/id2llm do,
so each half of the user state stays in the space of the item table it is scored against;
causal whenever the backbone is; `cross_residual` adds each view's sequence back, which
LLM-ESR's code does not), then the SAME encoder runs on both (stacked into one batch).
User = [co_out, sem_out] at the last position; item = [co, sem]; score = dot product (2H). `semantic_view=False` is the plain backbone on ID embeddings (H).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.backbones import backbone_class
from model.backbones.transformer import attention_mask
from model.config import ModelConfig
from model.icc import ClusterConstraint


class CrossAttention(nn.Module):
    """Multi-head attention whose queries come from one view and keys/values from the other:
    the output is a mixture of the `context` view's vectors, chosen by the `query` view."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(hidden, hidden, bias=False)
        self.k = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, hidden)
        self.dropout = dropout

    def forward(self, query: torch.Tensor, context: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, length, hidden = query.shape
        d = hidden // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.heads, d).transpose(1, 2)

        p = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(split(self.q(query)), split(self.k(context)),
                                             split(self.v(context)), attn_mask=allowed, dropout_p=p)
        return self.out(att.transpose(1, 2).reshape(b, length, hidden))


class LLMESR(nn.Module):
    def __init__(self, cfg: ModelConfig, n_items: int, text_emb: np.ndarray | None,
                 id_init: np.ndarray | None) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_items = n_items
        self.mask_id = n_items + 1
        self.hidden = cfg.hidden_size
        self.semantic = cfg.semantic_view
        encoder_cls = backbone_class(cfg.backbone)
        self.encoder = encoder_cls(cfg.hidden_size, cfg.num_blocks, cfg.num_heads, cfg.dropout, cfg.causal)
        self.objective = encoder_cls.objective
        self.causal = bool(getattr(self.encoder, "causal", True))
        self.id_emb = nn.Embedding(n_items + 2, cfg.hidden_size, padding_idx=0)
        self._init_id_embeddings(id_init)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden_size) if self.encoder.uses_positions else None
        if self.pos_emb is not None:
            nn.init.xavier_normal_(self.pos_emb.weight)
        self.emb_dropout = nn.Dropout(cfg.dropout)
        self.icc: ClusterConstraint | None = None     # the ICC term, set by build_model when ICC is on
        self.cross = None
        if self.semantic:
            if text_emb is None:
                raise ValueError("model.semantic_view is true but the dataset has no item text embeddings")
            text = np.concatenate([np.asarray(text_emb, dtype=np.float32),
                                   np.zeros((1, text_emb.shape[1]), np.float32)])
            self.register_buffer("text_emb", torch.from_numpy(text), persistent=False)  # frozen input data: rebuilt from the dataset, kept out of checkpoints
            self.adapter = nn.Sequential(nn.Linear(text.shape[1], cfg.adapter_hidden),
                                         nn.Linear(cfg.adapter_hidden, cfg.hidden_size))
            if cfg.cross_attention:
                heads = cfg.num_heads
                self.cross = nn.ModuleDict({
                    "co": CrossAttention(cfg.hidden_size, heads, cfg.dropout),
                    "sem": CrossAttention(cfg.hidden_size, heads, cfg.dropout),
                })

    def _init_id_embeddings(self, id_init: np.ndarray | None) -> None:
        """PCA rows for items 1..n (padding and mask rows zero), else Xavier-normal."""
        with torch.no_grad():
            if id_init is None:
                nn.init.xavier_normal_(self.id_emb.weight)
            else:
                if id_init.shape != (self.n_items + 1, self.hidden):
                    raise ValueError(f"PCA init has shape {id_init.shape}; expected "
                                     f"({self.n_items + 1}, {self.hidden}) = (n_items + 1, model.hidden_size)")
                self.id_emb.weight.zero_()
                self.id_emb.weight[1:self.n_items + 1] = torch.from_numpy(np.asarray(id_init[1:], np.float32))
            self.id_emb.weight[0].zero_()

    @property
    def repr_size(self) -> int:
        return 2 * self.hidden if self.semantic else self.hidden

    # ---- item views -------------------------------------------------------------------
    def item_views(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(collaborative, semantic) embeddings of item ids (any shape); semantic None if plain."""
        co = self.id_emb(ids)
        sem = self.adapter(self.text_emb[ids]) if self.semantic else None
        return co, sem

    def all_item_views(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """item_views of every id 0..n_items + 1, without gathering rows."""
        co = self.id_emb.weight
        return co, (self.adapter(self.text_emb) if self.semantic else None)

    def item_table(self) -> torch.Tensor:
        """Representation of every item id [n_items + 2, repr_size] (score = user @ table.T)."""
        return self.join(*self.all_item_views())

    @staticmethod
    def join(co: torch.Tensor, sem: torch.Tensor | None) -> torch.Tensor:
        return co if sem is None else torch.cat([co, sem], dim=-1)

    # ---- sequences ----------------------------------------------------------------------
    def _prepare(self, seq: torch.Tensor) -> torch.Tensor:
        if self.pos_emb is not None:
            seq = seq * math.sqrt(self.hidden) + self.pos_emb.weight[-seq.shape[1]:]
        return self.emb_dropout(seq)

    def encode_views(self, co: torch.Tensor, sem: torch.Tensor | None, valid: torch.Tensor) -> torch.Tensor:
        """Encode the view sequences [B, L, H] -> per-position user states [B, L, repr_size]."""
        co = self._prepare(co)
        if sem is None:
            return self.encoder(co, valid)
        sem = self._prepare(sem)
        if self.cross is not None:
            allowed = attention_mask(valid, self.causal)
            co_mixed, sem_mixed = self.cross["co"](sem, co, allowed), self.cross["sem"](co, sem, allowed)
            if self.cfg.cross_residual:
                co, sem = co + co_mixed, sem + sem_mixed
            else:
                co, sem = co_mixed, sem_mixed
        out = self.encoder(torch.cat([co, sem]), torch.cat([valid, valid]))
        half = co.shape[0]
        return torch.cat([out[:half], out[half:]], dim=-1)

    def encode(self, inputs: torch.Tensor, views: tuple | None = None) -> torch.Tensor:
        """Item id sequences [B, L] (left-padded) -> states [B, L, repr_size]. `views` may hold
        all_item_views() computed once by the caller (evaluation, teachers)."""
        if views is None and self.semantic and inputs.numel() > self.n_items + 2:
            views = self.all_item_views()                  # cheaper: adapt the table once
        if views is not None:
            co_all, sem_all = views
            co, sem = co_all[inputs], (None if sem_all is None else sem_all[inputs])
        else:
            co, sem = self.item_views(inputs)
        return self.encode_views(co, sem, inputs > 0)

    def inference_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Bert4Rec predicts a trailing mask token: drop the oldest item, append the mask id."""
        if self.objective != "cloze":
            return inputs
        mask = torch.full_like(inputs[:, :1], self.mask_id)
        return torch.cat([inputs[:, 1:], mask], dim=1)

    def user_repr(self, inputs: torch.Tensor, views: tuple | None = None) -> torch.Tensor:
        """Last-position state of left-padded histories [B, L] -> [B, repr_size]."""
        return self.encode(trim(self.inference_inputs(inputs)), views)[:, -1]

    def score(self, inputs: torch.Tensor, views: tuple | None = None) -> torch.Tensor:
        """Scores of every item id [B, n_items + 2]; padding and mask columns get -inf.
        `views` = all_item_views(), computed once per evaluation by the caller."""
        views = self.all_item_views() if views is None else views
        scores = self.user_repr(inputs, views) @ self.join(*views).T
        scores[:, 0] = -torch.inf
        scores[:, self.mask_id] = -torch.inf
        return scores


def trim(block: torch.Tensor) -> torch.Tensor:
    """Drop leading columns that are padding in every row. Outputs at real positions do not
    change (positions count from the right, padding keys are masked, the GRU skips padding);
    only the cost does. One host sync per call."""
    used = int((block > 0).sum(1).max())
    return block[:, block.shape[1] - max(used, 1):]


def pca_matrix(data, hidden: int, seed: int = 42) -> np.ndarray:
    """[n_items + 1, hidden] PCA of the item text embeddings (row 0 zero): the prepared one
    when its size matches, else recomputed at `hidden` dims."""
    if data.item_pca.shape[1] == hidden:
        return np.asarray(data.item_pca, np.float32)
    from datasets import pca_reduce

    reduced = np.asarray(pca_reduce(data.item_text_emb, hidden, seed), np.float32)
    reduced[0] = 0.0
    return reduced


def build_model(model_cfg: ModelConfig, data, clusters=None) -> LLMESR:
    """The model for a prepared dataset; with `clusters` (given when ICC is on) it holds its ICC
    term as `model.icc` (checked here against the item table), else `model.icc` is None."""
    if model_cfg.max_len < 2:
        raise ValueError(f"model.max_len: got {model_cfg.max_len}; allowed: int >= 2")
    if clusters is not None and clusters.item_targets.shape != (data.n_items + 2, model_cfg.hidden_size):
        raise ValueError(f"cluster targets have shape {clusters.item_targets.shape}; expected "
                         f"({data.n_items + 2}, {model_cfg.hidden_size}) = (n_items + 2, model.hidden_size)")
    text = data.item_text_emb if model_cfg.semantic_view else None
    init = pca_matrix(data, model_cfg.hidden_size) if model_cfg.pca_init else None
    model = LLMESR(model_cfg, data.n_items, text, init)
    if clusters is not None:
        model.icc = ClusterConstraint(clusters.item_targets, clusters.constrained, model_cfg.gamma)
    return model
