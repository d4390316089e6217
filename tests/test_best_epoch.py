"""Test metrics come from the best-validation weights (docs/evaluation.md), never the last epoch's.

The run is made to end worse than its best: after epoch 2 every weight is overwritten with noise
and the learning rate cut to almost nothing, so epoch 3 validates far below epochs 1-2.
"""

from __future__ import annotations

import pytest
import torch

from conftest import user_subset
from model.config import ModelConfig, TrainConfig
from model.pipeline import assemble_trainer
from model.trainer import Trainer

N_USERS = 200


@pytest.fixture(scope="module")
def small(ml100k):
    return user_subset(ml100k, N_USERS)


def configs(**train) -> tuple[ModelConfig, TrainConfig]:
    model = ModelConfig(hidden_size=16, max_len=10, num_blocks=1, num_heads=1, adapter_hidden=32,
                        gamma=0.0, loss="ce", teacher="epoch", dropout=0.1)
    return model, TrainConfig(**{**dict(lr=1e-2, batch_size=50, epochs=3, patience=0, device="cpu",
                                        seed=2), **train})


def spoil_after(trainer: Trainer, epoch: int):
    """An on_epoch callback that, after `epoch`, replaces every weight with noise."""
    def callback(report) -> None:
        if report.epoch != epoch:
            return
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for weights in trainer.model.parameters():
                weights.copy_(torch.randn(weights.shape, generator=generator))
        for group in trainer.optimizer.param_groups:
            group["lr"] = 1e-12
    return callback


def metrics_of(weights: dict, data, split: str) -> dict:
    """What a fresh trainer measures with these weights."""
    fresh = assemble_trainer(*configs(), data)
    fresh.model.load_state_dict(weights)
    return fresh.evaluate(split)


def test_test_metrics_are_those_of_the_best_validation_epoch(small):
    trainer = assemble_trainer(*configs(), small)
    result = trainer.fit(spoil_after(trainer, 2))
    valid = [h["valid"]["ndcg_10"] for h in result.history]
    assert result.best_epoch in (1, 2) and valid[2] < max(valid[:2]), valid      # the last is worse
    last_weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    best = metrics_of(trainer.best_weights, small, "test")
    last = metrics_of(last_weights, small, "test")
    assert best != last
    assert result.test == best
    assert result.valid == metrics_of(trainer.best_weights, small, "valid")
    assert result.valid == result.history[result.best_epoch - 1]["valid"]
    for name, weights in trainer.model.state_dict().items():                # test() put them back
        assert torch.equal(weights, last_weights[name]), name


def test_best_weights_are_a_copy_not_the_live_tensors(small):
    trainer = assemble_trainer(*configs(epochs=1), small)
    trainer.train_epoch()
    saved = {k: v.clone() for k, v in trainer.best_weights.items()}
    spoil_after(trainer, 1)(type("Report", (), {"epoch": 1})())
    for name, weights in trainer.best_weights.items():
        assert torch.equal(weights, saved[name]), name
