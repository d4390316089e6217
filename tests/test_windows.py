"""Training windows (train.windows): every training item a target, teachers by owner, exact runs.

- on a hand-made history: "sliding" cuts each user's training items into windows of
  max_len + 1 whose newest one is "last"'s block, every training position after the first is a
  next-item target exactly once (default stride), overlapping strides cover all of them;
- on ml-100k: the targets per epoch of both options, counted from the sequences;
- self-distillation teachers are looked up by a window's owner, from the owners' newest windows;
- every backbone trains with sliding windows, and a sliding run resumes exactly;
- configs saved before the option read as "last" (what they ran).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import user_subset
from model.batches import TrainBatches, training_block, training_windows
from model.config import ModelConfig, TrainConfig
from model.llmesr import build_model
from model.pipeline import assemble_trainer
from settings import ConfigError
from synthetic_data import sentinel_dataset

CPU = torch.device("cpu")
MAX_LEN = 4
#: training parts (seq[:-2]) of four users: 11 items, 3, exactly max_len + 1, 1; then valid, test
TRAIN = [list(range(1, 12)), [21, 22, 23], [31, 32, 33, 34, 35], [41]]


def hand_made():
    seqs = [t + [90 + u, 95 + u] for u, t in enumerate(TRAIN)]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
    return SimpleNamespace(n_users=len(seqs), seq_items=np.concatenate(seqs).astype(np.int64), seq_offsets=offsets)


def targets_of(block: np.ndarray, owner: np.ndarray, user: int) -> list[int]:
    """Every next-item target of the user's windows: items with a real item before them."""
    rows = block[owner == user]
    return sorted(rows[:, 1:][(rows[:, 1:] > 0) & (rows[:, :-1] > 0)].tolist())


def test_sliding_windows_of_a_hand_made_history():
    data = hand_made()
    block, owner = training_windows(data, MAX_LEN, "sliding")
    assert np.array_equal(block[:data.n_users], training_block(data, MAX_LEN))     # newest = "last"
    assert owner.tolist() == [0, 1, 2, 3, 0, 0]
    assert block[:data.n_users].tolist()[0] == [7, 8, 9, 10, 11]
    assert block[4:].tolist() == [[3, 4, 5, 6, 7], [0, 0, 1, 2, 3]]                 # back by max_len, padded
    for user, train in enumerate(TRAIN):
        assert targets_of(block, owner, user) == train[1:], user                   # each exactly once
    assert not set(block.reshape(-1).tolist()) & set(range(90, 100))              # no held-out item


def test_overlapping_stride_covers_every_target_and_last_keeps_one_window():
    data = hand_made()
    block, owner = training_windows(data, MAX_LEN, "sliding", stride=2)
    assert block[owner == 0].tolist()[1:] == [[5, 6, 7, 8, 9], [3, 4, 5, 6, 7], [1, 2, 3, 4, 5]]
    assert set(targets_of(block, owner, 0)) == set(TRAIN[0][1:])
    last, last_owner = training_windows(data, MAX_LEN, "last")
    assert np.array_equal(last, training_block(data, MAX_LEN)) and last_owner.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="train.window_stride: got 5"):
        training_windows(data, MAX_LEN, "sliding", stride=5)


def test_cloze_sees_every_training_item_once_over_the_windows():
    """Bert4Rec predicts among each window's last max_len items: with the default stride those
    tile the history (a full window's first item is the previous window's last)."""
    data = sentinel_dataset(n_users=6, pool=15, train_len=(9, 14))
    cfg = ModelConfig(backbone="bert4rec", hidden_size=8, max_len=MAX_LEN, adapter_hidden=8, gamma=0.0)
    batches = TrainBatches(data, cfg, CPU, seed=0, windows="sliding")
    model = build_model(cfg, data, None)
    *_, seq = model._task(batches.batch(torch.arange(batches.block.shape[0])))
    for user in range(data.n_users):
        seen = seq[batches.owner == user]
        train = data.sequence(user)[:-2]
        expected = train if (len(train) - 1) % MAX_LEN else train[1:]   # the first item: padded window only
        assert sorted(seen[seen > 0].tolist()) == sorted(expected.tolist()), user


def test_ml100k_targets_per_epoch(ml100k):
    """Sliding makes every training item after a user's first a target (RecBole's 96,458 on this
    data); last keeps at most max_len per user (38,719): counted here from the sequences."""
    train_len = np.diff(ml100k.seq_offsets) - 2
    cfg = ModelConfig(max_len=50)
    counts = {}
    for windows in ("last", "sliding"):
        batches = TrainBatches(ml100k, cfg, CPU, seed=0, windows=windows)
        block = batches.block[batches.rows]
        counts[windows] = int(((block[:, 1:] > 0) & (block[:, :-1] > 0)).sum())
    assert counts["sliding"] == int((train_len - 1).sum()) == 96_458
    assert counts["last"] == int(np.minimum(train_len - 1, 50).sum()) == 38_719


