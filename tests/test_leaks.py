"""No leaks, by construction and by outcome.

Every user's validation and test targets are sentinel items nobody else has (synthetic_data), so
"training never sees a held-out target" can be checked literally: no sentinel in the training
block, the inputs, targets and batch items of any batch, or the histories teachers are computed
from; no test sentinel in what validation scores. And by outcome: moving the held-out targets
between users changes nothing training computes (weights and losses bit for bit on CPU), and
moving the test targets changes no validation metric either.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.batches import TrainBatches
from model.config import ModelConfig, TrainConfig
from model.pipeline import assemble_trainer
from model.trainer import Trainer
from synthetic_data import cluster_targets, held_out_items, sentinel_dataset

HIDDEN = 8
BACKBONES = ("sasrec", "bert4rec", "gru4rec")


@pytest.fixture(scope="module")
def data():
    return sentinel_dataset(n_users=16, pool=24, train_len=(1, 14), dim=8)


def configs(backbone: str, teacher: str = "batch", loss: str = "bce") -> tuple[ModelConfig, TrainConfig]:
    """Every term on: self-distillation (teachers), ICC and view contrast all read batch items."""
    model = ModelConfig(backbone=backbone, hidden_size=HIDDEN, max_len=6, num_blocks=1, num_heads=2,
                        adapter_hidden=16, alpha=0.5, gamma=0.5, lambda_cl=0.5, teacher=teacher,
                        loss=loss, n_negatives=2)
    return model, TrainConfig(lr=1e-2, batch_size=5, epochs=2, patience=0, device="cpu", seed=3,
                              eval_batch_size=7)


def ids_in(*tensors: torch.Tensor) -> set[int]:
    return {int(i) for t in tensors for i in t.reshape(-1).tolist()}


def test_training_block_holds_no_held_out_item(data):
    valid, test = held_out_items(data)
    for max_len in (2, 3, 6, 40):
        block = TrainBatches(data, ModelConfig(max_len=max_len), torch.device("cpu"), 0).block
        assert not ids_in(block) & (valid | test), max_len


class Recorder:
    """Wraps the training side's input builders and the scorer, keeping every id they see."""

    def __init__(self, monkeypatch, trainer: Trainer) -> None:
        self.train: set[int] = set()
        self.teachers: set[int] = set()
        self.scored: list[torch.Tensor] = []
        task, frozen_reps = trainer.model._task, trainer.model.frozen_user_reps

        def recording_task(batch):
            out = task(batch)
            self.train |= ids_in(out[0], out[1], out[3])
            return out

        def recording_frozen_reps(histories, chunk=None):
            self.teachers |= ids_in(histories)
            return frozen_reps(histories, chunk)

        user_repr = trainer.model.user_repr

        def recording_user_repr(inputs, views=None):       # every scored history (and the teachers')
            self.scored.append(inputs.detach().clone())
            return user_repr(inputs, views)

        monkeypatch.setattr(trainer.model, "_task", recording_task)
        monkeypatch.setattr(trainer.model, "frozen_user_reps", recording_frozen_reps)
        monkeypatch.setattr(trainer.model, "user_repr", recording_user_repr)


