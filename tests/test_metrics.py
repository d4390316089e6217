"""Hit@k and NDCG@k (model/metrics.py) from 0-based ranks, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.metrics import hit_values, mean, ndcg_values, rank_metrics

RANKS = np.array([0, 1, 5, 12])                    # four users; rank 0 = the target scored best


def test_per_user_values_by_hand():
    assert hit_values(RANKS, 1).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert hit_values(RANKS, 10).tolist() == [1.0, 1.0, 1.0, 0.0]
    assert ndcg_values(RANKS, 10).tolist() == [1.0, 1 / math.log2(3), 1 / math.log2(7), 0.0]
    assert ndcg_values(RANKS, 5).tolist() == [1.0, 1 / math.log2(3), 0.0, 0.0]     # rank 5 is 6th
    assert ndcg_values([3], 10).dtype == np.float64 and hit_values([3], 10).dtype == np.float64


def test_rank_metrics_names_and_means_by_hand():
    out = rank_metrics(RANKS, (1, 10))
    assert set(out) == {"hit_1", "ndcg_1", "hit_10", "ndcg_10"}
    assert out["hit_1"] == out["ndcg_1"] == 0.25 and out["hit_10"] == 0.75
    assert out["ndcg_10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(7)) / 4, rel=1e-15)
    assert set(rank_metrics(RANKS, (5,), "tail_item_")) == {"tail_item_hit_5", "tail_item_ndcg_5"}


def test_empty_group_scores_zero_and_means_are_correctly_rounded():
    assert rank_metrics(np.array([], dtype=np.int64), (10,)) == {"hit_10": 0.0, "ndcg_10": 0.0}
    assert mean(np.array([])) == 0.0
    values = np.array([1e16, 1.0, -1e16, 1.0])      # a naive left-to-right float sum gives 0.5
    assert mean(values) == 0.5
