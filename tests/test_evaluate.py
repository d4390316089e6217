"""Evaluator: exact agreement with a slow reference, masking, ties, groups, batching, speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from datasets.prepared import PreparedDataset
from model.evaluate import compute_ranks, evaluate
from model.metrics import ndcg_values
from model.sequences import padded_histories, targets, train_targets

KS = (5, 10, 20)
GROUP_NAMES = ("tail_item", "head_item", "tail_user", "head_user")
TARGET_GROUP_NAMES = ("repeat_target", "new_target")
COUNTS = {"n_users", *(f"n_{g}" for g in GROUP_NAMES + TARGET_GROUP_NAMES)}


def small_dataset(n_users: int = 60, n_items: int = 40, seed: int = 0, n_neg: int = 12) -> PreparedDataset:
    """Random sequences (lengths 3..25, repeats allowed so targets can occur in the history)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 26, n_users)
    seqs = [rng.integers(1, n_items + 1, n) for n in lengths]
    seqs[0][-2] = seqs[0][0]                    # user 0: validation target also in the history
    seqs[1][-1] = seqs[1][-3]                   # user 1: test target also in the history
    off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return PreparedDataset(
        name="small", n_users=n_users, n_items=n_items,
        seq_items=np.concatenate(seqs).astype(np.int64), seq_offsets=off,
        item_text_emb=np.zeros((n_items + 1, 4), np.float32),
        item_pca=np.zeros((n_items + 1, 4), np.float32),
        item_train_count=np.zeros(n_items + 1, np.int64),
        tail_items=np.concatenate([[False], rng.random(n_items) < 0.7]),
        tail_users=rng.random(n_users) < 0.6,
        similar_users=np.zeros((n_users, 2), np.int64),
        valid_negatives=rng.integers(1, n_items + 1, (n_users, n_neg)),
        test_negatives=rng.integers(1, n_items + 1, (n_users, n_neg)))


def table_scorer(table: np.ndarray):
    scores = torch.as_tensor(table)
    return lambda users, inputs: scores[users]


def tied_scores(n_users: int, width: int, seed: int, levels: int = 6) -> np.ndarray:
    """Random scores from a few levels only, so ties are everywhere."""
    return np.random.default_rng(seed).integers(0, levels, (n_users, width)).astype(np.float32)


# ---- the slow, obviously-correct reference ----------------------------------------------------

def reference_ranks(table: np.ndarray, data: PreparedDataset, split: str, users=None) -> dict:
    """Per user: sort candidates by score (target last among equals) and find the target."""
    cut = 2 if split == "valid" else 1
    negs = data.valid_negatives if split == "valid" else data.test_negatives
    full, sampled = [], []
    for u in (range(data.n_users) if users is None else users):
        seq = [int(x) for x in data.sequence(u)]
        target, history = seq[-cut], set(seq[:-cut])
        s = [float(x) for x in table[u]]
        cands = [i for i in range(1, data.n_items + 1) if i == target or i not in history]
        order = sorted(cands, key=lambda i: (-s[i], i == target))
        full.append(order.index(target))
        pool = [(target, True)] + [(int(i), False) for i in negs[u]]
        order = sorted(pool, key=lambda p: (-s[p[0]], p[1]))
        sampled.append([p[1] for p in order].index(True))
    return {"full": full, "sampled": sampled}


def reference_metrics(ranks: dict, data: PreparedDataset, split: str, repeats: str = "keep") -> dict:
    """Plain-Python metrics; `repeats` "exclude" drops repeat-target users from all but the
    repeat_target_ / new_target_ groups."""
    cut = 2 if split == "valid" else 1
    out = {}
    for protocol, rr in ranks.items():
        pre = "" if protocol == "full" else "sampled_"
        for g in (None, *GROUP_NAMES, *TARGET_GROUP_NAMES):
            members = []
            for u, r in enumerate(rr):
                seq = [int(x) for x in data.sequence(u)]
                repeat = seq[-cut] in seq[:-cut]
                tail_item = bool(data.tail_items[seq[-cut]])
                tail_user = bool(data.tail_users[u])
                inside = {None: True, "tail_item": tail_item, "head_item": not tail_item,
                          "tail_user": tail_user, "head_user": not tail_user,
                          "repeat_target": repeat, "new_target": not repeat}[g]
                if repeats == "exclude" and repeat and g not in TARGET_GROUP_NAMES:
                    inside = False
                if inside:
                    members.append(r)
            name = pre + ("" if g is None else g + "_")
            for k in KS:
                hits = [1.0 if r < k else 0.0 for r in members]
                gains = [1.0 / math.log2(r + 2) if r < k else 0.0 for r in members]
                out[f"{name}hit_{k}"] = math.fsum(hits) / len(members) if members else 0.0
                out[f"{name}ndcg_{k}"] = math.fsum(gains) / len(members) if members else 0.0
    return out


