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


def _first_best(values: list[float]) -> int:
    """The 1-based epoch the trainer keeps: the first strict maximum."""
    return max(range(len(values)), key=lambda i: (values[i], -i)) + 1


def test_select_metric_picks_the_epoch_by_that_metric_and_leaves_training_alone(small):
    """train.select_metric: a tail-aware epoch. The best epoch is the one of the highest
    validation tail-item NDCG@10, the test metrics are that epoch's weights', the reported
    score is overall NDCG@10 there, and the curves are the default run's (patience 0: the
    choice of epoch changes no weight)."""
    by_ndcg = assemble_trainer(*configs(epochs=4), small).fit()
    trainer = assemble_trainer(*configs(epochs=4, select_metric="tail_item_ndcg_10"), small)
    reports = []
    result = trainer.fit(reports.append)
    tail = [h["valid"]["tail_item_ndcg_10"] for h in result.history]
    assert [h["valid"] for h in result.history] == [h["valid"] for h in by_ndcg.history]
    assert result.best_epoch == _first_best(tail) and len(set(tail)) > 1, tail
    assert result.valid == result.history[result.best_epoch - 1]["valid"]
    assert result.test == metrics_of(trainer.best_weights, small, "test")
    assert reports[-1].best_valid_ndcg_10 == result.valid["ndcg_10"]
    assert by_ndcg.best_epoch == _first_best([h["valid"]["ndcg_10"] for h in by_ndcg.history])


def test_patience_watches_the_select_metric(small):
    """Patience counts epochs without a better select_metric: the run ends one epoch after its
    tail-item NDCG@10 first fails to improve (patience 1), whatever overall NDCG@10 did."""
    result = assemble_trainer(*configs(epochs=6, patience=1, select_metric="tail_item_ndcg_10"), small).fit()
    tail = [h["valid"]["tail_item_ndcg_10"] for h in result.history]
    stalled = next((i + 1 for i in range(1, len(tail)) if tail[i] <= max(tail[:i])), None)
    assert stalled is not None and result.epochs == stalled < 6, tail


def test_a_results_table_takes_the_epoch_the_trainer_named():
    """results.load.best_row reads the trainer's choice (`best_epoch` of the last report), so a
    table of runs with train.select_metric agrees with the weights they tested; a history
    without the column falls back to the highest valid_ndcg_10."""
    import pandas as pd

    from results.load import best_row

    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "valid_ndcg_10": [0.05, 0.09, 0.08, 0.07],
                            "valid_tail_item_ndcg_10": [0.01, 0.02, 0.04, 0.03], "best_epoch": [1, 1, 3, 3]})
    assert best_row(history)["epoch"] == 3
    assert best_row(history.drop(columns="best_epoch"))["epoch"] == 2
    assert best_row(history.iloc[:0]) is None
