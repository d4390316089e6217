"""Each term of the objective (model/losses.py) against a value worked out by hand on a batch
small enough to check on paper: a term with the wrong sign, weight, reduction or mask fails."""

from __future__ import annotations

import math

import pytest
import torch

from model import losses


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# item table: padding row 0, items 1 and 2, mask row 3 (the last two far from zero on purpose)
TABLE = torch.tensor([[5.0, 5.0], [1.0, 1.0], [0.5, -1.0], [9.0, 0.0]])


def rows(ids: torch.Tensor) -> torch.Tensor:
    return TABLE[ids]


def test_bce_one_negative_by_hand():
    states = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # user 1: pos = s.E1 = 1, neg = s.E2 = 0.5; user 2: pos = s.E2 = -2, neg = s.E1 = 2
    expected = ((softplus(-1.0) + softplus(0.5)) + (softplus(2.0) + softplus(2.0))) / 2
    value = losses.rec_bce(states, torch.tensor([1, 2]), torch.tensor([[2], [1]]), rows)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_bce_sums_over_negatives_and_averages_over_positions():
    states = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    expected = ((softplus(-1.0) + 2 * softplus(0.5)) + (softplus(2.0) + 2 * softplus(2.0))) / 2
    value = losses.rec_bce(states, torch.tensor([1, 2]), torch.tensor([[2, 2], [1, 1]]), rows)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_bce_of_no_positions_is_zero_with_a_graph():
    states = torch.zeros(0, 2, requires_grad=True)
    value = losses.rec_bce(states, torch.zeros(0, dtype=torch.long), torch.zeros(0, 1, dtype=torch.long), rows)
    assert value.item() == 0.0 and value.requires_grad


def test_ce_softmax_over_real_items_only():
    """Padding (row 0) and mask (row 3) score highest here; leaving them in changes the value."""
    states = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # user 1: logits item1 = 1, item2 = 0.5, target 2; user 2: logits 1, -1, target 1
    first = -(0.5 - math.log(math.exp(1.0) + math.exp(0.5)))
    second = -(1.0 - math.log(math.exp(1.0) + math.exp(-1.0)))
    value = losses.rec_ce(states, torch.tensor([2, 1]), TABLE.clone(), mask_id=3)
    assert value.item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_ce_of_no_positions_is_zero_with_a_graph():
    states = torch.zeros(0, 2, requires_grad=True)
    for real_only in (False, True):
        value = losses.rec_ce(states, torch.zeros(0, dtype=torch.long), TABLE.clone(), mask_id=3, real_only=real_only)
        assert value.item() == 0.0 and value.requires_grad


def test_ce_over_the_real_items_rows_is_the_same_loss_and_gradient():
    """model.arithmetic lean: the real items' rows alone instead of -inf padding and mask columns."""
    results = []
    for real_only in (False, True):
        states = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, -0.2]], requires_grad=True)
        table = TABLE.clone().requires_grad_()
        value = losses.rec_ce(states, torch.tensor([2, 1, 2]), table, mask_id=3, real_only=real_only)
        value.backward()
        results.append((value.item(), states.grad, table.grad))
    (full, full_states, full_table), (real, real_states, real_table) = results
    assert real == pytest.approx(full, rel=1e-6)
    assert torch.allclose(real_states, full_states, atol=1e-6) and torch.allclose(real_table, full_table, atol=1e-6)
    assert real_table[0].abs().sum() == 0 and real_table[3].abs().sum() == 0      # padding, mask: no gradient


def test_self_distillation_is_mse_without_teacher_gradient():
    student = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    value = losses.self_distillation(student, teacher)
    assert value.item() == pytest.approx((1 + 4 + 4 + 9) / 4)
    value.backward()
    assert teacher.grad is None
    torch.testing.assert_close(student.grad, (student - teacher).detach() * 2 / 4)   # d mean(d^2) / d s


def test_icc_mean_squared_distance_over_present_constrained_items():
    weight = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [0.0, 3.0], [7.0, 7.0]])
    targets = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    constrained = torch.tensor([False, True, True, False, False])
    present = losses.batch_item_presence(torch.tensor([[0, 1, 2], [3, 4, 2]]), 5, mask_id=4)
    assert present.tolist() == [False, True, True, True, False]
    # item 1: (1-1)^2 + (1-0)^2 = 1; item 2: 4 + 0 = 4; item 3 present but unconstrained
    assert losses.icc_loss(weight, present, targets, constrained).item() == pytest.approx(2.5)
    only_unconstrained = torch.tensor([False, False, False, True, False])
    assert losses.icc_loss(weight, only_unconstrained, targets, constrained).item() == 0.0
    only_item_2 = torch.tensor([False, False, True, False, False])
    assert losses.icc_loss(weight, only_item_2, targets, constrained).item() == pytest.approx(4.0)


def info_nce_by_hand(co: list[list[float]], sem: list[list[float]], tau: float) -> float:
    """Symmetric InfoNCE written out with math: cosine / tau, cross-entropy both ways, averaged."""
    def unit(v):
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    a, b = [unit(v) for v in co], [unit(v) for v in sem]
    n = len(a)
    logit = [[sum(x * y for x, y in zip(a[i], b[j])) / tau for j in range(n)] for i in range(n)]

    def cross_entropy(matrix):
        return sum(math.log(sum(math.exp(v) for v in matrix[i])) - matrix[i][i] for i in range(n)) / n

    transposed = [[logit[j][i] for j in range(n)] for i in range(n)]
    return 0.5 * (cross_entropy(logit) + cross_entropy(transposed))


def test_view_contrast_by_hand():
    co, sem, tau = [[1.0, 0.0], [0.0, 2.0]], [[3.0, 0.0], [1.0, 1.0]], 0.5
    r2 = math.sqrt(2.0)
    # cosines / tau: [[2, sqrt2], [0, sqrt2]]
    rows_ce = (math.log(math.exp(2) + math.exp(r2)) - 2 + math.log(1 + math.exp(r2)) - r2) / 2
    cols_ce = (math.log(math.exp(2) + 1) - 2 + math.log(2.0)) / 2
    closed_form = 0.5 * (rows_ce + cols_ce)
    assert info_nce_by_hand(co, sem, tau) == pytest.approx(closed_form, rel=1e-12)
    value = losses.view_contrast(torch.tensor(co), torch.tensor(sem), tau)
    assert value.item() == pytest.approx(closed_form, rel=1e-6)


def test_view_contrast_temperature_and_single_item():
    torch.manual_seed(0)
    co, sem = torch.randn(5, 3), torch.randn(5, 3)
    for tau in (0.1, 1.0):
        expected = info_nce_by_hand(co.tolist(), sem.tolist(), tau)
        assert losses.view_contrast(co, sem, tau).item() == pytest.approx(expected, rel=1e-5)
    assert losses.view_contrast(co[:1], sem[:1], 0.2).item() == 0.0


def test_view_contrast_in_one_dimension():
    """Hidden size 1: unit vectors are +-1, and the loss is still computed (not skipped)."""
    co, sem = [[1.0], [-2.0], [3.0]], [[2.0], [1.0], [-1.0]]
    expected = info_nce_by_hand(co, sem, 0.5)
    assert expected > 0
    assert losses.view_contrast(torch.tensor(co), torch.tensor(sem), 0.5).item() == pytest.approx(expected, rel=1e-6)