# ---- tests ------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", ["valid", "test"])
def test_padded_histories_match_python_slicing(split):
    data = small_dataset()
    cut = 2 if split == "valid" else 1
    for max_len in (1, 5, 30):
        got = padded_histories(data, split, max_len)
        assert got.shape == (data.n_users, max_len) and got.dtype == np.int64
        for u in range(data.n_users):
            hist = list(data.sequence(u)[:-cut])[-max_len:]
            assert got[u].tolist() == [0] * (max_len - len(hist)) + hist
    assert targets(data, split).tolist() == [int(data.sequence(u)[-cut]) for u in range(data.n_users)]
    np.testing.assert_array_equal(padded_histories(data, "train", 7), padded_histories(data, "valid", 7))
    tt = train_targets(data, 7)
    for u in range(data.n_users):
        nxt = list(data.sequence(u)[1:-1])[-7:]
        assert tt[u].tolist() == [0] * (7 - len(nxt)) + nxt


@pytest.mark.parametrize("split", ["valid", "test"])
def test_exact_agreement_with_reference_on_tied_scores(split):
    data = small_dataset(seed=1)
    table = tied_scores(data.n_users, data.n_items + 2, seed=2)
    ranks = compute_ranks(table_scorer(table), data, split, max_len=4, batch_size=7)
    ref = reference_ranks(table, data, split)
    assert ranks["full"].tolist() == ref["full"]
    assert ranks["sampled"].tolist() == ref["sampled"]
    got = evaluate(table_scorer(table), data, split, max_len=4, batch_size=7)
    want = reference_metrics(ref, data, split)
    for key, value in want.items():
        assert got[key] == value, key              # bit-identical float64
    assert set(want) | COUNTS == set(got)


def test_history_is_masked_but_never_the_target():
    data = small_dataset(seed=3)
    n = data.n_items
    # the target scores lowest of all items; every history item scores above it
    for split, cut in (("valid", 2), ("test", 1)):
        table = np.zeros((data.n_users, n + 2), np.float32)
        for u in range(data.n_users):
            seq = data.sequence(u)
            table[u, 1:n + 1] = np.arange(n, 0, -1)      # item i scores n + 1 - i
            table[u, seq[:-cut]] = 1000.0                # history on top: must be masked
            table[u, seq[-cut]] = 500.0                  # target next, even if in the history
        ranks = compute_ranks(table_scorer(table), data, split, max_len=2)["full"]
        assert (ranks == 0).all()                        # max_len=2 still masks the whole history
        assert data.sequence(0)[-2] in data.sequence(0)[:-2]


def test_constant_scorer_gets_the_worst_rank():
    data = small_dataset(seed=4)
    table = np.ones((data.n_users, data.n_items + 2), np.float32)
    ranks = compute_ranks(table_scorer(table), data, "test", max_len=5)
    for u in range(data.n_users):
        seq = data.sequence(u)
        others = set(range(1, data.n_items + 1)) - set(seq[:-1].tolist()) - {int(seq[-1])}
        assert ranks["full"][u] == len(others)
    assert (ranks["sampled"] == data.test_negatives.shape[1]).all()
    m = evaluate(table_scorer(table), data, "test", max_len=5)
    assert m["hit_20"] == 0.0 and m["sampled_hit_5"] == 0.0


def test_nan_scores_rank_last():
    data = small_dataset(seed=5)
    table = np.random.default_rng(0).random((data.n_users, data.n_items + 2)).astype(np.float32)
    t = targets(data, "valid")
    table[:, 3:9] = np.nan                               # NaN candidates tie with a NaN target
    for score in (0.5, -0.5):                            # a NaN is below a negative score too
        table[np.arange(data.n_users), t] = np.where(np.arange(data.n_users) % 2, np.nan, score)
        ranks = compute_ranks(table_scorer(table), data, "valid", max_len=5)
        ref = reference_ranks(np.where(np.isnan(table), -np.inf, table), data, "valid")
        assert ranks["full"].tolist() == ref["full"] and min(ref["full"][1::2]) > 0
        assert ranks["sampled"].tolist() == ref["sampled"]
        assert ranks["full"].dtype == ranks["sampled"].dtype == np.int64


