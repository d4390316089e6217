"""bench/recbole_peer.py's exporter: RecBole's atomic file of our prepared data, whose
time-ordered leave-one-out split must be exactly ours (real ml-100k; RecBole not needed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import recbole_peer as P  # noqa: E402


@pytest.fixture(scope="module")
def exported(ml100k, tmp_path_factory):
    path = P.export_atomic(ml100k, tmp_path_factory.mktemp("atomic"), "ml-100k-peer")
    return path, P.read_atomic(path)


def test_export_is_recbole_atomic_layout(exported, ml100k):
    path, _ = exported
    assert path.name == "ml-100k-peer.inter" and path.parent.name == "ml-100k-peer"
    lines = path.read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    assert len(lines) - 1 == ml100k.n_interactions == 99287


def test_export_keeps_every_sequence_in_order(exported, ml100k):
    _, sequences = exported
    assert sorted(sequences) == list(range(ml100k.n_users))
    for user in range(ml100k.n_users):
        assert sequences[user] == ml100k.sequence(user).tolist()


def test_leave_one_out_of_the_export_is_our_split(exported, ml100k):
    _, sequences = exported
    valid, test = P.leave_one_out(sequences)
    assert P.split_mismatches(ml100k, valid, test) == []
    # and the check does catch a difference
    wrong_user = 5
    valid[wrong_user] = int(ml100k.test_targets[wrong_user])
    problems = P.split_mismatches(ml100k, valid, test)
    assert problems and problems[0].startswith(f"user {wrong_user} valid")


def test_training_targets_match_recbole_prefix_count(exported, ml100k):
    """RecBole's augmentation makes one sample per training position after the first: 96,458 on
    ml-100k, the count docs/performance-windows.md states for `sliding`."""
    _, sequences = exported
    assert sum(len(s) - 3 for s in sequences.values()) == 96458


def test_timestamps_are_positions(exported):
    path, _ = exported
    rows = np.loadtxt(path, skiprows=1, dtype=np.int64, max_rows=300)
    starts = np.flatnonzero(np.r_[True, rows[1:, 0] != rows[:-1, 0]])
    for lo, hi in zip(starts, [*starts[1:], len(rows)]):
        assert rows[lo:hi, 2].tolist() == list(range(hi - lo))


def test_protocol_matches_time_to_quality():
    import time_to_quality as T

    ours = dict(item.split("=", 1) for item in T.PROTOCOL)
    assert P.PROTOCOL["hidden_size"] == int(ours["model.hidden_size"])
    assert P.PROTOCOL["inner_size"] == int(ours["model.hidden_size"])     # our FFN is hidden -> hidden
    assert P.PROTOCOL["n_layers"] == int(ours["model.num_blocks"])
    assert P.PROTOCOL["n_heads"] == int(ours["model.num_heads"])
    assert P.PROTOCOL["MAX_ITEM_LIST_LENGTH"] == int(ours["model.max_len"])
    assert P.PROTOCOL["hidden_dropout_prob"] == P.PROTOCOL["attn_dropout_prob"] == float(ours["model.dropout"])
    assert P.PROTOCOL["learning_rate"] == float(ours["train.lr"])
    assert P.PROTOCOL["train_batch_size"] == int(ours["train.batch_size"])
    assert P.PROTOCOL["stopping_step"] == int(ours["train.patience"])
    assert P.PROTOCOL["loss_type"] == "CE" and ours["model.loss"] == "ce"
    assert P.PROTOCOL["train_neg_sample_args"] is None


def test_merge_shows_both_sides(tmp_path):
    """A RecBole run file merges beside ours; runs without a side are ours."""
    import json

    import time_to_quality as T

    curve = [[1, 10.0, 0.05], [2, 20.0, 0.09]]
    ours = {"windows": "last", "seed": 42, "batch_size": 256, "samples": 943, "targets": 38719, "steps": 4,
            "best_epoch": 2, "epochs": 2, "valid_ndcg_10": 0.09, "test_ndcg_10": 0.08, "test_hit_10": 0.15,
            "cpu_s": 21.0, "curve": curve}
    theirs = {**ours, "side": "recbole", "windows": "prefixes", "samples": 96458, "targets": 96458}
    for name, run in (("ours.json", ours), ("theirs.json", theirs)):
        (tmp_path / name).write_text(json.dumps({"command": "x", "machine": "m", "runs": [run]}))
    runs, _ = T.merged([str(tmp_path / "ours.json"), str(tmp_path / "theirs.json")])
    columns, rows = T.summary_table(runs, (0.08, 0.09, 0.10))
    assert [row[0] for row in rows] == ["ours", "recbole"]
    assert rows[1][:4] == ["recbole", "prefixes", 256, 42]
    assert columns[-3:] == ["to 0.08", "to 0.09", "to 0.10"] and rows[0][-3:] == ["20", "20", "-"]
    columns, rows = T.summary_table(runs)                      # shares of the best reached (0.09): any dataset
    assert columns[-3:] == ["to 90 % (0.0810)", "to 95 % (0.0855)", "to 99 % (0.0891)"] and rows[0][-3:] == ["20"] * 3
    assert [row[:3] for row in T.mean_rows(runs)] == [["ours", "last", 256], ["recbole", "prefixes", 256]]


def test_budget_table_takes_the_best_within_each_budget():
    import time_to_quality as T

    runs = [{"side": "recbole", "windows": "prefixes", "batch_size": 256,
             "curve": [[1, 100.0, 0.08], [2, 200.0, 0.11], [3, 300.0, 0.10]]},
            {"side": "recbole", "windows": "prefixes", "batch_size": 256,
             "curve": [[1, 150.0, 0.06], [2, 250.0, 0.09]]}]
    assert T.budget_rows(runs, [50, 100, 200, 300]) == [["recbole", "prefixes", 256, 2, 0.0, 0.04, 0.085, 0.1]]


def test_a_sliding_run_with_its_own_stride_is_a_group_of_its_own():
    import time_to_quality as T

    curve = [[1, 10.0, 0.1]]
    runs = [{"windows": "sliding", "stride": stride, "batch_size": 64, "curve": curve} for stride in (0, 10, None)]
    assert [T.windows_label(r) for r in runs] == ["sliding", "sliding/10", "sliding"]
    assert list(T.grouped(runs)) == [("ours", "sliding", 64), ("ours", "sliding/10", 64)]
    assert T.windows_label({"windows": "last", "stride": 10}) == "last"
