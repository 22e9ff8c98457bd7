"""Eq. 7 losses and the FGCrossNet baseline losses against hand-computed values and naive loops."""

from __future__ import annotations

import math

import pytest
import torch

from dcinet.losses import (
    center_loss,
    modality_cross_entropy,
    quadruplet_loss,
    soft_target_cross_entropy,
)


def test_modality_cross_entropy_hand_values():
    # row 0: p = softmax([0, ln 3]) = [1/4, 3/4], label 1 -> -ln(3/4)
    # row 1: p = [1/2, 1/2], label 0 -> ln 2
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, 5.0]])
    labels = torch.tensor([1, 0])
    expected = (-math.log(0.75) + math.log(2.0)) / 2
    assert modality_cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_modality_cross_entropy_label_smoothing_hand_values():
    # p = [1/4, 3/4], label 1, s = 0.2: targets (1 - s) * one_hot + s / 2 = [0.1, 0.9]
    logits = torch.tensor([[0.0, math.log(3.0)]])
    expected = -(0.1 * math.log(0.25) + 0.9 * math.log(0.75))
    got = modality_cross_entropy(logits, torch.tensor([1]), label_smoothing=0.2).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_soft_target_cross_entropy_hand_values():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    targets = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    row0 = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    row1 = math.log(2.0)  # uniform prediction: -sum y log(1/2) = ln 2 for any y summing to 1
    assert soft_target_cross_entropy(logits, targets).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_soft_target_with_one_hot_equals_hard_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(6, 5)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    one_hot = torch.nn.functional.one_hot(labels, 5).float()
    assert torch.allclose(soft_target_cross_entropy(logits, one_hot), modality_cross_entropy(logits, labels))


def test_half_precision_logits_give_float32_loss():
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float16)
    out = soft_target_cross_entropy(logits, torch.tensor([[0.0, 1.0]]))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(-math.log(0.75), rel=1e-3)
    assert modality_cross_entropy(logits, torch.tensor([1])).dtype == torch.float32


# --- FGCrossNet baseline losses -----------------------------------------------------------------

def _naive_center_loss(f: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> float:
    total = 0.0
    for i in range(len(y)):
        total += 0.5 * sum((float(f[i, d]) - float(c[int(y[i]), d])) ** 2 for d in range(f.shape[1]))
    return total / len(y)


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> float:
    return sum((float(u) - float(v)) ** 2 for u, v in zip(a, b, strict=True))


def _naive_quadruplet_loss(f, y, m, a1, a2) -> tuple[float, int]:
    """(mean over valid quadruplets, their number)."""
    n, total, count = len(y), 0.0, 0
    for i in range(n):
        for j in range(n):
            if j == i or y[j] != y[i] or (m is not None and m[j] == m[i]):
                continue
            for k in range(n):
                for l in range(n):  # noqa: E741 - the paper's index name
                    if y[k] == y[i] or y[l] == y[i] or y[k] == y[l]:
                        continue
                    d_ij = _sq_dist(f[i], f[j])
                    total += max(0.0, d_ij - _sq_dist(f[i], f[k]) + a1)
                    total += max(0.0, d_ij - _sq_dist(f[l], f[k]) + a2)
                    count += 1
    return (total / count if count else 0.0), count


@pytest.mark.parametrize("seed", range(4))
def test_center_loss_matches_naive_loop(seed):
    g = torch.Generator().manual_seed(seed)
    f, c = torch.randn(7, 5, generator=g), torch.randn(4, 5, generator=g)
    y = torch.randint(0, 4, (7,), generator=g)
    assert center_loss(f, y, c).item() == pytest.approx(_naive_center_loss(f, y, c), abs=1e-6)


def test_center_loss_hand_values_and_centre_gradient():
    f = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0, 1])
    c = torch.zeros(3, 2, requires_grad=True)
    loss = center_loss(f, y, c)
    assert loss.item() == pytest.approx((0.5 * 1 + 0.5 * 9 + 0.5 * 4) / 3)
    loss.backward()
    # d/dc_k = -(1/N) sum_{y_i = k} (f_i - c_k); class 2 is absent from the batch
    assert torch.allclose(c.grad, torch.tensor([[-4 / 3, 0.0], [0.0, -2 / 3], [0.0, 0.0]]))
    assert center_loss(f, y, torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, 5.0]])).item() == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("cross_modal", [True, False])
def test_quadruplet_loss_matches_naive_loop(seed, cross_modal):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(9, 3, generator=g) * 0.7
    y = (torch.arange(9) % 4)[torch.randperm(9, generator=g)]
    m = torch.arange(3).repeat_interleave(3) if cross_modal else None
    expected, count = _naive_quadruplet_loss(f, y.tolist(), None if m is None else m.tolist(), 1.0, 0.5)
    assert count > 0
    assert quadruplet_loss(f, y, m, 1.0, 0.5).item() == pytest.approx(expected, abs=1e-6)


def test_quadruplet_loss_hand_cases():
    # classes 0 (samples 0, 1), 1 (sample 2), 2 (sample 3): valid quadruplets are the ordered
    # (i, j) in {(0, 1), (1, 0)} times the ordered (k, l) in {(2, 3), (3, 2)} -> 4.
    far = torch.tensor([[0.0, 0.0], [0.1, 0.0], [3.0, 0.0], [3.0, 4.0]])
    y = torch.tensor([0, 0, 1, 2])
    # d(i,j) = 0.01 while every d(i,k) >= 9 and d(l,k) = 16: both margins satisfied -> 0
    assert quadruplet_loss(far, y).item() == 0.0
    # negatives moved in: d(0,1) = 0.01, d(0,2) = 0.25, d(0,3) = 0.34, d(1,2) = 0.16,
    # d(1,3) = 0.25, d(2,3) = 0.09; the second term is 0.01 - 0.09 + 0.5 = 0.42 throughout
    near = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.5, 0.0], [0.5, 0.3]])
    first = [0.01 - d_ik + 1.0 for d_ik in (0.25, 0.34, 0.16, 0.25)]
    assert quadruplet_loss(near, y).item() == pytest.approx(sum(first) / 4 + 0.42, abs=1e-6)
    assert quadruplet_loss(near, y, margin1=0.0, margin2=0.0).item() == 0.0


def test_quadruplet_loss_needs_cross_modal_positives_and_three_classes():
    f = torch.randn(4, 3, requires_grad=True)
    # the only positive pair shares a modality -> no valid quadruplet, 0 with a graph
    out = quadruplet_loss(f, torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 1, 1]))
    assert out.item() == 0.0 and out.requires_grad
    # two classes only: no (k, l) with y_k != y_l, both != y_i
    assert quadruplet_loss(f, torch.tensor([0, 0, 1, 1])).item() == 0.0


def test_baseline_losses_send_gradients_to_features_and_centres():
    g = torch.Generator().manual_seed(0)
    f = (torch.randn(8, 4, generator=g) * 0.3).requires_grad_()
    c = torch.randn(3, 4, generator=g, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    m = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    (center_loss(f, y, c) + quadruplet_loss(f, y, m)).backward()
    assert c.grad.abs().sum(dim=1).gt(0).all()  # every class is in the batch
    assert f.grad.abs().sum(dim=1).gt(0).all()
    half = center_loss(f.detach().half(), y, c.detach().half())
    assert half.dtype == torch.float32
