"""The LLM-ESR model and its losses on real data (a subset of Amazon Scientific users)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cluster_prep.config import ClusterConfig
from conftest import user_subset
from model import losses
from model.batches import TrainBatches, training_block
from model.config import ModelConfig, TrainConfig
from model.llmesr import build_model, pca_matrix
from model.pipeline import assemble_trainer

HIDDEN = 32
N_USERS = 200


@pytest.fixture(scope="module")
def small(scientific):
    return user_subset(scientific, N_USERS)


@pytest.fixture(scope="module")
def clusters(small, tmp_path_factory):
    from cluster_prep.build import build_clusters

    return build_clusters(small, ClusterConfig(n_clusters=16), tmp_path_factory.mktemp("clusters"),
                          pca_matrix(small, HIDDEN))


def model_cfg(backbone: str, variant: str = "llmesr", **extra) -> ModelConfig:
    options = {"plain": dict(semantic_view=False, gamma=0.0, alpha=0.0),
               "llmesr": dict(gamma=0.0),
               "icc": dict(gamma=0.1),
               "icc_cl": dict(gamma=0.1, lambda_cl=0.1)}[variant]
    base = dict(backbone=backbone, hidden_size=HIDDEN, max_len=12, num_heads=2, adapter_hidden=64)
    return ModelConfig(**{**base, **options, **extra})


def train_cfg(**extra) -> TrainConfig:
    return TrainConfig(**{**dict(lr=3e-3, batch_size=50, epochs=2, patience=0, device="cpu",
                                 seed=7, eval_batch_size=512), **extra})


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["plain", "llmesr", "icc", "icc_cl"])
@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec", "gru4rec"])
def test_every_backbone_and_variant_trains(small, clusters, backbone, variant):
    trainer = assemble_trainer(model_cfg(backbone, variant), train_cfg(), small, clusters)
    first, second = trainer.train_epoch(), trainer.train_epoch()
    assert np.isfinite([first.train_loss, second.train_loss]).all()
    assert second.train_loss < first.train_loss
    assert 0.0 <= second.valid["ndcg_10"] <= 1.0 and "sampled_ndcg_10" in second.valid
    parts = second.loss_parts
    assert (parts["icc"] > 0) == variant.startswith("icc")
    assert (parts["cl"] > 0) == (variant == "icc_cl")
    assert (parts["sd"] > 0) == (variant != "plain")


@pytest.mark.parametrize("semantic", [False, True])
def test_causal_mask_hides_the_future(small, semantic):
    torch.manual_seed(0)
    inputs = torch.from_numpy(training_block(small, 12)[:8, 1:]).clone()
    changed = inputs.clone()
    changed[:, -1] = (changed[:, -1] % small.n_items) + 1         # another real item, last position
    for causal, same in ((True, True), (False, False)):
        model = build_model(model_cfg("sasrec", semantic_view=semantic, causal=causal), small).eval()
        with torch.no_grad():
            a, b = model.encode(inputs)[:, :-1], model.encode(changed)[:, :-1]
        assert torch.equal(a, b) is same
        assert not torch.equal(model.encode(inputs)[:, -1], model.encode(changed)[:, -1])


@pytest.mark.parametrize("residual", [False, True])
def test_cross_attention_keeps_each_views_own_values(small, residual):
    """With one real item the attention weight is 1 whatever the query, so the collaborative
    half of the state depends on the item's ID vector alone and the semantic half on its text
    (LLM-ESR's wiring; swapping the views scored each half against the wrong item table)."""
    model = build_model(model_cfg("sasrec", cross_residual=residual), small).eval()
    inputs = torch.tensor([[0, 0, 5], [0, 0, 9]])
    with torch.no_grad():
        before = model.encode(inputs)[:, -1]
        model.text_emb[[5, 9]] = torch.randn(2, model.text_emb.shape[1])
        text_changed = model.encode(inputs)[:, -1]
        model.id_emb.weight[[5, 9]] = torch.randn(2, HIDDEN)
        id_changed = model.encode(inputs)[:, -1]
    assert torch.allclose(before[:, :HIDDEN], text_changed[:, :HIDDEN], atol=1e-6)
    assert not torch.allclose(before[:, HIDDEN:], text_changed[:, HIDDEN:], atol=1e-3)
    assert torch.allclose(text_changed[:, HIDDEN:], id_changed[:, HIDDEN:], atol=1e-6)
    assert not torch.allclose(text_changed[:, :HIDDEN], id_changed[:, :HIDDEN], atol=1e-3)


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec", "gru4rec"])
def test_extra_left_padding_changes_nothing(small, backbone):
    model = build_model(model_cfg(backbone), small).eval()
    inputs = torch.from_numpy(training_block(small, 6)[:16, 1:])
    padded = torch.cat([torch.zeros(16, 6, dtype=torch.long), inputs], dim=1)
    with torch.no_grad():
        assert torch.allclose(model.encode(inputs), model.encode(padded)[:, 6:], atol=1e-5)


def test_bert4rec_appends_the_mask_token(small):
    model = build_model(model_cfg("bert4rec"), small)
    inputs = torch.tensor([[0, 0, 5, 6], [1, 2, 3, 4]])
    mask = small.n_items + 1
    assert model.inference_inputs(inputs).tolist() == [[0, 5, 6, mask], [2, 3, 4, mask]]


def test_icc_zero_on_targets_and_ignores_noise_padding_mask(small, clusters):
    targets = torch.from_numpy(clusters.item_targets)
    constrained = torch.from_numpy(clusters.constrained)
    assert not constrained[0] and not constrained[small.n_items + 1]
    weight = torch.randn_like(targets) * 5
    weight[constrained] = targets[constrained]                   # every constrained item on target
    items = torch.arange(small.n_items + 2).view(1, -1)          # padding, mask, noise all present
    present = losses.batch_item_presence(items, small.n_items + 2, small.n_items + 1)
    assert losses.icc_loss(weight, present, targets, constrained).item() == 0.0
    moved = weight.clone()
    item = int(torch.nonzero(constrained)[0])
    moved[item] += 2.0                                           # off by 2 in each of H dims
    value = losses.icc_loss(moved, present, targets, constrained).item()
    assert value == pytest.approx(4.0 * HIDDEN / int(constrained.sum()))
    only_pad = losses.batch_item_presence(torch.tensor([[0, 0, small.n_items + 1]]), small.n_items + 2,
                                          small.n_items + 1)
    assert losses.icc_loss(moved, only_pad, targets, constrained).item() == 0.0


def test_gamma_zero_is_exactly_off(small, clusters):
    cfg = model_cfg("sasrec", gamma=0.0)
    with_clusters = assemble_trainer(cfg, train_cfg(epochs=1), small, clusters)
    without = assemble_trainer(cfg, train_cfg(epochs=1), small, None)
    a, b = with_clusters.train_epoch(), without.train_epoch()
    assert a.loss_parts["icc"] == 0.0 and a.train_loss == b.train_loss and a.valid == b.valid
    for (name, x), (_, y) in zip(with_clusters.model.state_dict().items(), without.model.state_dict().items()):
        assert torch.equal(x, y), name


def test_teacher_has_no_gradient(small):
    cfg = model_cfg("sasrec", alpha=0.1)
    torch.manual_seed(0)
    model = build_model(cfg, small).train()
    batches = TrainBatches(small, cfg, torch.device("cpu"), 0)
    users = torch.arange(8)
    teacher = model.teacher(batches.batch(users))
    assert teacher.shape == (8, 2 * HIDDEN) and not teacher.requires_grad
    assert model.training                                        # mode restored after the teacher
    total, parts = model.calculate_loss(batches.batch(users))
    assert parts["sd"].requires_grad and torch.isfinite(total)


def test_contrastive_loss_prefers_aligned_views():
    torch.manual_seed(0)
    co = torch.randn(32, 8)
    aligned = losses.view_contrast(co, co * 3.0, tau=0.2)
    shuffled = losses.view_contrast(co, co[torch.randperm(32)], tau=0.2)
    assert aligned < shuffled


def test_scores_cover_every_item(small):
    model = build_model(model_cfg("gru4rec"), small).eval()
    inputs = torch.from_numpy(training_block(small, 12)[:4, 1:])
    with torch.no_grad():
        scores = model.score(inputs)
    assert scores.shape == (4, small.n_items + 2)
    assert torch.isinf(scores[:, 0]).all() and torch.isinf(scores[:, -1]).all()
    assert torch.isfinite(scores[:, 1:-1]).all()
