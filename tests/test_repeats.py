"""Repeat targets: reported apart, the policy setting, and the repeat-aware reference scorer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.prepared import PreparedDataset
from model.baselines import BASELINES, baseline_scorer, history_then_popularity_scorer, reference_metrics
from model.evaluate import compute_ranks, evaluate
from test_evaluate import reference_metrics as slow_metrics
from test_evaluate import reference_ranks, small_dataset, table_scorer, tied_scores

TARGET_PREFIXES = ("repeat_target_", "new_target_", "sampled_repeat_target_", "sampled_new_target_")


def repeat_heavy_dataset(seed: int = 0) -> PreparedDataset:
    """Random sequences where every third user's validation and test targets repeat a history item."""
    data = small_dataset(n_users=90, n_items=50, seed=seed)
    for u in range(0, data.n_users, 3):
        seq = data.seq_items[data.seq_offsets[u]:data.seq_offsets[u + 1]]
        seq[-2] = seq[-1] = seq[0]
    data.item_train_count = np.random.default_rng(seed).integers(0, 30, data.n_items + 1)
    return data


def known_repeats(data: PreparedDataset, split: str) -> np.ndarray:
    cut = 2 if split == "valid" else 1
    return np.array([int(data.sequence(u)[-cut]) in set(data.sequence(u)[:-cut].tolist())
                     for u in range(data.n_users)])


@pytest.mark.parametrize("split", ["valid", "test"])
def test_repeat_targets_match_a_python_scan(split):
    data = repeat_heavy_dataset()
    expected = known_repeats(data, split)
    assert expected[::3].all() and 0.3 < expected.mean() < 0.9
    np.testing.assert_array_equal(data.repeat_targets(split), expected)


@pytest.mark.parametrize("repeats", ["keep", "exclude"])
@pytest.mark.parametrize("split", ["valid", "test"])
def test_split_metrics_agree_with_the_slow_reference(split, repeats):
    data = repeat_heavy_dataset(seed=1)
    table = tied_scores(data.n_users, data.n_items + 2, seed=3)
    got = evaluate(table_scorer(table), data, split, max_len=6, batch_size=13, repeats=repeats)
    want = slow_metrics(reference_ranks(table, data, split), data, split, repeats)
    for key, value in want.items():
        assert got[key] == value, key                     # bit-identical float64
    repeat = known_repeats(data, split)
    assert got["n_repeat_target"] == repeat.sum() and got["n_new_target"] == (~repeat).sum()
    assert got["n_users"] == (data.n_users if repeats == "keep" else (~repeat).sum())


def test_policy_changes_exactly_the_metrics_it_should():
    data = repeat_heavy_dataset(seed=2)
    table = tied_scores(data.n_users, data.n_items + 2, seed=4, levels=40)
    keep = evaluate(table_scorer(table), data, "test", max_len=8, repeats="keep")
    exclude = evaluate(table_scorer(table), data, "test", max_len=8, repeats="exclude")
    assert set(keep) == set(exclude)
    for key in keep:
        if key.startswith(TARGET_PREFIXES) or key in ("n_repeat_target", "n_new_target"):
            assert keep[key] == exclude[key], key         # the split itself never moves
    for pre in ("", "sampled_"):
        for metric in ("hit_10", "ndcg_10", "ndcg_20"):
            assert exclude[f"{pre}{metric}"] == keep[f"{pre}new_target_{metric}"]
    changed = [k for k in keep if keep[k] != exclude[k]]
    assert "ndcg_10" in changed and "tail_item_ndcg_10" in changed
    assert not any(k.startswith(TARGET_PREFIXES) for k in changed)


def test_unknown_policy_is_a_clear_error():
    data = small_dataset()
    with pytest.raises(ValueError, match="repeats: got 'drop'; allowed: keep, exclude"):
        evaluate(table_scorer(tied_scores(data.n_users, data.n_items + 2, 0)), data, "test", 5, repeats="drop")


def test_history_then_popularity_ranks_history_by_recency_then_popularity():
    data = repeat_heavy_dataset(seed=3)
    score = history_then_popularity_scorer(data)
    inputs = torch.tensor([[0, 0, 7, 3, 7, 9]])            # 7 twice: its latest position counts
    scores = score(torch.tensor([0]), inputs)[0]
    order = torch.argsort(scores, descending=True, stable=True)[:3].tolist()
    assert order == [9, 7, 3]
    others = [i for i in range(1, data.n_items + 1) if i not in (3, 7, 9)]
    ranked = sorted(others, key=lambda i: -scores[i].item())
    counts = data.item_train_count
    assert all(counts[a] >= counts[b] for a, b in zip(ranked, ranked[1:]))
    assert scores[others].max() < scores[[3, 7, 9]].min()


def test_history_reference_finds_every_repeat_target_first():
    data = repeat_heavy_dataset(seed=4)
    ranks = compute_ranks(history_then_popularity_scorer(data), data, "test", max_len=30)["full"]
    repeat = known_repeats(data, "test")
    assert (ranks[repeat] == 0).all()                      # all other history items are masked
    metrics = evaluate(history_then_popularity_scorer(data), data, "test", max_len=30)
    assert metrics["repeat_target_ndcg_10"] == 1.0 and metrics["repeat_target_hit_5"] == 1.0
    assert metrics["ndcg_10"] > metrics["new_target_ndcg_10"]


def test_reference_metrics_cover_every_scorer_under_the_policy():
    data = repeat_heavy_dataset(seed=5)
    keep = reference_metrics(data, "test", max_len=10)
    exclude = reference_metrics(data, "test", max_len=10, repeats="exclude")
    assert set(keep) == set(BASELINES) == set(exclude)
    for name in BASELINES:
        direct = evaluate(baseline_scorer(name, data), data, "test", 10)
        assert keep[name] == direct
        assert exclude[name]["ndcg_10"] == keep[name]["new_target_ndcg_10"]
