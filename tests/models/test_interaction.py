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
    cross_partners,
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
    mixed, soft, perm, lam, partner = cmsi(maps, labels, k)
    assert torch.equal(maps, before), "input modified in place"
    assert sorted(perm.tolist()) == list(range(n)) and perm.device.type == "cpu"
    assert torch.equal(partner, perm.flip(0))
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
    assert lam == pytest.approx(uncovered)


@pytest.mark.parametrize("h,w", [(2, 5), (5, 2), (3, 7), (4, 4)])
def test_cmsi_non_square_and_small_maps(h, w):
    _seed(1)
    maps = torch.randn(4, 3, h, w)
    mixed, soft, perm, _, _ = cmsi(maps, torch.tensor([0, 1, 2, 3]), 4)
    box = _box(mixed, maps[perm])
    for side, extent in ((h, box.any(dim=1).sum().item()), (w, box.any(dim=0).sum().item())):
        if int(0.6 * side) <= int(0.5 * side):  # timm's range is empty: exactly int(0.5 * side)
            assert extent == int(0.5 * side)
        else:  # may widen up to the side when the other side's range was empty
            assert int(0.5 * side) <= extent < side
    uncovered = 1.0 - box.float().mean().item()
    assert torch.allclose(soft.max(dim=1).values, torch.full((4,), max(uncovered, 1 - uncovered)))


def test_feasible_minmax_raises_a_lower_end_below_one_pixel():
    assert feasible_minmax(14, 14, (0.3, 0.8)) == (0.3, 0.8)  # 4..10 px: unchanged
    for side, minmax in ((3, (0.3, 0.8)), (2, (0.3, 0.8)), (5, (0.1, 0.15)), (2, (0.2, 0.3))):
        lo, hi = feasible_minmax(side, side, minmax)
        assert int(lo * side) == 1 and int(hi * side) > int(lo * side), (side, minmax)
        assert lo == pytest.approx(1 / side, abs=1e-12)
    _seed(2)
    for _ in range(5):  # on a 3 x 3 map [0.3, 0.8] gives boxes of 1 or 2 px a side, never 0
        mixed, _, perm, lam, _ = cmsi(torch.randn(4, 2, 3, 3), torch.arange(4), 4,
                                   MixupSettings(cutmix_minmax=(0.3, 0.8)))
        assert lam in (1 - 1 / 9, 1 - 2 / 9, 1 - 4 / 9)


def _lams(side: int, settings: MixupSettings, steps: int = 40) -> list[float]:
    """CMSI's lambda over ``steps`` steps on an ``side x side`` map (from the uncovered area,
    checked against the returned one)."""
    _seed(7)
    lams = []
    for _ in range(steps):
        maps = torch.randn(6, 2, side, side)
        mixed, soft, perm, lam, _ = cmsi(maps, torch.arange(6), 6, settings)
        box = _box(mixed, maps[perm])
        assert lam == pytest.approx(1.0 - box.float().mean().item())
        assert soft[0, perm[0]].item() == pytest.approx(lam, abs=1e-6)
        lams.append(lam)
    return lams


def test_cmsi_lambda_is_constant_with_the_paper_box_on_14x14_maps():
    assert set(_lams(14, MixupSettings())) == {0.75}  # always a 7 x 7 box


@pytest.mark.parametrize("settings", [MixupSettings(box="beta"),
                                      MixupSettings(cutmix_minmax=(0.3, 0.8))])
def test_cmsi_lambda_varies_with_a_beta_or_a_wider_box_on_14x14_maps(settings):
    lams = _lams(14, settings)
    assert len(set(lams)) > 5
    assert all(0.0 <= lam <= 1.0 for lam in lams)
    if settings.box == "beta":  # Beta(1, 1): lambda uniform, box side 14 sqrt(1 - lambda)
        assert min(lams) < 0.4 and max(lams) > 0.8
    else:  # sides 4..10 px
        assert min(lams) >= 1 - 100 / 196 and max(lams) <= 1 - 16 / 196


def test_cmsi_beta_box_follows_timm_cutmix_and_reports_unmixed_steps():
    # tiny maps with lambda near 1 give empty boxes: lambda is then exactly 1, nothing changed
    lams = _lams(2, MixupSettings(box="beta"), steps=60)
    assert set(lams) <= {1.0, 0.75, 0.5, 0.0} and 1.0 in lams and 0.75 in lams
    _seed(1)
    maps = torch.randn(4, 2, 5, 5)
    _, _, perm, lam, _ = cmsi(maps, torch.arange(4), 4, MixupSettings(prob=0.0, box="beta"))
    assert lam == 1.0  # mix_prob 0: never mixed


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
    assert all(torch.equal(a, b) for a, b in zip(first[:3], second[:3], strict=True))
    assert first[3] == second[3] and torch.equal(first[4], second[4])


