"""The trainer: seeded determinism, exact resume, early stopping, NaN detection, devices."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import user_subset
from model.config import ModelConfig, TrainConfig
from model.device import resolve_device
from model.pipeline import assemble_trainer
from model.trainer import EpochReport, TrainResult

N_USERS = 150


@pytest.fixture(scope="module")
def small(scientific):
    return user_subset(scientific, N_USERS)


def configs(backbone: str = "sasrec", teacher: str = "batch", **train) -> tuple[ModelConfig, TrainConfig]:
    model = ModelConfig(backbone=backbone, hidden_size=16, max_len=10, num_heads=2,
                        adapter_hidden=32, gamma=0.0, lambda_cl=0.1, teacher=teacher)
    options = dict(lr=3e-3, batch_size=40, epochs=3, patience=0, device="cpu", seed=3)
    return model, TrainConfig(**{**options, **train})


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec", "gru4rec"])
def test_same_config_same_numbers(small, backbone):
    runs = [assemble_trainer(*configs(backbone, epochs=2), small) for _ in range(2)]
    reports = [[t.train_epoch() for _ in range(2)] for t in runs]
    strip = [[dataclasses.replace(r, seconds=0.0) for r in rs] for rs in reports]
    assert strip[0] == strip[1]
    assert same_state(runs[0].model.state_dict(), runs[1].model.state_dict())


@pytest.mark.parametrize("backbone, teacher", [("sasrec", "batch"), ("bert4rec", "batch"), ("sasrec", "epoch")])
def test_resume_equals_straight(small, backbone, teacher):
    straight = assemble_trainer(*configs(backbone, teacher), small)
    straight_reports = [straight.train_epoch() for _ in range(3)]
    first = assemble_trainer(*configs(backbone, teacher), small)
    first.train_epoch(), first.train_epoch()
    state = first.state_dict()
    first.train_epoch()                                  # the checkpoint must not alias live tensors
    resumed = assemble_trainer(*configs(backbone, teacher), small)
    resumed.load_state_dict(state)
    third = resumed.train_epoch()
    assert dataclasses.replace(third, seconds=0.0) == dataclasses.replace(straight_reports[2], seconds=0.0)
    assert same_state(resumed.model.state_dict(), straight.model.state_dict())
    assert [h["train_loss"] for h in resumed.history] == [r.train_loss for r in straight_reports]
    assert resumed.test() == straight.test()


def test_fit_reports_every_epoch_and_tests_best_weights(small):
    trainer = assemble_trainer(*configs(epochs=3), small)
    seen: list[EpochReport] = []
    result = trainer.fit(seen.append)
    assert isinstance(result, TrainResult) and [r.epoch for r in seen] == [1, 2, 3]
    assert result.epochs == 3 and len(result.history) == 3
    best = max(seen, key=lambda r: r.valid["ndcg_10"])
    assert result.best_epoch == best.epoch and result.valid == best.valid
    assert "ndcg_10" in result.test and "tail_item_ndcg_10" in result.test
    assert trainer.should_stop()


def test_patience_stops_early(small):
    trainer = assemble_trainer(*configs(epochs=50, patience=1, lr=1e-9), small)
    result = trainer.fit()
    assert result.epochs < 50 and result.epochs - result.best_epoch == 1


def test_non_finite_loss_is_reported(small):
    trainer = assemble_trainer(*configs(lr=1e30), small)
    with pytest.raises(FloatingPointError, match=r"non-finite loss at epoch \d"):
        for _ in range(3):
            trainer.train_epoch()
    injected = assemble_trainer(*configs(), small)
    with torch.no_grad():
        injected.model.id_emb.weight[1:] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite loss at epoch 1"):
        injected.train_epoch()


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="train.device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec", "gru4rec"])
def test_epoch_teachers_equal_per_batch_teachers_at_the_same_weights(small, backbone):
    """The cached teachers are the same function of the weights as the per-batch ones."""
    trainer = assemble_trainer(*configs(backbone, "epoch"), small)
    trainer.train_epoch()
    users = torch.arange(0, N_USERS, 7)
    trainer._refresh_teachers()
    cached = trainer.model.teacher(trainer.batches.batch(users))
    trainer.batches.teacher_reps = None
    direct = trainer.model.teacher(trainer.batches.batch(users))
    assert cached.shape == direct.shape
    torch.testing.assert_close(cached, direct, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arithmetic", ["reference", "lean"])
def test_teachers_computed_a_few_users_at_a_time_equal_all_at_once(small, arithmetic):
    """_refresh_teachers takes train.eval_batch_size users at a time, the item views adapted once."""
    model_cfg, _ = configs("sasrec", "epoch")
    model_cfg = dataclasses.replace(model_cfg, arithmetic=arithmetic)
    whole, chunked = (assemble_trainer(model_cfg, configs(eval_batch_size=size)[1], small) for size in (10**6, 7))
    whole._refresh_teachers()
    chunked._refresh_teachers()
    assert whole.batches.teacher_reps.shape[0] > 7
    torch.testing.assert_close(chunked.batches.teacher_reps, whole.batches.teacher_reps, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec", "gru4rec"])
def test_the_validation_hands_the_next_epoch_the_teachers_a_refresh_would_compute(small, backbone):
    """Bit for bit, so a run that takes its teachers from the validation trains exactly as one
    that refreshes them (a resumed run refreshes: tests/test_resumable_runs.py)."""
    trainer = assemble_trainer(*configs(backbone, "epoch", eval_batch_size=7), small)
    trainer.train_epoch()
    from_validation = trainer._next_teachers
    trainer._refresh_teachers()
    assert from_validation is not None and torch.equal(from_validation, trainer.batches.teacher_reps)
    trainer.load_state_dict(trainer.state_dict())
    assert trainer._next_teachers is None                              # other weights: refresh


def test_no_teachers_are_kept_without_epoch_distillation(small):
    trainer = assemble_trainer(*configs("sasrec", "batch"), small)
    trainer.train_epoch()
    assert trainer._next_teachers is None


class _RunsCode:
    """Unpickling this creates a file: a checkpoint loader that allows it runs arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (self.marker,)


def test_trial_checkpoint_round_trips_with_weights_only_and_runs_no_code(small, tmp_path):
    import json

    from ray import tune

    from tuning.trainable import METRICS_FILE, STATE_FILE, _restore

    trainer = assemble_trainer(*configs(), small)
    trainer.train_epoch()
    saved = tmp_path / "checkpoint"
    saved.mkdir()
    torch.save(trainer.state_dict(), saved / STATE_FILE)                  # what the trial writes
    (saved / METRICS_FILE).write_text(json.dumps({"epoch": 1}))
    resumed = assemble_trainer(*configs(), small)
    assert _restore(resumed, tune.Checkpoint.from_directory(saved)) == {"epoch": 1}
    assert same_state(resumed.model.state_dict(), trainer.model.state_dict())
    assert dataclasses.replace(resumed.train_epoch(), seconds=0.0) == \
        dataclasses.replace(trainer.train_epoch(), seconds=0.0)          # continues exactly

    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "code-ran"
    torch.save({**trainer.state_dict(), "extra": _RunsCode(str(marker))}, evil / STATE_FILE)
    (evil / METRICS_FILE).write_text(json.dumps({"epoch": 2}))
    assert _restore(assemble_trainer(*configs(), small), tune.Checkpoint.from_directory(evil)) is None
    assert not marker.exists()                                            # refused before unpickling it
