"""Batch sampler: every training step holds exactly ``b`` samples of each modality."""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from torch.utils.data import Sampler

from dcinet.data.records import MODALITIES, Sample
from dcinet.errors import DcinetError

_CLASS_STREAM = len(MODALITIES)  # rng stream id of the class order (modality streams use 0..3)


class TrainKey(NamedTuple):
    """What a training step asks the dataset for: the item at ``index``, drawn in ``epoch`` of a
    run seeded with ``seed``, as draw number ``draw`` (its position in the epoch's global plan,
    ``step * items_per_step + position``: unique in an epoch across all ranks, even when the same
    index is drawn again; the training augmentation seeds each draw by it). The dataset takes
    every per-epoch choice (a video clip's frame, a recording's window, an augmentation) from this
    key, never from shared state, so DataLoader workers that outlive an epoch (persistent
    workers) still make the choices of the epoch the key was drawn in."""

    index: int
    epoch: int
    seed: int
    draw: int


class MultiModalBatchSampler(Sampler[list[TrainKey]]):
    """Yields lists of :class:`TrainKey` (dataset index, epoch, seed, draw), ``b`` per modality per step.

    :meth:`steps` gives the same plan as bare dataset indices (positions in ``samples``).
    A step's list is modality-major in canonical order (:data:`~dcinet.data.records.MODALITIES`):
    ``b`` indices of the first modality, then ``b`` of the next, ... ; this is the layout
    :func:`~dcinet.data.dataset.collate_by_modality` expects.

    Steps per epoch: ``S = ceil(max_m N_m / b)`` in total; with DDP each of the ``world_size``
    ranks takes every ``world_size``-th step of the same global plan (``S`` rounded up to a
    multiple of ``world_size``), so ranks get equally many steps (``len(self)``) and different
    samples. Everything is a function of ``(seed, epoch, rank, world_size)``.

    Random mode (``class_aware=False``): each modality walks through its own random permutation,
    reshuffled every epoch. A modality smaller than the largest continues into a fresh
    permutation instead of ending the epoch early, so every sample of every modality is seen at
    least once per epoch and the largest modality's samples exactly once (plus, when ``N`` is not
    a multiple of ``b * world_size``, the few repeats that fill the last step).

    Class-aware mode (``class_aware=True``): each step draws ``P = b / K`` distinct classes that
    are present in every modality (walking through a per-epoch permutation of those classes) and
    ``K = samples_per_class`` samples of each of them in *every* modality, cycling through each
    class's samples in a reshuffled order. Position ``j`` of every modality's block then has the
    same label, so same-label samples of different modalities meet in each mini-batch (CMCI needs
    them). Coverage of every sample per epoch is *not* guaranteed in this mode.
    """

    def __init__(self, samples: Sequence[Sample], batch_per_modality: int, seed: int = 0,
                 class_aware: bool = False, samples_per_class: int = 2, rank: int = 0,
                 world_size: int = 1) -> None:
        if batch_per_modality <= 0:
            raise ValueError(f"batch_per_modality must be positive, got {batch_per_modality}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        if not samples:
            raise DcinetError("no samples to sample batches from")
        self.b = batch_per_modality
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.class_aware = class_aware
        self.k = samples_per_class
        self.epoch = 0
        self.unused_labels: list[int] = []
        """Class-aware mode: the labels of the classes missing from some modality (never drawn)."""
        by_modality: dict[str, list[int]] = defaultdict(list)
        for i, sample in enumerate(samples):
            by_modality[sample.modality].append(i)
        self.modalities = [m for m in MODALITIES if m in by_modality]
        self._indices = {m: np.asarray(by_modality[m], dtype=np.int64) for m in self.modalities}
        global_steps = math.ceil(max(len(v) for v in self._indices.values()) / self.b)
        self._steps = math.ceil(global_steps / world_size)
        if class_aware:
            self._init_class_aware(samples)

    def _init_class_aware(self, samples: Sequence[Sample]) -> None:
        if self.k <= 0 or self.b % self.k:
            raise ValueError(f"batch_per_modality ({self.b}) must be a positive multiple of "
                             f"samples_per_class ({self.k})")
        self._pools: dict[str, dict[int, np.ndarray]] = {}
        for m in self.modalities:
            pools: dict[int, list[int]] = defaultdict(list)
            for i in self._indices[m]:
                pools[samples[i].label].append(int(i))
            self._pools[m] = {c: np.asarray(v, dtype=np.int64) for c, v in pools.items()}
        shared = set.intersection(*(set(p) for p in self._pools.values()))
        self._classes = np.asarray(sorted(shared), dtype=np.int64)
        self.unused_labels = sorted(set.union(*(set(p) for p in self._pools.values())) - shared)
        per_step = self.b // self.k
        if len(self._classes) < per_step:
            raise DcinetError(f"class-aware sampler needs {per_step} classes present in every modality "
                              f"({', '.join(self.modalities)}) but only {len(self._classes)} are; lower "
                              "batch_per_modality, raise samples_per_class or use sampler=random")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order :meth:`__iter__` yields (call before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Steps per epoch on this rank."""
        return self._steps

    def __iter__(self) -> Iterator[list[TrainKey]]:
        """This rank's steps of the epoch set when ``iter`` is called, as :class:`TrainKey` lists."""
        epoch = self.epoch  # read now: a later set_epoch does not change an iteration under way
        per_step = len(self.modalities) * self.b
        steps = self.steps(epoch)
        return iter([[TrainKey(i, epoch, self.seed, (self.rank + n * self.world_size) * per_step + j)
                      for j, i in enumerate(step)] for n, step in enumerate(steps)])

    def steps(self, epoch: int) -> list[list[int]]:
        """This rank's steps of ``epoch``: ``len(self)`` lists of ``len(modalities) * b`` dataset
        indices, modality-major. A pure function of ``(seed, epoch, rank, world_size)``."""
        plan = self._class_aware_plan(epoch) if self.class_aware else self._random_plan(epoch)
        # plan: (global steps, modalities, b) -> this rank's steps, flattened modality-major
        return [step.reshape(-1).tolist() for step in plan[self.rank :: self.world_size]]

    def _rng(self, epoch: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, stream])

    def _random_plan(self, epoch: int) -> np.ndarray:
        total = self._steps * self.world_size
        blocks = []
        for m in self.modalities:
            indices, rng = self._indices[m], self._rng(epoch, MODALITIES.index(m))
            need = total * self.b
            stream = np.concatenate([rng.permutation(indices) for _ in range(math.ceil(need / len(indices)))])
            blocks.append(stream[:need].reshape(total, self.b))
        return np.stack(blocks, axis=1)

    def _class_aware_plan(self, epoch: int) -> np.ndarray:
        total, per_step = self._steps * self.world_size, self.b // self.k
        class_rng = self._rng(epoch, _CLASS_STREAM)
        pending: deque[int] = deque()
        cyclers = {m: _Cycler(self._pools[m], self._rng(epoch, MODALITIES.index(m))) for m in self.modalities}
        plan = np.empty((total, len(self.modalities), self.b), dtype=np.int64)
        for step in range(total):
            chosen: list[int] = []
            deferred: list[int] = []
            while len(chosen) < per_step:
                if not pending:
                    pending.extend(class_rng.permutation(self._classes).tolist())
                c = pending.popleft()
                (deferred if c in chosen else chosen).append(c)
            pending.extendleft(reversed(deferred))
            for j, m in enumerate(self.modalities):
                plan[step, j] = np.concatenate([cyclers[m].take(c, self.k) for c in chosen])
        return plan


class _Cycler:
    """Hands out each class's samples in a reshuffled cycle (a fresh permutation per pass)."""

    def __init__(self, pools: dict[int, np.ndarray], rng: np.random.Generator) -> None:
        self.pools, self.rng = pools, rng
        self.queues: dict[int, deque[int]] = {}

    def take(self, label: int, count: int) -> np.ndarray:
        """The next ``count`` dataset indices of class ``label``, shape ``(count,)`` int64."""
        queue = self.queues.setdefault(label, deque())
        out = []
        for _ in range(count):
            if not queue:
                queue.extend(self.rng.permutation(self.pools[label]).tolist())
            out.append(queue.popleft())
        return np.asarray(out, dtype=np.int64)