def test_groups_split_by_target_item_and_user():
    data = small_dataset(seed=6)
    table = tied_scores(data.n_users, data.n_items + 2, seed=7, levels=50)
    m = evaluate(table_scorer(table), data, "valid", max_len=8)
    tail_item = data.tail_items[targets(data, "valid")]
    assert m["n_users"] == data.n_users
    assert m["n_tail_item"] == tail_item.sum() and m["n_head_item"] == (~tail_item).sum()
    assert m["n_tail_user"] == data.tail_users.sum()
    assert m["n_tail_item"] + m["n_head_item"] == m["n_tail_user"] + m["n_head_user"] == data.n_users
    for pre in ("", "sampled_"):
        for k in KS:
            for a, b in (("tail_item", "head_item"), ("tail_user", "head_user")):
                whole = (m[f"{pre}{a}_ndcg_{k}"] * m[f"n_{a}"] + m[f"{pre}{b}_ndcg_{k}"] * m[f"n_{b}"])
                assert whole / data.n_users == pytest.approx(m[f"{pre}ndcg_{k}"], abs=1e-12)
    data.tail_users[:] = False                           # an empty group: 0.0, not NaN
    m = evaluate(table_scorer(table), data, "valid", max_len=8)
    assert m["n_tail_user"] == 0 and m["tail_user_ndcg_10"] == 0.0 and m["sampled_tail_user_hit_5"] == 0.0
    assert not any(math.isnan(v) for v in m.values())


def test_batch_size_and_protocol_choice_do_not_change_results():
    data = small_dataset(seed=8, n_users=37)
    table = tied_scores(data.n_users, data.n_items + 2, seed=9)
    runs = [evaluate(table_scorer(table), data, "test", 6, batch_size=b) for b in (1, 5, 37, 1024)]
    assert all(r == runs[0] for r in runs)
    full_only = evaluate(table_scorer(table), data, "test", 6, protocols=("full",))
    assert not any(k.startswith("sampled_") for k in full_only)
    assert all(full_only[k] == runs[0][k] for k in full_only)


def test_inputs_passed_to_score_fn_are_the_padded_histories():
    data = small_dataset(seed=10)
    seen = []

    def score_fn(users, inputs):
        seen.append((users.clone(), inputs.clone()))
        return torch.zeros(len(users), data.n_items + 2)

    evaluate(score_fn, data, "test", 9, batch_size=16)
    users = torch.cat([u for u, _ in seen])
    inputs = torch.cat([i for _, i in seen])
    assert users.tolist() == list(range(data.n_users))
    np.testing.assert_array_equal(inputs.numpy(), padded_histories(data, "test", 9))


def test_bad_arguments_are_clear_errors():
    data = small_dataset()
    scorer = table_scorer(tied_scores(data.n_users, data.n_items + 2, 0))
    with pytest.raises(ValueError, match="split: got 'train'"):
        evaluate(scorer, data, "train", 5)
    with pytest.raises(ValueError, match="protocols: got 'popular'"):
        evaluate(scorer, data, "valid", 5, protocols=("popular",))
    with pytest.raises(ValueError, match=r"score_fn: returned shape \(60, 41\)"):
        evaluate(lambda u, i: torch.zeros(len(u), data.n_items + 1), data, "valid", 5)
    with pytest.raises(ValueError, match=r"returned shape \(16, 41\); expected \[batch, n_items \+ 2\] = \[16, 42\]"):
        evaluate(lambda u, i: torch.zeros(len(u), data.n_items + 1), data, "valid", 5, batch_size=16)
    second_batch_wrong = lambda u, i: torch.zeros(len(u), data.n_items + (2 if int(u[0]) < 16 else 1))
    with pytest.raises(ValueError, match=r"returned shape \(16, 41\); expected \[batch, n_items \+ 2\] = \[16, 42\]"):
        evaluate(second_batch_wrong, data, "valid", 5, batch_size=16)
    with pytest.raises(ValueError, match=r"protocols: got none; allowed: one or more of full, sampled$"):
        evaluate(scorer, data, "valid", 5, protocols=())
    with pytest.raises(ValueError, match=r"protocols: got 'popular'; allowed: full, sampled$"):
        evaluate(scorer, data, "valid", 5, protocols=("popular",))
    with pytest.raises(ValueError, match=r"batch_size: got 0; allowed: an int >= 1$"):
        evaluate(scorer, data, "valid", 5, batch_size=0)
    for ks in ((), (0, 10)):
        with pytest.raises(ValueError, match=r"ks: got .*; allowed: one or more ints >= 1$"):
            evaluate(scorer, data, "valid", 5, ks=ks)
    assert set(evaluate(scorer, data, "valid", 5, ks=(1,))) >= {"hit_1", "ndcg_1"}


