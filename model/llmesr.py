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

The model owns its training loss (`calculate_loss`, RecBole's pattern): next-item prediction
(SASRec, GRU4Rec) or Bert4Rec's cloze task scored by the recommendation loss, plus
self-distillation from similar users, the item-cluster constraint (`self.icc`, its own weight)
and view contrast; model/losses.py holds the terms. Random draws happen in a fixed order (cloze
masks, then negatives, from the batch's seeded stream), so a run reproduces bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model import losses
from model.backbones import backbone_class
from model.backbones.transformer import attention_mask
from model.config import ModelConfig
from model.icc import ClusterConstraint
from model.sequences import trim

#: the loss terms, in the order they are summed and reported
PARTS = ("rec", "sd", "icc", "cl")


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
        sem = self.adapt(self.text_emb[ids]) if self.semantic else None
        return co, sem

    def all_item_views(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """item_views of every id 0..n_items + 1, without gathering rows."""
        co = self.id_emb.weight
        return co, (self.adapt(self.text_emb) if self.semantic else None)

    def adapt(self, text: torch.Tensor) -> torch.Tensor:
        """The semantic adapter on text embeddings [..., D] -> [..., H]. model.arithmetic lean
        folds its two linear layers (nothing between them) into one D x H map first: the same
        function, and over the whole item table (each training batch) about a ninth of the
        multiply-adds at D 384, middle width 768, H 64, in the backward pass too."""
        if self.cfg.arithmetic != "lean":
            return self.adapter(text)
        first, second = self.adapter
        return F.linear(text, second.weight @ first.weight, second(first.bias))

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
        return self.score_users(self.user_repr(inputs, views), views)

    def score_users(self, users: torch.Tensor, views: tuple) -> torch.Tensor:
        """`score` from user representations [B, repr_size] (user_repr) already computed."""
        scores = users @ self.join(*views).T
        scores[:, 0] = -torch.inf
        scores[:, self.mask_id] = -torch.inf
        return scores

    # ---- the training loss -------------------------------------------------------------------
    def calculate_loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss of one model.batches.Batch and its unweighted parts (PARTS, 0-d tensors):
        the model owns its objective, so the trainer only steps."""
        inputs, targets, predict, items = self._task(batch)
        co_all, sem_all = self.all_item_views()                         # adapter once per batch
        table = self.join(co_all, sem_all)      # before the sequences: autograd sums in this order
        sem_seq = None if sem_all is None else sem_all[inputs]
        states = self.encode_views(co_all[inputs], sem_seq, inputs > 0)
        rec = self._rec_loss(states[predict], targets[predict], table, batch.sample_gen)
        zero = rec.new_zeros(())
        parts = {"rec": rec, "sd": zero, "icc": zero, "cl": zero}
        if self.distils:
            parts["sd"] = losses.self_distillation(states[:, -1], self.teacher(batch))
        contrast = self.cfg.lambda_cl > 0 and self.semantic
        if self.icc is not None or contrast:
            present = losses.batch_item_presence(items, self.n_items + 2, self.mask_id)
            if self.icc is not None:
                parts["icc"] = self.icc(self.id_emb.weight, present)
            if contrast:
                chosen = torch.nonzero(present).squeeze(1)
                parts["cl"] = losses.view_contrast(co_all[chosen], sem_all[chosen], self.cfg.tau)
        return self._total(parts, contrast), parts

    def _total(self, parts: dict[str, torch.Tensor], contrast: bool) -> torch.Tensor:
        """rec + alpha * sd + gamma * icc + lambda_cl * cl, adding only the terms that are on."""
        weights, total = self.loss_weights(), parts["rec"]
        on = {"sd": self.distils, "icc": self.icc is not None, "cl": contrast}
        for key in ("sd", "icc", "cl"):
            if on[key]:
                total = total + weights[key] * parts[key]
        return total

    @property
    def distils(self) -> bool:
        """Whether self-distillation is a term (it needs the semantic view's user states)."""
        return self.cfg.alpha > 0 and self.semantic

    def loss_weights(self) -> dict[str, float]:
        """Each part's weight in the total: ICC's is its sub-module's (calibrated or gamma)."""
        gamma = self.icc.gamma if self.icc is not None else 0.0
        return {"rec": 1.0, "sd": self.cfg.alpha, "icc": gamma, "cl": self.cfg.lambda_cl}

    def loss_shares(self, parts: dict[str, float]) -> dict[str, float]:
        """Weighted share of each term in the total loss: how much, say, ICC really pulls."""
        return losses.shares(parts, self.loss_weights())

    def _task(self, batch):
        """(inputs, targets, predicted positions, the batch's input items) for the model's task."""
        if self.objective == "next":
            inputs, targets = batch.block[:, :-1], batch.block[:, 1:]
            return inputs, targets, inputs > 0, inputs
        return self._cloze(batch.block, batch.sample_gen)

    def _cloze(self, block: torch.Tensor, gen: torch.Generator):
        """Bert4Rec: mask a seeded random share of the last max_len items and predict them; every
        sequence predicts at least its last item. A block trimmed below max_len + 1 columns holds
        no older item, so it is the sequence as it is. A full window's first item is the last of
        the window before it (train.windows sliding), so each item is a cloze candidate once."""
        seq = block[:, 1:] if block.shape[1] > self.cfg.max_len else block
        valid = seq > 0
        draw = torch.rand(seq.shape, generator=gen, device=seq.device)
        masked = (draw < self.cfg.mask_prob) & valid
        masked[:, -1] |= ~masked.any(1) & valid[:, -1]
        inputs = torch.where(masked, torch.full_like(seq, self.mask_id), seq)
        return inputs, torch.where(masked, seq, torch.zeros_like(seq)), masked, seq

    def _rec_loss(self, states: torch.Tensor, targets: torch.Tensor, table: torch.Tensor,
                  gen: torch.Generator) -> torch.Tensor:
        """Full-softmax cross-entropy, sampled softmax or BCE against seeded negatives (drawn
        after the cloze masks)."""
        cfg = self.cfg
        if cfg.loss == "ce":
            return losses.rec_ce(states, targets, table, self.mask_id, real_only=cfg.arithmetic == "lean")
        if cfg.loss == "sampled_ce":
            negs = losses.uniform_negatives(self.n_items, cfg.negatives, gen, states.device)
            return losses.rec_sampled_ce(states, targets, table, negs)
        negs = torch.randint(1, self.n_items + 1, (targets.shape[0], cfg.n_negatives),
                             generator=gen, device=states.device)
        return losses.rec_bce(states, targets, negs, lambda i: table[i])

    def frozen_user_reps(self, histories: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """User representations as targets: no grad, no dropout (eval mode), inference form
        (Bert4Rec: history + mask token); `chunk` histories at a time if given, the item views
        adapted once for all chunks (each chunk would adapt the whole item table again)."""
        was_training = self.training
        self.eval()                       # a target, not a sample: no dropout noise (and cheaper)
        try:
            with torch.no_grad():
                if chunk is None:
                    return self.user_repr(histories)
                views = self.all_item_views() if self.semantic else None
                return torch.cat([self.user_repr(histories[i:i + chunk], views)
                                  for i in range(0, histories.shape[0], chunk)])
        finally:
            self.train(was_training)

    def teacher(self, batch) -> torch.Tensor:
        """Mean representation of the K users similar to each window's owner (their newest
        windows: the users' representations, whichever of its owner's windows a row is)."""
        sim = batch.similar                                              # [B, K]
        if batch.teacher_reps is not None:
            return batch.teacher_reps[sim].mean(1)
        reps = self.frozen_user_reps(batch.newest[sim.reshape(-1), 1:])  # [B*K, R]
        return reps.view(sim.shape[0], sim.shape[1], -1).mean(1)


def pca_matrix(data, hidden: int, seed: int = 42) -> np.ndarray:
    """[n_items + 1, hidden] PCA of the item text embeddings (row 0 zero): the prepared one
    when its size matches, else recomputed at `hidden` dims."""
    if data.item_pca.shape[1] == hidden:
        return np.asarray(data.item_pca, np.float32)
    from datasets.pca import pca_reduce

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
        model.icc = ClusterConstraint(clusters.item_targets, clusters.constrained, model_cfg.gamma,
                                      getattr(clusters, "quality", None))
    return model
