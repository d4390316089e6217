"""`train.precision=bf16`: bfloat16 autocast of the training batches' forward pass
(bench/precision.py measures what it buys), with evaluation and exact reproduction as in fp32 (a
bf16 run's resume from its checkpoint: tests/test_resumable_runs.py)."""

from __future__ import annotations

from model.pipeline import build_trainer, train_once
from test_resumable_runs import RUN
from tuning.config import load_config

BF16 = [*RUN, "train.epochs=2", "train.precision=bf16"]


def test_bf16_changes_the_training_arithmetic_and_reproduces_exactly():
    bf16 = train_once(load_config(None, BF16))
    again = train_once(load_config(None, BF16))
    fp32 = train_once(load_config(None, [*BF16, "train.precision=fp32"]))
    losses = [h["train_loss"] for h in bf16.history]
    assert losses == [h["train_loss"] for h in again.history] and bf16.test == again.test    # seeded: exact
    assert losses != [h["train_loss"] for h in fp32.history]                                  # autocast acted
    assert all(abs(a - b) < 0.05 * abs(b) for a, b in zip(losses, (h["train_loss"] for h in fp32.history)))


def test_evaluation_and_teachers_stay_in_fp32():
    """The same weights score the same under either setting: ranking over thousands of items in
    bfloat16's 8 mantissa bits would tie many scores."""
    from datasets.prepare import prepare_dataset

    config = load_config(None, BF16)
    data = prepare_dataset(config.data, progress=False)
    bf16, fp32 = build_trainer(config, data), build_trainer(config.replace({"train.precision": "fp32"}), data)
    assert bf16.evaluate("valid") == fp32.evaluate("valid")
    bf16._refresh_teachers()
    fp32._refresh_teachers()
    assert bf16.batches.teacher_reps.dtype == fp32.batches.teacher_reps.dtype
    assert bool((bf16.batches.teacher_reps == fp32.batches.teacher_reps).all())