def test_cmsi_settings_reach_timm():
    _seed(4)
    maps, labels = torch.randn(4, 2, 5, 5), torch.tensor([0, 1, 2, 3])
    smooth = MixupSettings(label_smoothing=0.1)
    _, soft, _, _, _ = cmsi(maps, labels, 4, smooth)
    assert torch.allclose(soft.sum(dim=1), torch.ones(4))
    assert soft.min().item() == pytest.approx(0.1 / 4)
    blend = MixupSettings(switch_prob=0.0)  # mixup instead of cutmix: a global blend
    mixed, soft, perm, lam, _ = cmsi(maps, labels, 4, blend)
    shuffled = maps[perm]
    assert soft[0, labels[perm][0]].item() == pytest.approx(lam)
    assert torch.allclose(mixed[0], lam * shuffled[0] + (1 - lam) * shuffled[3], atol=1e-6)


def test_cmsi_backward_through_inplace_relu():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    maps = F.relu(conv(torch.randn(4, 3, 6, 6)), inplace=True)
    _seed(5)
    mixed, soft, _, _, _ = cmsi(maps, torch.tensor([0, 1, 0, 1]), 2)
    (mixed.sum() + soft.sum()).backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


CROSS = MixupSettings(pairs="cross")


@pytest.mark.parametrize("sizes", [[4, 4, 4], [8, 8, 8], [3, 5], [1, 6], [2, 2, 2, 2], [5, 1, 1]])
def test_cross_partners_are_always_of_another_modality(sizes):
    ids = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    for seed in range(20):
        torch.manual_seed(seed)
        partner = cross_partners(ids)
        assert partner.dtype == torch.int64 and partner.shape == ids.shape
        assert bool((ids[partner] != ids).all())


def test_cross_partners_draw_uniformly_among_the_other_modalities():
    # map 0 (image) among 2 audio + 2 text maps: each of the 4 about 1/4 of the time
    ids = torch.tensor([0, 1, 1, 2, 2])
    torch.manual_seed(0)
    picks = torch.stack([cross_partners(ids)[0] for _ in range(4000)])
    counts = torch.bincount(picks, minlength=5)
    assert counts[0] == 0
    assert ((counts[1:] - 1000).abs() < 120).all(), counts


def test_cross_partners_with_one_modality_pick_another_map():
    ids = torch.zeros(6, dtype=torch.int64)
    for seed in range(20):
        torch.manual_seed(seed)
        partner = cross_partners(ids)
        assert bool((partner != torch.arange(6)).all()) and partner.max() < 6 and partner.min() >= 0


def test_cmsi_cross_pastes_a_box_of_each_maps_partner():
    _seed(7)
    ids = torch.arange(3).repeat_interleave(3)  # N = 9: cross needs no even batch
    maps, labels = torch.randn(9, 4, 6, 6), torch.arange(9)
    mixed, soft, perm, lam, partner = cmsi(maps, labels, 9, CROSS, ids)
    assert torch.equal(perm, torch.arange(9))
    assert bool((ids[partner] != ids).all())
    box = _box(mixed, maps)
    assert 0 < box.sum() < 36
    assert torch.equal(mixed[:, :, box], maps[partner][:, :, box])
    assert torch.equal(mixed[:, :, ~box], maps[:, :, ~box])
    assert lam == pytest.approx(1.0 - box.float().mean().item())
    assert torch.allclose(soft[torch.arange(9), labels], torch.full((9,), lam))
    assert torch.allclose(soft[torch.arange(9), labels[partner]], torch.full((9,), 1 - lam))
    assert torch.allclose(soft.sum(dim=1), torch.ones(9))


def test_cmsi_cross_blend_and_reproducibility_from_the_global_rngs():
    ids = torch.tensor([0, 0, 1, 1, 2, 2])
    maps, labels = torch.randn(6, 3, 5, 5), torch.tensor([0, 1, 0, 1, 2, 2])
    blend = MixupSettings(pairs="cross", switch_prob=0.0)
    _seed(8)
    first = cmsi(maps, labels, 3, blend, ids)
    _seed(8)
    second = cmsi(maps, labels, 3, blend, ids)
    assert all(torch.equal(a, b) for a, b in zip(first[:3], second[:3], strict=True))
    assert first.lam == second.lam and torch.equal(first.partner, second.partner)
    expected = first.lam * maps + (1 - first.lam) * maps[first.partner]
    assert torch.allclose(first.mixed, expected, atol=1e-6)