@pytest.mark.parametrize("teacher", ["batch", "epoch"])
def test_teachers_come_from_the_owners_newest_windows(teacher):
    data = sentinel_dataset(n_users=8, pool=15, train_len=(6, 14))
    cfg = ModelConfig(hidden_size=8, max_len=MAX_LEN, num_blocks=1, adapter_hidden=8, gamma=0.0, teacher=teacher)
    batches = TrainBatches(data, cfg, CPU, seed=0, windows="sliding")
    torch.manual_seed(0)
    model = build_model(cfg, data, None)
    if teacher == "epoch":
        batches.teacher_reps = model.frozen_user_reps(batches.newest[:, 1:], chunk=1024)
    older = torch.arange(data.n_users, batches.block.shape[0])
    assert older.numel() > data.n_users                                      # several older windows
    newest = torch.from_numpy(training_block(data, MAX_LEN))[:, 1:]
    by_hand = torch.stack([model.frozen_user_reps(newest[data.similar_users[u]]).mean(0)
                           for u in batches.owner[older].tolist()])
    assert torch.allclose(model.teacher(batches.batch(older)), by_hand, atol=1e-6)
    assert torch.equal(model.teacher(batches.batch(older)), model.teacher(batches.batch(batches.owner[older])))


def configs(backbone: str = "sasrec", **train) -> tuple[ModelConfig, TrainConfig]:
    model = ModelConfig(backbone=backbone, hidden_size=16, max_len=10, num_heads=2, adapter_hidden=32,
                        gamma=0.0, lambda_cl=0.1, teacher="epoch")
    options = dict(lr=3e-3, batch_size=64, epochs=2, patience=0, device="cpu", seed=3, windows="sliding")
    return model, TrainConfig(**{**options, **train})


@pytest.fixture(scope="module")
def small(ml100k):
    return user_subset(ml100k, 40)


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec", "gru4rec"])
def test_every_backbone_trains_an_epoch_on_windows(small, backbone):
    trainer = assemble_trainer(*configs(backbone), small)
    rows = trainer.batches.rows.shape[0]
    assert rows > 3 * small.n_users                                   # long ml-100k histories
    before = [p.detach().clone() for p in trainer.model.parameters()]
    report = trainer.train_epoch()
    assert np.isfinite(report.train_loss) and report.loss_parts["sd"] > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()) if b.requires_grad)
    assert trainer.batches.n_batches(64) == -(-rows // 64)


def test_sliding_resume_equals_straight(small):
    straight = assemble_trainer(*configs(), small)
    reports = [straight.train_epoch() for _ in range(2)]
    first = assemble_trainer(*configs(), small)
    first.train_epoch()
    state = first.state_dict()
    first.train_epoch()                                  # the checkpoint must not alias live tensors
    resumed = assemble_trainer(*configs(), small)
    resumed.load_state_dict(state)
    second = resumed.train_epoch()
    assert dataclasses.replace(second, seconds=0.0) == dataclasses.replace(reports[1], seconds=0.0)
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                 straight.model.state_dict().values()))
    assert resumed.test() == straight.test()


def test_windows_change_the_run_and_last_is_todays_block(small):
    """last trains on the users' blocks as before (rows = users); sliding differs."""
    last, sliding = assemble_trainer(*configs(windows="last"), small), assemble_trainer(*configs(), small)
    assert torch.equal(last.batches.block, torch.from_numpy(training_block(small, 10)))
    assert torch.equal(last.batches.owner, torch.arange(small.n_users))
    assert last.train_epoch().train_loss != sliding.train_epoch().train_loss


def test_stride_longer_than_the_window_is_a_config_error():
    from tuning.config import load_config

    with pytest.raises(ConfigError, match=r"train.window_stride: got 60, but model.max_len is 50"):
        load_config(None, ["model.max_len=50", "train.window_stride=60"])
    assert load_config(None, ["model.max_len=50", "train.window_stride=50"]).train.window_stride == 50


def test_configs_saved_before_windows_read_as_last():
    """A config saved before train.windows existed trained on the users' last windows; it must
    read as "last" to re-run exactly. It does because "last" is the default: a change of the
    default must first make such configs (every train key of its day, no windows) read as last."""
    import json

    from conftest import REPO
    from tuning.config import config_from_dict, config_to_dict

    saved = json.loads((REPO / "docs/studies/amazon-scientific/study_config.json").read_text())
    assert "windows" not in saved["train"]                       # the real study, saved before the key
    config = config_from_dict(saved)
    assert config.train.windows == "last", "saved configs without train.windows must keep training on the last window"
    assert config_from_dict(config_to_dict(config)) == config     # saved again, with the key: still last
    assert config_from_dict({**saved, "train": {**saved["train"], "windows": "sliding"}}).train.windows == "sliding"
