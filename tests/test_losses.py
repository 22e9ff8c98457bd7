"""Eq. 7 losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from dcinet.losses import modality_cross_entropy, soft_target_cross_entropy


def test_modality_cross_entropy_hand_values():
    # row 0: p = softmax([0, ln 3]) = [1/4, 3/4], label 1 -> -ln(3/4)
    # row 1: p = [1/2, 1/2], label 0 -> ln 2
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, 5.0]])
    labels = torch.tensor([1, 0])
    expected = (-math.log(0.75) + math.log(2.0)) / 2
    assert modality_cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-6)


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
