"""model.loss=sampled_ce: a softmax over each target and a batch's uniformly sampled negatives.

By hand on a tiny table (the accidental hit is masked), then on real ml-100k users through the
model: finite with gradients into both views, nested negative sets give a loss that rises to
full-softmax cross-entropy exactly when every item is sampled, a seeded run repeats bit for bit,
and a bad `model.negatives` is one line naming the field.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from conftest import user_subset
from model import losses
from model.batches import TrainBatches
from model.config import ModelConfig, TrainConfig
from model.llmesr import build_model
from model.pipeline import assemble_trainer
from settings import ConfigError, from_dict

CPU = torch.device("cpu")
# item table: padding row 0, items 1..3, mask row 4
TABLE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [7.0, 7.0]])


def test_by_hand_with_an_accidental_hit_masked():
    states = torch.tensor([[2.0, 0.0]])                       # logits: item 1 -> 2, 2 -> 0, 3 -> 2
    value = losses.rec_sampled_ce(states, torch.tensor([1]), TABLE, torch.tensor([1, 2]))
    assert value.item() == pytest.approx(-2.0 + math.log(math.exp(2.0) + math.exp(0.0)))   # 1 masked
    full = losses.rec_sampled_ce(states, torch.tensor([1]), TABLE, torch.tensor([3, 1, 2]))
    assert full.item() == pytest.approx(losses.rec_ce(states, torch.tensor([1]), TABLE.clone(), 4).item())


def test_uniform_negatives_are_distinct_real_items_and_nested():
    draws = [losses.uniform_negatives(50, n, torch.Generator().manual_seed(7), CPU) for n in (10, 30, 80)]
    assert draws[0].unique().numel() == 10 and int(draws[0].min()) >= 1 and int(draws[0].max()) <= 50
    assert torch.equal(draws[1][:10], draws[0])                 # the same seed extends the set
    assert sorted(draws[2].tolist()) == list(range(1, 51))      # capped at the catalogue


@pytest.fixture(scope="module")
def small(ml100k):
    return user_subset(ml100k, 60)


def model_cfg(**changes) -> ModelConfig:
    base = dict(hidden_size=16, max_len=20, num_heads=2, adapter_hidden=32, dropout=0.0, gamma=0.0,
                alpha=0.1, loss="sampled_ce", negatives=64)
    return ModelConfig(**{**base, **changes})


def loss_of(cfg: ModelConfig, data, rows: torch.Tensor):
    torch.manual_seed(0)
    model = build_model(cfg, data).train()
    batches = TrainBatches(data, cfg, CPU, seed=3)
    return model, *model.calculate_loss(batches.batch(rows))


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec", "gru4rec"])
def test_finite_with_gradients_into_both_views(small, backbone):
    model, total, parts = loss_of(model_cfg(backbone=backbone), small, torch.arange(32))
    assert torch.isfinite(total) and parts["rec"] > 0
    total.backward()
    assert model.id_emb.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.adapter.parameters())


def test_rises_to_full_softmax_as_the_negatives_cover_the_catalogue(small):
    rows = torch.arange(40)
    sizes = (8, 64, 512, small.n_items - 1, small.n_items)
    values = [loss_of(model_cfg(negatives=n), small, rows)[2]["rec"].item() for n in sizes]
    full = loss_of(model_cfg(loss="ce"), small, rows)[2]["rec"].item()
    assert all(a < b for a, b in zip(values, values[1:-1] + [full])), values       # nested sets: fewer terms
    assert values[-1] == pytest.approx(full, rel=1e-6)


def test_a_seeded_run_repeats_and_another_seed_differs(small):
    train = TrainConfig(lr=3e-3, batch_size=20, epochs=1, patience=0, device="cpu", seed=4)

    def run(seed):
        trainer = assemble_trainer(model_cfg(dropout=0.2, negatives=32), dataclasses.replace(train, seed=seed), small)
        report = dataclasses.replace(trainer.train_epoch(), seconds=0.0)
        return report, trainer.model.state_dict()

    (a, wa), (b, wb), (c, _) = run(4), run(4), run(5)
    assert a == b and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.train_loss != c.train_loss


@pytest.mark.parametrize("value, says", [(0, "model.negatives: got 0; allowed: int in [1, inf)"),
                                         ("many", "model.negatives: got 'many'")])
def test_bad_negatives_is_one_line_naming_the_field(value, says):
    with pytest.raises(ConfigError) as caught:
        from_dict(ModelConfig, {"loss": "sampled_ce", "negatives": value}, "model")
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_loss_names_sampled_ce_among_the_allowed():
    with pytest.raises(ConfigError, match="sampled_ce"):
        from_dict(ModelConfig, {"loss": "sampled"}, "model")
