"""The total loss of a batch (LLMESR.calculate_loss) on a tiny hand-made dataset:

- total = rec + alpha * sd + gamma * icc + lambda_cl * cl, each weight and sign checked by
  changing that weight alone (doubling alpha adds exactly alpha * sd to the total);
- each part recomputed independently from the dataset's sequences (not from the training
  tensors the code builds): next-item targets, predicted positions, teachers from the similar
  users' training histories, ICC over the batch's distinct input items, view contrast over them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.batches import TrainBatches
from model.config import ModelConfig
from model.llmesr import build_model
from model.icc import icc_on
from synthetic_data import cluster_targets, sentinel_dataset
from test_loss_terms import info_nce_by_hand

HIDDEN = 4
MAX_LEN = 6
WEIGHTS = {"alpha": ("sd", 0.3), "gamma": ("icc", 0.7), "lambda_cl": ("cl", 1.9)}
CPU = torch.device("cpu")
ROUNDING = 1e-5      # float32 rounding of totals near 10, when two of them are subtracted


@pytest.fixture(scope="module")
def data():
    return sentinel_dataset(n_users=10, pool=15, train_len=(2, 9), dim=6)


@pytest.fixture(scope="module")
def clusters(data):
    return cluster_targets(data, HIDDEN)


def config(backbone: str = "sasrec", **changes) -> ModelConfig:
    base = dict(backbone=backbone, hidden_size=HIDDEN, max_len=MAX_LEN, num_blocks=1, num_heads=1,
                adapter_hidden=8, dropout=0.0, alpha=0.3, gamma=0.7, lambda_cl=1.9, tau=0.5, loss="ce")
    return ModelConfig(**{**base, **changes})


def model_for(cfg: ModelConfig, data, clusters, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(cfg, data, clusters if icc_on(cfg) else None).train()


def loss_of(model, cfg: ModelConfig, data, clusters, users: torch.Tensor):
    """model.calculate_loss with fresh batches (same seed: the same negatives and cloze masks
    every call), on a model of `cfg` (its weights, its ICC term only when ICC is on, as in a run)
    holding `model`'s parameters."""
    batches = TrainBatches(data, cfg, CPU, seed=5)
    twin = model_for(cfg, data, clusters)
    twin.load_state_dict(model.state_dict())
    total, parts = twin.calculate_loss(batches.batch(users))
    return total.item(), {k: v.item() for k, v in parts.items()}


# ---------------------------------------------------------------- composition: weights and signs

@pytest.mark.parametrize("backbone, loss", [("sasrec", "ce"), ("sasrec", "bce"), ("gru4rec", "bce"),
                                            ("bert4rec", "ce")])
def test_total_is_rec_plus_weighted_terms(data, clusters, backbone, loss):
    cfg = config(backbone, loss=loss)
    model = model_for(cfg, data, clusters)
    total, parts = loss_of(model, cfg, data, clusters, torch.arange(data.n_users))
    assert all(parts[k] > 0 for k in ("rec", "sd", "icc", "cl")), parts       # every term is live
    expected = parts["rec"] + sum(weight * parts[part] for part, weight in WEIGHTS.values())
    assert total == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", sorted(WEIGHTS))
@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec"])
def test_each_weight_scales_its_own_term_only(data, clusters, backbone, name):
    part, weight = WEIGHTS[name]
    cfg = config(backbone)
    model = model_for(cfg, data, clusters)
    users = torch.arange(data.n_users)
    total, parts = loss_of(model, cfg, data, clusters, users)
    doubled_total, doubled_parts = loss_of(model, dataclasses.replace(cfg, **{name: 2 * weight}),
                                           data, clusters, users)
    assert doubled_parts == parts                                   # the terms do not depend on it
    assert doubled_total - total == pytest.approx(weight * parts[part], rel=1e-4, abs=ROUNDING)
    off_total, off_parts = loss_of(model, dataclasses.replace(cfg, **{name: 0.0}), data, clusters, users)
    assert off_parts[part] == 0.0
    assert total - off_total == pytest.approx(weight * parts[part], rel=1e-4, abs=ROUNDING)


def test_plain_backbone_has_no_semantic_terms(data, clusters):
    cfg = config(semantic_view=False, pca_init=False)
    model = model_for(cfg, data, clusters)
    total, parts = loss_of(model, cfg, data, clusters, torch.arange(data.n_users))
    assert parts["sd"] == parts["cl"] == 0.0 and parts["icc"] > 0
    assert total == pytest.approx(parts["rec"] + 0.7 * parts["icc"], rel=1e-6)


# ---------------------------------------------------------------- parts recomputed independently

