"""MultiModalBatchSampler: coverage, per-step composition, epochs, determinism, DDP, class-aware."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcinet.data.records import Sample
from dcinet.data.sampler import MultiModalBatchSampler, TrainKey
from dcinet.errors import DcinetError


def make_samples(sizes: dict[str, int], classes: int = 5) -> list[Sample]:
    """Interleaved modalities (so dataset order is not modality order); label = i % classes."""
    out = []
    for i in range(max(sizes.values())):
        for modality, n in sizes.items():
            if i < n:
                out.append(Sample(modality, "train", i % classes, f"c{i % classes}", Path(f"{modality}/{i}")))
    return out


def epoch_steps(sampler: MultiModalBatchSampler, epoch: int) -> list[list[int]]:
    """The dataset indices of ``list(sampler)`` after ``set_epoch(epoch)``; checks on the way that
    every key carries that epoch and the seed, and that they are ``sampler.steps(epoch)``."""
    sampler.set_epoch(epoch)
    keys = list(sampler)
    assert all(isinstance(k, TrainKey) and (k.epoch, k.seed) == (epoch, sampler.seed)
               for step in keys for k in step)
    steps = [[k.index for k in step] for step in keys]
    assert steps == sampler.steps(epoch)
    return steps


def blocks(step: list[int], n_modalities: int) -> list[list[int]]:
    b = len(step) // n_modalities
    return [step[j * b : (j + 1) * b] for j in range(n_modalities)]


@settings(max_examples=40, deadline=None)
@given(sizes=st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 40)), b=st.integers(1, 9),
       epoch=st.integers(0, 5))
def test_random_mode_properties(sizes, b, epoch):
    samples = make_samples(dict(zip(("text", "image", "audio"), sizes, strict=True)))
    sampler = MultiModalBatchSampler(samples, b, seed=3)
    steps = epoch_steps(sampler, epoch)
    assert len(steps) == len(sampler) == math.ceil(max(sizes) / b)
    assert sampler.modalities == ["image", "audio", "text"]  # canonical order
    seen = {m: Counter() for m in sampler.modalities}
    for step in steps:
        assert len(step) == 3 * b
        for modality, block in zip(sampler.modalities, blocks(step, 3), strict=True):
            assert all(samples[i].modality == modality for i in block)
            seen[modality].update(block)
    for modality, n in zip(("text", "image", "audio"), sizes, strict=True):
        assert len(seen[modality]) == n  # every sample at least once
    largest = max(sizes)
    for modality in sampler.modalities:
        counts = seen[modality]
        if len(counts) == largest:
            # exactly once, apart from the repeats that fill the last step
            assert sum(c - 1 for c in counts.values()) == len(steps) * b - largest


def test_largest_modality_exactly_once_when_divisible():
    samples = make_samples({"image": 24, "audio": 10, "text": 7})
    steps = epoch_steps(MultiModalBatchSampler(samples, 8, seed=1), 0)
    image = Counter(i for step in steps for i in blocks(step, 3)[0])
    assert len(steps) == 3 and set(image.values()) == {1} and len(image) == 24


def test_epochs_reshuffle_and_seed_determines_order():
    samples = make_samples({"image": 30, "audio": 20, "text": 12})
    a, b = MultiModalBatchSampler(samples, 4, seed=7), MultiModalBatchSampler(samples, 4, seed=7)
    assert epoch_steps(a, 0) == epoch_steps(b, 0)
    assert epoch_steps(a, 1) == epoch_steps(b, 1)
    assert epoch_steps(a, 0) != epoch_steps(a, 1)
    assert epoch_steps(a, 0) != epoch_steps(MultiModalBatchSampler(samples, 4, seed=8), 0)


@pytest.mark.parametrize("class_aware", [False, True])
def test_an_iteration_keeps_the_epoch_it_started_with(class_aware):
    samples = make_samples({"image": 12, "text": 12}, classes=4)
    sampler = MultiModalBatchSampler(samples, 4, seed=4, class_aware=class_aware)
    sampler.set_epoch(3)
    started = iter(sampler)
    sampler.set_epoch(4)  # e.g. the next epoch set while workers still prefetch this one
    keys = list(started)
    assert [[k.index for k in step] for step in keys] == sampler.steps(3) != sampler.steps(4)
    assert {k.epoch for step in keys for k in step} == {3}


@pytest.mark.parametrize("class_aware", [False, True])
def test_ddp_ranks_get_equal_steps_and_disjoint_samples(class_aware):
    samples = make_samples({"image": 48, "audio": 48, "text": 48}, classes=6)
    world = 3
    samplers = [MultiModalBatchSampler(samples, 4, seed=2, class_aware=class_aware, rank=r, world_size=world)
                for r in range(world)]
    per_rank = [epoch_steps(s, 5) for s in samplers]
    assert {len(steps) for steps in per_rank} == {len(samplers[0])} == {4}
    single = epoch_steps(MultiModalBatchSampler(samples, 4, seed=2, class_aware=class_aware), 5)
    interleaved = [per_rank[i % world][i // world] for i in range(len(single))]
    assert interleaved == single  # ranks split one global plan step by step
    if not class_aware:
        used = [{i for step in steps for i in step} for steps in per_rank]
        assert all(not (used[r] & used[q]) for r in range(world) for q in range(r + 1, world))
        assert set().union(*used) == set(range(len(samples)))


def test_ddp_step_count_rounds_up():
    samples = make_samples({"image": 50, "text": 9})
    samplers = [MultiModalBatchSampler(samples, 8, rank=r, world_size=4) for r in range(4)]
    assert [len(list(s)) for s in samplers] == [2, 2, 2, 2]  # ceil(ceil(50 / 8) / 4)


@settings(max_examples=25, deadline=None)
@given(k=st.sampled_from([1, 2, 4]), p=st.integers(1, 4), classes=st.integers(4, 9), epoch=st.integers(0, 3))
def test_class_aware_pairs_same_labels_across_modalities(k, p, classes, epoch):
    samples = make_samples({"image": 37, "audio": 23, "text": 15}, classes=classes)
    b = p * k
    sampler = MultiModalBatchSampler(samples, b, seed=5, class_aware=True, samples_per_class=k)
    steps = epoch_steps(sampler, epoch)
    assert len(steps) == math.ceil(37 / b)
    for step in steps:
        label_rows = [[samples[i].label for i in block] for block in blocks(step, 3)]
        assert label_rows[0] == label_rows[1] == label_rows[2]  # position j: same label everywhere
        per_class = Counter(label_rows[0])
        assert len(per_class) == p and set(per_class.values()) == {k}
        for modality, block in zip(sampler.modalities, blocks(step, 3), strict=True):
            assert all(samples[i].modality == modality for i in block)


def test_class_aware_cycles_through_each_class_and_skips_partial_classes():
    samples = make_samples({"image": 40, "text": 40}, classes=4)
    samples += [Sample("image", "train", 9, "only_image", Path("image/extra"))]
    sampler = MultiModalBatchSampler(samples, 4, seed=0, class_aware=True, samples_per_class=2)
    steps = epoch_steps(sampler, 0)
    used = Counter(i for step in steps for i in step)
    assert all(samples[i].label != 9 for i in used)  # class 9 is missing from text
    text_counts = Counter(samples[i].label for step in steps for i in blocks(step, 2)[1])
    for label, n in text_counts.items():  # within a class, samples are used before any repeats
        members = Counter({i: c for i, c in used.items() if samples[i].modality == "text" and samples[i].label == label})
        assert max(members.values()) - min(members.values()) <= 1
        assert sum(members.values()) == n


def test_class_aware_needs_enough_shared_classes():
    samples = make_samples({"image": 10, "text": 10}, classes=2)
    with pytest.raises(DcinetError, match="needs 4 classes"):
        MultiModalBatchSampler(samples, 8, class_aware=True, samples_per_class=2)
    with pytest.raises(ValueError, match="multiple"):
        MultiModalBatchSampler(samples, 5, class_aware=True, samples_per_class=2)
    with pytest.raises(ValueError, match="rank"):
        MultiModalBatchSampler(samples, 4, rank=2, world_size=2)
