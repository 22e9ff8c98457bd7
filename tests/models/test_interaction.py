"""CMSI (timm Mixup after a batch shuffle) and CMCI (channel-block exchange) on hand-built maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcinet.errors import DcinetError
from dcinet.models.interaction import (
    MixupSettings,
    channel_blocks,
    cmci,
    cmci_sources,
    cmsi,
    feasible_minmax,
)


def _seed(seed: int = 0) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def _box(mixed: torch.Tensor, shuffled: torch.Tensor) -> torch.Tensor:
    """(h, w) bool mask of the positions where map 0 was overwritten."""
    return (mixed[0] != shuffled[0]).any(dim=0)


# ---------------------------------------------------------------- CMSI


@pytest.mark.parametrize("side", [2, 3, 4, 5, 6, 7, 8, 9, 20])
def test_cmsi_soft_targets_follow_uncovered_area(side):
    _seed(side)
    n, k = 6, 6
    maps = torch.randn(n, 4, side, side)
    labels = torch.arange(n)  # all distinct: the two weights of each row are separable
    before = maps.clone()
    mixed, soft, perm = cmsi(maps, labels, k)
    assert torch.equal(maps, before), "input modified in place"
    assert sorted(perm.tolist()) == list(range(n))
    shuffled = maps[perm]
    box = _box(mixed, shuffled)
    rows, cols = box.any(dim=1).nonzero().flatten(), box.any(dim=0).nonzero().flatten()
    # the box is one rectangle, the same for every map, filled from the flipped batch
    assert box.sum() == len(rows) * len(cols)
    lo = int(0.5 * side)
    assert len(rows) == len(cols) and (len(rows) == lo if side < 10 else lo <= len(rows) < int(0.6 * side))
    assert torch.equal(mixed[:, :, box], shuffled.flip(0)[:, :, box])
    assert torch.equal(mixed[:, :, ~box], shuffled[:, :, ~box])
    uncovered = 1.0 - box.float().mean().item()
    y = labels[perm]
    assert torch.allclose(soft.sum(dim=1), torch.ones(n))
    assert torch.allclose(soft[torch.arange(n), y], torch.full((n,), uncovered))
    assert torch.allclose(soft[torch.arange(n), y.flip(0)], torch.full((n,), 1 - uncovered))


@pytest.mark.parametrize("h,w", [(2, 5), (5, 2), (3, 7), (4, 4)])
def test_cmsi_non_square_and_small_maps(h, w):
    _seed(1)
    maps = torch.randn(4, 3, h, w)
    mixed, soft, perm = cmsi(maps, torch.tensor([0, 1, 2, 3]), 4)
    box = _box(mixed, maps[perm])
    for side, extent in ((h, box.any(dim=1).sum().item()), (w, box.any(dim=0).sum().item())):
        if int(0.6 * side) <= int(0.5 * side):  # timm's range is empty: exactly int(0.5 * side)
            assert extent == int(0.5 * side)
        else:  # may widen up to the side when the other side's range was empty
            assert int(0.5 * side) <= extent < side
    uncovered = 1.0 - box.float().mean().item()
    assert torch.allclose(soft.max(dim=1).values, torch.full((4,), max(uncovered, 1 - uncovered)))


def test_feasible_minmax_only_changes_empty_ranges():
    for side in (5, 7, 9, 14, 28):
        assert feasible_minmax(side, side, (0.5, 0.6)) == (0.5, 0.6)
    for side in (2, 3, 4, 6, 8):
        lo, hi = feasible_minmax(side, side, (0.5, 0.6))
        assert lo == 0.5
        assert int(hi * side) == int(lo * side) + 1  # np.random.randint(k, k + 1) == k
        assert hi <= 1.0 + 1e-12


def test_cmsi_is_reproducible_from_the_global_rngs():
    maps, labels = torch.randn(8, 5, 7, 7), torch.arange(8) % 3
    _seed(3)
    first = cmsi(maps, labels, 3)
    _seed(3)
    second = cmsi(maps, labels, 3)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_cmsi_settings_reach_timm():
    _seed(4)
    maps, labels = torch.randn(4, 2, 5, 5), torch.tensor([0, 1, 2, 3])
    smooth = MixupSettings(label_smoothing=0.1)
    _, soft, _ = cmsi(maps, labels, 4, smooth)
    assert torch.allclose(soft.sum(dim=1), torch.ones(4))
    assert soft.min().item() == pytest.approx(0.1 / 4)
    blend = MixupSettings(switch_prob=0.0)  # mixup instead of cutmix: a global blend
    mixed, soft, perm = cmsi(maps, labels, 4, blend)
    shuffled = maps[perm]
    lam = soft[0, labels[perm][0]]
    assert torch.allclose(mixed[0], lam * shuffled[0] + (1 - lam) * shuffled[3], atol=1e-6)


def test_cmsi_backward_through_inplace_relu():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    maps = F.relu(conv(torch.randn(4, 3, 6, 6)), inplace=True)
    _seed(5)
    mixed, soft, _ = cmsi(maps, torch.tensor([0, 1, 0, 1]), 2)
    (mixed.sum() + soft.sum()).backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_cmsi_rejects_odd_batches_and_tiny_maps():
    with pytest.raises(DcinetError, match="even number"):
        cmsi(torch.randn(3, 2, 4, 4), torch.tensor([0, 1, 2]), 3)
    with pytest.raises(DcinetError, match="at least 2 x 2"):
        cmsi(torch.randn(2, 2, 1, 1), torch.tensor([0, 1]), 2)


# ---------------------------------------------------------------- CMCI


def test_channel_blocks_give_the_remainder_to_b0():
    assert channel_blocks(7) == [(0, 3), (3, 5), (5, 7)]
    assert channel_blocks(9) == [(0, 3), (3, 6), (6, 9)]
    assert channel_blocks(2) == [(0, 2), (2, 2), (2, 2)]


def _distinct_maps(n: int, c: int) -> torch.Tensor:
    """Map i holds the value 100 * i + channel everywhere: every channel is traceable."""
    values = 100 * torch.arange(n)[:, None] + torch.arange(c)[None, :]
    return values[:, :, None, None].float().expand(n, c, 2, 2).contiguous()


def _soft(labels: torch.Tensor, k: int) -> torch.Tensor:
    return F.one_hot(labels, k).float()


def test_cmci_two_modalities_swap_b1_between_same_label_pairs():
    # indices 0..3 image, 4..7 audio; label 1: image [0, 2], audio [4, 5] -> pairs (0, 4), (2, 5);
    # label 2: image [1], audio [7] -> pair (1, 7); label 3 (image 3) and 4 (audio 6): alone.
    labels = torch.tensor([1, 2, 1, 3, 1, 1, 4, 2])
    modality = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    maps = _distinct_maps(8, 7)  # B0 = channels 0-2, B1 = 3-4, B2 = 5-6
    soft = _soft(torch.arange(8), 8)  # one class per map, to trace target mixing
    out, out_soft = cmci(maps, soft, labels, modality)
    partner = {0: 4, 4: 0, 2: 5, 5: 2, 1: 7, 7: 1}
    for i in range(8):
        expected = maps[i].clone()
        if i in partner:
            expected[3:5] = maps[partner[i]][3:5]
        assert torch.equal(out[i], expected), i
        target = torch.zeros(8)
        target[i] = 5 / 7
        if i in partner:
            target[partner[i]] += 2 / 7
        else:
            target[i] = 1.0
        assert torch.allclose(out_soft[i], target), i


def test_cmci_three_modalities_triples_then_pairs_in_batch_order():
    # as after CMSI the modalities are interleaved:
    #   idx: 0 1 2 3 4 5 6 7 8
    #   mod: 2 0 1 0 2 1 0 1 2
    #   lab: 0 0 1 0 0 0 0 1 1
    # label 0: image [1, 3, 6], audio [5], text [0, 4] -> triple (1, 5, 0), then pair (3, 4),
    #          6 left over; label 1: audio [2, 7], text [8] -> pair (2, 8), 7 left over.
    modality = torch.tensor([2, 0, 1, 0, 2, 1, 0, 1, 2])
    labels = torch.tensor([0, 0, 1, 0, 0, 0, 0, 1, 1])
    maps = _distinct_maps(9, 10)  # B0 = 0-3, B1 = 4-6, B2 = 7-9
    soft = _soft(torch.arange(9), 9)
    out, out_soft = cmci(maps, soft, labels, modality)
    expected = maps.clone()
    expected[1, 4:7], expected[1, 7:10] = maps[5, 4:7], maps[0, 7:10]
    expected[3, 4:7], expected[4, 4:7] = maps[4, 4:7], maps[3, 4:7]
    expected[2, 4:7], expected[8, 4:7] = maps[8, 4:7], maps[2, 4:7]
    assert torch.equal(out, expected)
    target = torch.eye(9)
    target[1] = 0
    target[1, 1], target[1, 5], target[1, 0] = 0.4, 0.3, 0.3
    for a, b in ((3, 4), (4, 3), (2, 8), (8, 2)):
        target[a] = 0
        target[a, a], target[a, b] = 0.7, 0.3
    assert torch.allclose(out_soft, target)


def test_cmci_four_modalities_use_the_first_three():
    modality = torch.tensor([3, 2, 1, 0, 3])
    labels = torch.zeros(5, dtype=torch.int64)
    sources = cmci_sources(labels, modality)
    # triple (image 3, audio 2, text 1); video 0 and 4 have no partner modality left
    assert sources.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 2, 4], [0, 1, 2, 1, 4]]


def test_cmci_carries_soft_targets_linearly_and_is_pure():
    torch.manual_seed(0)
    maps = torch.randn(6, 9, 3, 3, requires_grad=True)
    soft = torch.softmax(torch.randn(6, 4), dim=1)
    labels, modality = torch.tensor([0, 1, 0, 1, 0, 2]), torch.tensor([0, 0, 1, 1, 2, 2])
    before = (maps.detach().clone(), soft.clone())
    out, out_soft = cmci(maps, soft, labels, modality)
    again = cmci(maps, soft, labels, modality)
    assert torch.equal(out, again[0]) and torch.equal(out_soft, again[1])
    assert torch.equal(maps.detach(), before[0]) and torch.equal(soft, before[1])
    # triple (0, 2, 4) for label 0, pair (1, 3) for label 1, map 5 alone
    assert torch.allclose(out_soft[0], (soft[0] + soft[2] + soft[4]) / 3)
    assert torch.allclose(out_soft[1], 2 / 3 * soft[1] + 1 / 3 * soft[3])
    assert torch.allclose(out_soft[5], soft[5])
    assert torch.allclose(out_soft.sum(dim=1), torch.ones(6))
    out[0].sum().backward()  # map 0's B1 and B2 come from maps 2 and 4: the gradient follows
    grad = maps.grad.sum(dim=(2, 3))
    assert torch.equal(grad[0], torch.tensor([9.0] * 3 + [0.0] * 6))
    assert torch.equal(grad[2], torch.tensor([0.0] * 3 + [9.0] * 3 + [0.0] * 3))
    assert torch.equal(grad[4], torch.tensor([0.0] * 6 + [9.0] * 3))


def test_cmci_without_matches_changes_nothing():
    maps = torch.randn(4, 6, 2, 2)
    soft = _soft(torch.tensor([0, 1, 2, 3]), 4)
    out, out_soft = cmci(maps, soft, torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, 1]))
    assert torch.equal(out, maps) and torch.equal(out_soft, soft)