def training_windows(data, users: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded next-item inputs and targets from the sequences themselves: the training part
    is seq[:-2]; its last MAX_LEN + 1 items give inputs [:-1] and targets [1:]."""
    inputs, targets = np.zeros((len(users), MAX_LEN), np.int64), np.zeros((len(users), MAX_LEN), np.int64)
    for row, user in enumerate(users):
        train = data.sequence(user)[:-2][-(MAX_LEN + 1):]
        width = len(train) - 1
        if width > 0:
            inputs[row, MAX_LEN - width:] = train[:-1]
            targets[row, MAX_LEN - width:] = train[1:]
    return inputs, targets


def last_history(data, user: int) -> torch.Tensor:
    """The last MAX_LEN training items of a user, left-padded (a teacher's input)."""
    train = data.sequence(user)[:-2][-MAX_LEN:]
    out = np.zeros(MAX_LEN, np.int64)
    out[MAX_LEN - len(train):] = train
    return torch.from_numpy(out)


def drop_empty_columns(*arrays: torch.Tensor) -> list[torch.Tensor]:
    used = int((arrays[0] > 0).sum(1).max())
    return [a[:, a.shape[1] - used:] for a in arrays]


def test_sasrec_parts_recomputed_from_the_sequences(data, clusters):
    cfg = config("sasrec", loss="ce")
    model = model_for(cfg, data, clusters)
    users = [0, 3, 4, 7, 9]
    total, parts = loss_of(model, cfg, data, clusters, torch.tensor(users))
    inputs, targets = (torch.from_numpy(a) for a in training_windows(data, users))
    inputs, targets = drop_empty_columns(inputs, targets)
    with torch.no_grad():
        states = model.encode(inputs, model.all_item_views())
        table = model.item_table()
        predicted = inputs > 0
        logits = states[predicted] @ table.T
        real = logits[:, 1:data.n_items + 1]                       # items 1..n only
        rec = F.cross_entropy(real, targets[predicted] - 1).item()
        teachers = torch.stack([model.eval().user_repr(torch.stack([last_history(data, v) for v in
                                                                   data.similar_users[u]])).mean(0)
                                for u in users])
        model.train()
        sd = ((states[:, -1] - teachers) ** 2).mean().item()
    items = sorted({int(i) for i in inputs[inputs > 0]})
    weight = model.id_emb.weight.detach()
    icc_items = [i for i in items if clusters.constrained[i]]
    icc = sum(float(((weight[i] - torch.from_numpy(clusters.item_targets[i])) ** 2).sum())
              for i in icc_items) / len(icc_items)
    co, sem = model.all_item_views()
    cl = info_nce_by_hand(co.detach()[items].tolist(), sem.detach()[items].tolist(), cfg.tau)
    assert parts["rec"] == pytest.approx(rec, rel=1e-5)
    assert parts["sd"] == pytest.approx(sd, rel=1e-5)
    assert parts["icc"] == pytest.approx(icc, rel=1e-5)
    assert parts["cl"] == pytest.approx(cl, rel=1e-5)
    assert total == pytest.approx(rec + 0.3 * sd + 0.7 * icc + 1.9 * cl, rel=1e-5)


def test_bce_negatives_are_the_seeded_draw_and_enter_with_their_sign(data, clusters):
    cfg = config("sasrec", loss="bce", n_negatives=2, alpha=0.0, gamma=0.0, lambda_cl=0.0)
    model = model_for(cfg, data, None)
    users = [1, 2, 5]
    _, parts = loss_of(model, cfg, data, None, torch.tensor(users))
    inputs, targets = (torch.from_numpy(a) for a in training_windows(data, users))
    inputs, targets = drop_empty_columns(inputs, targets)
    draw = torch.Generator().manual_seed(5 + 1)                     # TrainBatches' sampling stream
    with torch.no_grad():
        states = model.encode(inputs, model.all_item_views())[inputs > 0]
        table = model.item_table()
        negatives = torch.randint(1, data.n_items + 1, (states.shape[0], 2), generator=draw)
        pos = (states * table[targets[inputs > 0]]).sum(-1)
        neg = torch.einsum("pr,pnr->pn", states, table[negatives])
    by_hand = sum(-math.log(torch.sigmoid(p).item()) - sum(math.log(1 - torch.sigmoid(n).item()) for n in row)
                  for p, row in zip(pos, neg)) / len(pos)
    assert parts["rec"] == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("users", [[0, 2, 6, 8], [2, 4, 5, 9]], ids=["some-long", "all-short"])
def test_bert4rec_predicts_exactly_its_masked_positions(data, users):
    """The cloze sequence is each user's last MAX_LEN training items, also in a batch where
    nobody has more (the longest user's oldest item once fell off there)."""
    cfg = config("bert4rec", loss="ce", alpha=0.0, gamma=0.0, lambda_cl=0.0, mask_prob=0.5)
    model = model_for(cfg, data, None)
    _, parts = loss_of(model, cfg, data, None, torch.tensor(users))
    seq = drop_empty_columns(torch.stack([last_history(data, u) for u in users]))[0]
    draw = torch.Generator().manual_seed(5 + 1)
    masked = (torch.rand(seq.shape, generator=draw) < 0.5) & (seq > 0)
    masked[:, -1] |= ~masked.any(1) & (seq[:, -1] > 0)
    inputs = torch.where(masked, torch.full_like(seq, data.n_items + 1), seq)
    with torch.no_grad():
        states = model.encode(inputs, model.all_item_views())[masked]
        logits = states @ model.item_table().T
        rec = F.cross_entropy(logits[:, 1:data.n_items + 1], seq[masked] - 1).item()
    assert parts["rec"] == pytest.approx(rec, rel=1e-5)


def test_bert4rec_batch_items_are_every_recent_training_item(data):
    """What the cloze objective sees (and ICC / view contrast take as the batch's items)."""
    cfg = config("bert4rec", alpha=0.0, gamma=0.0, lambda_cl=0.0)
    model = model_for(cfg, data, None)
    batches = TrainBatches(data, cfg, CPU, seed=5)
    for users in ([4], [2, 4, 5, 9], list(range(data.n_users))):
        *_, seq = model._task(batches.batch(torch.tensor(users)))
        expected = drop_empty_columns(torch.stack([last_history(data, u) for u in users]))[0]
        assert torch.equal(seq, expected), users
