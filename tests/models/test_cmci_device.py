"""CMCI on a GPU's terms, checked on the CPU: L_dual's targets in float32 under autocast, the
maps' memory format kept, the matching read from host labels without touching the maps, and
DCINet handing it the batch's host labels (permuted as CMSI permuted the maps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcinet.models import DCINet
from dcinet.models.interaction import cmci


class Watched(torch.Tensor):
    """A tensor that records every conversion to a host value made of it or of what is computed
    from it (on CUDA each one waits for the GPU)."""

    copies: list[str] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in {"item", "tolist", "cpu", "numpy", "__bool__"}:
            cls.copies.append(func.__name__)
        return super().__torch_function__(func, types, args, kwargs or {})


N, C, K = 6, 7, 3
LABELS = torch.tensor([0, 1, 2, 0, 1, 0])
IDS = torch.tensor([0, 0, 0, 1, 1, 2])  # label 0: triple (0, 3, 5); label 1: pair (1, 4)


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(N, C, 3, 3, generator=g)
    soft = torch.softmax(torch.randn(N, K, generator=g), dim=1)
    return maps, soft


@pytest.mark.parametrize("mode", ["paper", "symmetric"])
def test_targets_are_float32_under_autocast_and_rows_sum_to_one(mode):
    maps, soft = _inputs()
    plain_maps, plain, _ = cmci(maps, soft, LABELS, IDS, mode)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, targets, _ = cmci(maps.bfloat16(), soft, LABELS, IDS, mode)
    assert targets.dtype == torch.float32 and mixed.dtype == torch.bfloat16
    assert torch.equal(targets, plain)  # autocast changes nothing in the targets
    assert torch.allclose(targets.sum(1), torch.ones(N), atol=1e-6)
    # map 0 (paper and symmetric) took C // 3 = 2 channels from each of 3 and 5
    shares = torch.tensor([3 / 7, 2 / 7, 2 / 7])
    assert torch.allclose(targets[0], shares @ soft[[0, 3, 5]], atol=1e-6)
    assert torch.equal(mixed.float(), plain_maps.bfloat16().float())


def test_channels_last_maps_stay_channels_last_with_the_same_values():
    maps, soft = _inputs()
    nhwc = maps.contiguous(memory_format=torch.channels_last)
    mixed, _, changed = cmci(nhwc, soft, LABELS, IDS)
    assert mixed.is_contiguous(memory_format=torch.channels_last)
    reference, _, _ = cmci(maps, soft, LABELS, IDS)
    assert reference.is_contiguous() and torch.equal(mixed, reference)
    blocks = [(0, 3), (3, 5), (5, 7)]  # B0, B1, B2 of 7 channels
    # the triple's first map takes B1 and B2 from 3 and 5; the pair (1, 4) swaps B1
    for i, sources in enumerate([(0, 3, 5), (1, 4, 1), (2, 2, 2), (3, 3, 3), (4, 1, 4), (5, 5, 5)]):
        for (lo, hi), source in zip(blocks, sources, strict=True):
            assert torch.equal(mixed[i, lo:hi], maps[source, lo:hi]), (i, lo)
    assert changed.tolist() == [True, True, False, False, True, False]


def test_gradients_flow_back_to_the_source_maps():
    maps, soft = _inputs()
    maps = maps.contiguous(memory_format=torch.channels_last).requires_grad_()
    mixed, _, _ = cmci(maps, soft, LABELS, IDS)
    (mixed * torch.arange(N, dtype=torch.float32)[:, None, None, None]).sum().backward()
    # the pair swapped B1 (channels 3-4): map 1's went to map 4 (weight 4) and map 4's to map 1;
    # their B0 stayed (weights 1 and 4); map 0's B1 and B2 came from 3 and 5, whose own stay
    assert torch.all(maps.grad[1, 3:5] == 4) and torch.all(maps.grad[4, 3:5] == 1)
    assert torch.all(maps.grad[1, :3] == 1) and torch.all(maps.grad[4, :3] == 4)
    assert torch.all(maps.grad[0, 3:] == 0) and torch.all(maps.grad[3, 3:5] == 3 + 0)


def test_the_matching_reads_host_labels_and_never_the_maps():
    maps, soft = _inputs()
    Watched.copies = []
    cmci(maps.as_subclass(Watched), soft.as_subclass(Watched), LABELS, IDS)
    assert Watched.copies == []


def test_dcinet_matches_on_the_host_labels_permuted_like_the_maps():
    """The forward pass with host labels equals the one that copies the permuted device labels
    back (dual_loss without y_host): same L_dual, same CMCI counts."""
    torch.manual_seed(0)
    model = DCINet(3, ["image", "audio", "text"], backbone="resnet10t", layer=3,
                   interaction="cmsi+cmci", vocab_size=12, text_len=10, img_size=32,
                   text_channels=4)
    g = torch.Generator().manual_seed(1)
    inputs = {m: torch.randn(6, 3, 32, 32, generator=g) for m in ("image", "audio")}
    inputs["text"] = torch.randint(0, 12, (6, 10), generator=g)
    labels = {m: torch.tensor([0, 0, 1, 1, 2, 2]) for m in inputs}
    present, x, y, sizes = model.concat_batch(inputs, labels)
    maps = model.ccrn.forward_features(x)
    results = []
    for y_host in (torch.cat([labels[m] for m in present]), None):
        torch.manual_seed(5)
        np.random.seed(5)
        results.append(model.dual_loss(maps, y, sizes, present, y_host))
    (with_host, fired), (copied_back, fired_back) = results
    assert torch.equal(with_host, copied_back) and fired == fired_back
    assert sum(c["changed"] for c in fired["cmci"].values()) > 0
