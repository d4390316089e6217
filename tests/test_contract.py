"""The run contract (model.contract): one set of names that the trainer, the trainable, the
search, the summary, the study and the results tables all read."""

from __future__ import annotations

import math
from types import SimpleNamespace

from model import contract


def test_the_score_is_the_running_best_of_the_selected_metric():
    assert contract.METRIC == f"valid_{contract.SELECT_KEY}"
    assert contract.BEST_SO_FAR == f"best_{contract.METRIC}"
    assert contract.MODE == "max"


def test_epoch_metrics_carry_every_name_of_the_contract():
    report = SimpleNamespace(epoch=3, train_loss=1.5, best_valid_ndcg_10=0.25, best_epoch=2, seconds=4.0,
                             loss_parts={"rec": 1.0}, loss_shares={"rec": 1.0},
                             valid={contract.SELECT_KEY: 0.2, "hit_10": 0.4})
    metrics = contract.epoch_metrics(report)
    assert metrics[contract.TIME_ATTR] == 3
    assert metrics[contract.METRIC] == 0.2 and metrics[contract.BEST_SO_FAR] == 0.25
    assert metrics["loss_rec"] == 1.0 and metrics["share_rec"] == 1.0 and metrics["valid_hit_10"] == 0.4


def test_best_is_the_highest_finite_score_of_a_trial_that_did_not_error():
    assert contract.rank_key("b", contract.TERMINATED, 0.3) < contract.rank_key("a", contract.STOPPED_EARLY, 0.2)
    assert contract.rank_key("a", contract.TERMINATED, 0.3) < contract.rank_key("b", contract.TERMINATED, 0.3)
    for state, score in ((contract.ERRORED, 0.9), (contract.TERMINATED, math.nan), (contract.TERMINATED, None),
                         (contract.TERMINATED, True)):
        assert contract.rank_key("a", state, score) is None
    assert len(set(contract.STATES)) == 4 and contract.LOST not in contract.STATES
