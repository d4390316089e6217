"""`model.arithmetic=lean`: the same model computed with fewer operations (bench/precision.py
measures what it buys). Equal to the reference arithmetic up to float rounding, seeded runs
reproduce exactly (its resume from a checkpoint: tests/test_resumable_runs.py), and the reference
stays the default, so runs saved before the key reproduce bit for bit."""

from __future__ import annotations

import torch

from model.config import ModelConfig
from model.llmesr import LLMESR
from model.pipeline import train_once
from test_resumable_runs import RUN
from tuning.config import load_config

LEAN = [*RUN, "train.epochs=2", "model.loss=ce", "model.arithmetic=lean"]


def _adapter_outputs(arithmetic: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The semantic item table under `arithmetic` and its gradients for the adapter's weights."""
    torch.manual_seed(0)
    text = torch.randn(50, 24).numpy()
    model = LLMESR(ModelConfig(hidden_size=8, adapter_hidden=12, arithmetic=arithmetic), 49, text, None)
    _, sem = model.all_item_views()
    (sem.square().sum() + sem.sum()).backward()
    return sem.detach(), [p.grad.clone() for p in model.adapter.parameters()]


def test_the_folded_adapter_is_the_two_layers_and_trains_them_alike():
    (reference, ref_grads), (lean, lean_grads) = _adapter_outputs("reference"), _adapter_outputs("lean")
    assert torch.allclose(lean, reference, atol=1e-5) and not torch.equal(lean, torch.zeros_like(lean))
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(lean_grads, ref_grads))


def test_a_lean_run_trains_as_the_reference_up_to_rounding_and_reproduces_exactly():
    lean = train_once(load_config(None, LEAN))
    again = train_once(load_config(None, LEAN))
    reference = train_once(load_config(None, [*LEAN, "model.arithmetic=reference"]))
    losses = [h["train_loss"] for h in lean.history]
    assert losses == [h["train_loss"] for h in again.history] and lean.test == again.test     # seeded: exact
    assert all(abs(a - b) < 1e-3 * abs(b) for a, b in zip(losses, (h["train_loss"] for h in reference.history)))
    assert abs(lean.test["ndcg_10"] - reference.test["ndcg_10"]) < 0.01


def test_the_reference_arithmetic_is_the_default():
    assert load_config(None, RUN).model.arithmetic == "reference" == ModelConfig().arithmetic