def test_cmsi_cross_keeps_the_graph_and_needs_modalities():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    maps = F.relu(conv(torch.randn(4, 3, 6, 6)), inplace=True)
    _seed(9)
    mixed, soft, _, _, _ = cmsi(maps, torch.tensor([0, 1, 0, 1]), 2, CROSS, torch.tensor([0, 0, 1, 1]))
    (mixed.sum() + soft.sum()).backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    with pytest.raises(DcinetError, match="modality of each map"):
        cmsi(torch.randn(4, 2, 4, 4), torch.arange(4), 4, CROSS)
    with pytest.raises(DcinetError, match="cmsi_pairs"):
        cmsi(torch.randn(4, 2, 4, 4), torch.arange(4), 4, MixupSettings(pairs="nearest"))


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
    out, out_soft, changed = cmci(maps, soft, labels, modality)
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
    assert changed.tolist() == [i in partner for i in range(8)]


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
    out, out_soft, changed = cmci(maps, soft, labels, modality)
    expected = maps.clone()
    expected[1, 4:7], expected[1, 7:10] = maps[5, 4:7], maps[0, 7:10]
    expected[3, 4:7], expected[4, 4:7] = maps[4, 4:7], maps[3, 4:7]
    expected[2, 4:7], expected[8, 4:7] = maps[8, 4:7], maps[2, 4:7]
    assert torch.equal(out, expected)
    assert changed.nonzero().flatten().tolist() == [1, 2, 3, 4, 8]  # not 5, 0: triple members
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
    out, out_soft, changed = cmci(maps, soft, labels, modality)
    again = cmci(maps, soft, labels, modality)
    assert torch.equal(out, again[0]) and torch.equal(out_soft, again[1])
    assert changed.tolist() == [True, True, False, True, False, False]
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
    out, out_soft, changed = cmci(maps, soft, torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, 1]))
    assert torch.equal(out, maps) and torch.equal(out_soft, soft) and not changed.any()


def test_cmci_symmetric_triple_every_member_receives_from_the_other_two():
    # label 0: image 0, audio 1, text 2 -> triple (0, 1, 2); label 1: image 3, text 4 -> pair
    labels = torch.tensor([0, 0, 0, 1, 1])
    modality = torch.tensor([0, 1, 2, 0, 2])
    assert cmci_sources(labels, modality, "symmetric").tolist() == [
        [0, 1, 2, 3, 4], [1, 2, 0, 4, 3], [2, 0, 1, 3, 4]]
    maps = _distinct_maps(5, 10)  # B0 = 0-3, B1 = 4-6, B2 = 7-9
    soft = _soft(torch.arange(5), 5)
    out, out_soft, changed = cmci(maps, soft, labels, modality, mode="symmetric")
    expected = maps.clone()
    for r, (b1, b2) in enumerate(((1, 2), (2, 0), (0, 1))):
        expected[r, 4:7], expected[r, 7:10] = maps[b1, 4:7], maps[b2, 7:10]
    expected[3, 4:7], expected[4, 4:7] = maps[4, 4:7], maps[3, 4:7]
    assert torch.equal(out, expected)
    assert changed.tolist() == [True] * 5
    target = torch.zeros(5, 5)
    for r, (b1, b2) in enumerate(((1, 2), (2, 0), (0, 1))):
        target[r, r], target[r, b1], target[r, b2] = 0.4, 0.3, 0.3
    target[3, 3], target[3, 4], target[4, 4], target[4, 3] = 0.7, 0.3, 0.7, 0.3
    assert torch.allclose(out_soft, target)
    # the paper's mode on the same batch: only the triple's first map (the image) receives
    _, paper_soft, paper_changed = cmci(maps, soft, labels, modality)
    assert paper_changed.tolist() == [True, False, False, True, True]
    assert torch.allclose(paper_soft[1:3], soft[1:3])


def test_cmci_symmetric_keeps_the_paper_matching():
    # the interleaved three-modality batch above: same triples and pairs, more receivers
    modality = torch.tensor([2, 0, 1, 0, 2, 1, 0, 1, 2])
    labels = torch.tensor([0, 0, 1, 0, 0, 0, 0, 1, 1])
    paper, symmetric = cmci_sources(labels, modality), cmci_sources(labels, modality, "symmetric")
    differs = (paper != symmetric).any(dim=0).nonzero().flatten().tolist()
    assert differs == [0, 5]  # the triple (1, 5, 0): its second and third members
    assert symmetric[:, 5].tolist() == [5, 0, 1] and symmetric[:, 0].tolist() == [0, 1, 5]
    with pytest.raises(DcinetError, match="cmci_mode"):
        cmci_sources(labels, modality, "both")


def test_cmci_with_fewer_than_three_channels_changes_no_map():
    maps = torch.randn(2, 2, 2, 2)  # blocks B1 and B2 are empty
    out, _, changed = cmci(maps, _soft(torch.tensor([0, 0]), 1), torch.tensor([0, 0]),
                           torch.tensor([0, 1]))
    assert torch.equal(out, maps) and not changed.any()