def test_sampled_negatives_are_checked_by_shape_and_id_range():
    data = small_dataset()
    scorer = table_scorer(tied_scores(data.n_users, data.n_items + 2, 0))
    one = small_dataset()
    one.valid_negatives = one.valid_negatives[:, :1]               # a single negative is enough
    assert 0 <= evaluate(scorer, one, "valid", 5)["sampled_hit_10"] <= 1
    bad_shapes = (data.valid_negatives[:, :0], data.valid_negatives[:-1], data.valid_negatives[:, :, None],
                  data.valid_negatives[:-1, :0])
    for negatives in bad_shapes:
        data.valid_negatives = negatives
        with pytest.raises(ValueError, match=r"data.valid_negatives: got shape .*; the sampled protocol needs "
                                             r"\[n_users, N\] = \[60, N >= 1\]"):
            evaluate(scorer, data, "valid", 5)
    for low, high in ((0, 5), (3, data.n_items + 1), (0, data.n_items + 1)):
        data = small_dataset()
        data.test_negatives[0, 0], data.test_negatives[1, 0] = low, high
        with pytest.raises(ValueError, match=r"data.test_negatives: item ids must lie in 1..40$"):
            evaluate(scorer, data, "test", 5)
    assert "sampled_hit_10" not in evaluate(scorer, data, "test", 5, protocols=("full",))


def test_the_default_repeat_policy_is_keep():
    from model.evaluate import group_masks, summarize

    data = small_dataset()
    ranks = compute_ranks(table_scorer(tied_scores(data.n_users, data.n_items + 2, 1)), data, "valid", 5)
    groups = group_masks(data, "valid")
    assert summarize(ranks, groups, (10,)) == summarize(ranks, groups, (10,), repeats="keep")
    assert summarize(ranks, groups, (10,)) != summarize(ranks, groups, (10,), repeats="exclude")


def test_metric_formula():
    np.testing.assert_array_equal(ndcg_values(np.array([0, 1, 9, 10]), 10),
                                  [1.0, 1 / math.log2(3), 1 / math.log2(11), 0.0])


# ---- real data --------------------------------------------------------------------------------

@pytest.mark.slow
def test_real_data_agrees_with_reference_and_timing(scientific):
    data = scientific
    gen = torch.Generator().manual_seed(0)
    table = torch.randint(0, 200, (data.n_users, data.n_items + 2), generator=gen).float()
    scorer = lambda users, inputs: table[users]          # noqa: E731
    ranks = compute_ranks(scorer, data, "test", max_len=50)
    sample = list(range(0, data.n_users, 17))
    ref = reference_ranks(table.numpy(), data, "test", users=sample)
    assert ranks["full"][sample].tolist() == ref["full"]
    assert ranks["sampled"][sample].tolist() == ref["sampled"]

    torch.manual_seed(0)
    randn = lambda users, inputs: torch.randn(len(users), data.n_items + 2)   # noqa: E731
    t0 = time.perf_counter()
    m = evaluate(randn, data, "test", max_len=200, batch_size=1024)
    seconds = time.perf_counter() - t0
    print(f"\nfull+sampled ranking of {data.n_users} users x {data.n_items} items: {seconds:.2f}s; "
          f"random ndcg_10={m['ndcg_10']:.4f} sampled_ndcg_10={m['sampled_ndcg_10']:.4f}")
    assert m["hit_10"] < 0.02 and 0.03 < m["sampled_hit_10"] < 0.2   # chance: ~10/4385, ~10/101


@pytest.mark.slow
def test_ml100k_long_histories_agree_with_reference(ml100k):
    """ML-100K users have hundreds of items: histories longer than max_len must still be masked."""
    data = ml100k
    assert np.diff(data.seq_offsets).max() > 60
    gen = torch.Generator().manual_seed(1)
    table = torch.randint(0, 100, (data.n_users, data.n_items + 2), generator=gen).float()
    scorer = lambda users, inputs: table[users]          # noqa: E731
    for split in ("valid", "test"):
        ranks = compute_ranks(scorer, data, split, max_len=20, batch_size=300)
        sample = list(range(0, data.n_users, 3))
        ref = reference_ranks(table.numpy(), data, split, users=sample)
        assert ranks["full"][sample].tolist() == ref["full"]
        assert ranks["sampled"][sample].tolist() == ref["sampled"]
    m = evaluate(scorer, data, "valid", max_len=20)
    assert m["n_tail_item"] + m["n_head_item"] == data.n_users
    assert m["n_tail_user"] > 0 and m["n_head_user"] > 0


@pytest.mark.gpu
def test_cuda_ranks_equal_cpu_ranks():
    data = small_dataset(seed=11, n_users=200, n_items=300)
    table = tied_scores(data.n_users, data.n_items + 2, seed=12, levels=20)
    cuda_table = torch.as_tensor(table, device="cuda")
    on_cpu = evaluate(table_scorer(table), data, "valid", 10, batch_size=64)
    on_gpu = evaluate(lambda u, i: cuda_table[u], data, "valid", 10, batch_size=64, device="cuda")
    assert on_gpu == on_cpu