@pytest.mark.parametrize("teacher", ["batch", "epoch"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_training_and_validation_never_see_what_they_must_not(data, monkeypatch, backbone, teacher):
    valid, test = held_out_items(data)
    trainer = assemble_trainer(*configs(backbone, teacher), data, cluster_targets(data, HIDDEN))
    seen = Recorder(monkeypatch, trainer)
    trainer.train_epoch()                                   # trains, then evaluates on validation
    assert seen.train and seen.teachers and seen.scored
    assert not seen.train & (valid | test), "a held-out target in training inputs, targets or items"
    assert not seen.teachers & (valid | test), "a held-out target in a teacher's history"
    assert not ids_in(*seen.scored) & (valid | test), "a held-out target in validation inputs"
    seen.scored.clear()
    trainer.test()
    assert ids_in(*seen.scored) & valid                     # test inputs do include seq[-2]


def test_validation_histories_hold_no_held_out_item(data):
    from model.sequences import history_pairs, padded_histories

    valid, test = held_out_items(data)
    _, items, _ = history_pairs(data, "valid")
    assert not ids_in(torch.from_numpy(items)) & (valid | test)
    assert not ids_in(torch.from_numpy(padded_histories(data, "valid", 50))) & (valid | test)


# ---------------------------------------------------------------- by outcome

def moved(data, cut: int, shift: int = 5):
    """The dataset with the items at seq[-cut] moved between users (user u gets user u+shift's)."""
    ends = np.asarray(data.seq_offsets[1:]) - cut
    items = data.seq_items.copy()
    items[ends] = data.seq_items[np.roll(ends, -shift)]
    out = dataclasses.replace(data, seq_items=items)
    assert not np.array_equal(out.seq_items, data.seq_items)
    return out


def train_two_epochs(data, backbone: str, loss: str, teacher: str):
    trainer = assemble_trainer(*configs(backbone, teacher, loss), data, cluster_targets(data, HIDDEN))
    reports = [trainer.train_epoch() for _ in range(2)]
    return trainer, reports


@pytest.mark.parametrize("backbone, loss, teacher", [("sasrec", "bce", "batch"), ("bert4rec", "ce", "epoch"),
                                                     ("gru4rec", "ce", "batch")])
def test_held_out_targets_change_nothing_training_computes(data, backbone, loss, teacher):
    base, base_reports = train_two_epochs(data, backbone, loss, teacher)
    for cut in (2, 1):                                  # validation targets, then test targets
        other, reports = train_two_epochs(moved(data, cut), backbone, loss, teacher)
        assert [r.train_loss for r in reports] == [r.train_loss for r in base_reports], cut
        assert [r.loss_parts for r in reports] == [r.loss_parts for r in base_reports], cut
        for name, weights in base.model.state_dict().items():
            assert torch.equal(weights, other.model.state_dict()[name]), (cut, name)
        if cut == 1:                                    # validation never reads the test target
            assert [r.valid for r in reports] == [r.valid for r in base_reports]


# ---------------------------------------------------------------- preparation

N_CSV_USERS = 8


def write_log(folder, valid_shift: int, test_shift: int):
    """An interaction CSV: 5 training items per user (keys 1..12, t = 1..5), then a validation
    item 100 + (u + valid_shift) % U at t = 6 and a test item 200 + (u + test_shift) % U at t = 7;
    and a random embedding row for every item key (sorted)."""
    rng = np.random.default_rng(4)
    rows = []
    for user in range(N_CSV_USERS):
        items = [(user + k) % 12 + 1 for k in range(3)] + list(rng.integers(1, 13, size=2))
        rows += [f"u{user},{item},{t}" for t, item in enumerate(items, start=1)]
        rows += [f"u{user},{100 + (user + valid_shift) % N_CSV_USERS},6",
                 f"u{user},{200 + (user + test_shift) % N_CSV_USERS},7"]
    folder.mkdir()
    (folder / "inter.csv").write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    keys = sorted({int(r.split(",")[1]) for r in rows})
    np.save(folder / "emb.npy", np.random.default_rng(5).normal(size=(len(keys), 6)).astype(np.float32))
    return folder


def prepared(folder):
    from datasets.prepare import prepare_dataset
    from datasets.config import DataConfig

    return prepare_dataset(DataConfig(
        name="csv", path=str(folder / "inter.csv"), embedder="file", embedding_path=str(folder / "emb.npy"),
        cache_dir=str(folder / "cache"), user_core=3, item_core=1, pca_dim=4, n_similar_users=3,
        n_eval_negatives=3), progress=False)


def test_preparation_derives_nothing_from_held_out_items(tmp_path):
    """Similar users (teachers), popularity, groups and the PCA init come from training parts only."""
    base = prepared(write_log(tmp_path / "a", 0, 0))
    other = prepared(write_log(tmp_path / "b", 3, 5))
    assert not np.array_equal(base.valid_targets, other.valid_targets)
    assert not np.array_equal(base.test_targets, other.test_targets)
    for user in range(base.n_users):
        assert np.array_equal(base.sequence(user)[:-2], other.sequence(user)[:-2])
    for name in ("similar_users", "item_train_count", "tail_items", "tail_users", "item_text_emb", "item_pca"):
        assert np.array_equal(getattr(base, name), getattr(other, name)), name
    held_out = np.concatenate([base.valid_targets, base.test_targets])
    assert (base.item_train_count[held_out] == 0).all()          # seen only as held-out targets
