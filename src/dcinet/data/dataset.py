"""Training batches: a map-style dataset over samples, modality-wise collation, the train loader."""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dcinet.config import Config
from dcinet.data.augment import TrainAugment
from dcinet.data.check import check_collection
from dcinet.data.decode import SampleDecoder
from dcinet.data.problems import Problem, format_problems
from dcinet.data.records import MODALITIES, Collection, Sample
from dcinet.data.sampler import MultiModalBatchSampler, TrainKey
from dcinet.data.text import normalize_text, read_text
from dcinet.distributed import DistInfo
from dcinet.errors import DcinetError

Item = tuple[torch.Tensor, int, int]
"""``(tensor, label, index)``: the loaded sample (one view, or all views ``(V, ...)``), its label,
its position in the dataset."""


class SampleDataset(Dataset):
    """Map-style dataset: ``dataset[key] = (loader.load(samples[i]), samples[i].label, i)``.

    ``key`` is an index ``i`` (evaluation) or a :class:`~dcinet.data.sampler.TrainKey`
    ``(i, epoch, seed, draw)`` (training, as :class:`MultiModalBatchSampler` yields them). A video
    sample yields one frame, an audio sample cut into windows one window
    (:meth:`SampleDecoder.multi_view`): for a training key the view is drawn from
    ``(seed, epoch, i)``, so it changes every epoch and is the same on every run and in every
    DataLoader worker, persistent or not (the epoch comes with the key, not from a copy of the
    sampler); for a bare index it is the middle view. With ``views=True`` (test time) an item
    holds every view instead: ``loader.load_views(samples[i])``, ``(V, ...)``; batch such items
    with ``collate_fn=list``.

    With an ``augment`` (training), a training key's sample is augmented with the stream
    ``(seed, epoch, draw)`` (:class:`~dcinet.data.augment.TrainAugment`); ``dataset[i]`` stays
    the plain decoded sample.

    After :meth:`keep_decoded` the other samples come from memory: the same tensors, decoded once
    (texts that are augmented: their raw text, encoded after the augmentation).
    """

    def __init__(self, samples: Sequence[Sample], loader: SampleDecoder, views: bool = False,
                 augment: TrainAugment | None = None) -> None:
        self.samples = list(samples)
        self.loader = loader
        self.views = views
        self.augment = augment
        self.decoded: dict[int, torch.Tensor | str] = {}

    def keep_decoded(self, budget_mib: float) -> bool:
        """Decode every sample except those with several views (videos, windowed audio: their
        training view changes every epoch) now and keep the tensors, if all of them fit in
        ``budget_mib`` MiB; otherwise keep nothing.

        DataLoader workers started afterwards share the tensors (fork) or get a copy (spawn), so
        the files are decoded once per run instead of once per epoch. Returns whether it kept them.
        """
        if self.views:
            return False
        kept = [i for i, s in enumerate(self.samples) if not self.loader.multi_view(s.modality)]
        size = sum(self.loader.tensor_bytes(self.samples[i].modality) for i in kept)
        if not kept or size > budget_mib * 2**20:
            return False
        self.decoded = {i: self._decode(self.samples[i], None) for i in kept}
        return True

    def _decode(self, sample: Sample, view_key: tuple[int, ...] | None) -> torch.Tensor | str:
        """The sample before augmentation: its tensor, or the raw text of a text it augments."""
        if sample.modality == "text" and self.augment is not None and self.augment.changes("text"):
            return self.loader.read_text(sample)
        return self.loader.load(sample, view_key=view_key)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | TrainKey) -> Item:
        index = key.index if isinstance(key, TrainKey) else key
        sample = self.samples[index]
        if self.views:
            return self.loader.load_views(sample), sample.label, index
        x = self.decoded.get(index)
        if x is None:
            view_key = None
            if isinstance(key, TrainKey) and self.loader.multi_view(sample.modality):
                view_key = (key.seed, key.epoch, index)
            x = self._decode(sample, view_key)
        if isinstance(key, TrainKey) and self.augment is not None:
            x = self.augment(x, sample.modality, (key.seed, key.epoch, key.draw))
        if isinstance(x, str):
            x = self.loader.encode_text(x)
        return x, sample.label, index


def collate_by_modality(items: Sequence[Item], modalities: Sequence[str]) -> dict[str, dict[str, torch.Tensor]]:
    """Split a modality-major list of items (as :class:`MultiModalBatchSampler` yields) per modality.

    Args:
        items: ``len(modalities) * b`` items, the first ``b`` of ``modalities[0]``, and so on.
        modalities: the modalities of the blocks, in that order.

    Returns:
        ``{"inputs": {m: x}, "labels": {m: y}, "index": {m: i}}`` with keys in canonical order;
        ``x`` is float32 ``(b, 3, H, W)`` for image / audio / video and int64 ``(b, L)`` for text, ``y`` and
        ``i`` are int64 ``(b,)``.
    """
    if not modalities or len(items) % len(modalities):
        raise ValueError(f"{len(items)} items cannot be split into {len(modalities)} equal modality blocks")
    b = len(items) // len(modalities)
    blocks = {m: items[j * b : (j + 1) * b] for j, m in enumerate(modalities)}
    out: dict[str, dict[str, torch.Tensor]] = {"inputs": {}, "labels": {}, "index": {}}
    for m in sorted(blocks, key=MODALITIES.index):
        block = blocks[m]
        x = torch.stack([item[0] for item in block])
        expected = (torch.int64, 2) if m == "text" else (torch.float32, 4)
        if (x.dtype, x.dim()) != expected:
            raise ValueError(f"{m} block has dtype {x.dtype} and {x.dim()} dims, expected {expected}")
        out["inputs"][m] = x
        out["labels"][m] = torch.tensor([item[1] for item in block], dtype=torch.int64)
        out["index"][m] = torch.tensor([item[2] for item in block], dtype=torch.int64)
    return out


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and ``random`` in a DataLoader worker from its (generator-derived) torch seed.

    Workers are seeded once, when they start (they persist across epochs). No training choice reads
    these streams: per-epoch choices come from each item's :class:`TrainKey`, so a resumed run,
    whose workers start at a later epoch, loads exactly what an uninterrupted one does.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def train_modalities(collection: Collection, cfg: Config) -> list[str]:
    """``cfg.modalities`` in canonical order, or every modality the collection has.

    Raises:
        DcinetError: for a modality the collection lacks or the loader cannot load.
    """
    if cfg.modalities is None:
        return list(collection.modalities)
    for m in cfg.modalities:
        if m not in MODALITIES:
            raise DcinetError(f"config modalities: {m!r} cannot be loaded for training "
                              f"(supported: {', '.join(MODALITIES)})")
        if m not in collection.modalities:
            raise DcinetError(f"config modalities: the dataset has no {m!r} samples "
                              f"(it has {', '.join(collection.modalities)})")
    return [m for m in MODALITIES if m in cfg.modalities]


def build_train_loader(collection: Collection, cfg: Config, split: str = "train", rank: int = 0,
                       world_size: int = 1, skip_bad: bool = False,
                       cache_dir: Path | str | None = None,
                       pin_memory: bool = False) -> tuple[DataLoader, list[Problem]]:
    """A DataLoader of modality-wise training batches over one split.

    The split's samples (of :func:`train_modalities`) are first checked with
    :func:`~dcinet.data.check.check_collection` (decoding every file). Problems raise a
    :class:`DcinetError` listing them as ``dcinet data check`` does, unless ``skip_bad``: then the
    samples they disqualify are dropped and the problems returned so the caller can record them.
    Reader problems are the caller's: read with ``read_collection(..., problems=[])`` to skip them.

    Batches come from :class:`MultiModalBatchSampler` (``cfg.batch_per_modality``, ``cfg.sampler``,
    ``cfg.samples_per_class``, ``cfg.seed``); call ``loader.batch_sampler.set_epoch(epoch)`` before
    each epoch (its keys also select each video clip's training frame and each windowed
    recording's training window). Each batch is
    :func:`collate_by_modality`'s dict. When the split's decoded tensors fit in
    ``cfg.decoded_cache_mb`` MiB they are decoded here, once, and kept in memory
    (:meth:`SampleDataset.keep_decoded`). The ``aug_*`` keys' augmentation
    (:class:`~dcinet.data.augment.TrainAugment`) is applied to each draw, after that memory.

    With ``cfg.num_workers > 0`` the worker processes start at the first epoch and persist until
    the loader is dropped (no restart, no re-copy of the dataset per epoch), each keeping
    ``cfg.prefetch_factor`` batches in flight. ``pin_memory`` (pass it when training on CUDA)
    collates into page-locked memory, so that ``.to(device, non_blocking=True)`` overlaps the copy.

    Returns:
        ``(loader, skipped problems)`` (the list is empty when the data is clean).
    """
    modalities = train_modalities(collection, cfg)
    if not modalities:
        raise DcinetError(f"no loadable modality in {collection.root}")
    subset = Collection(classes=collection.classes, root=collection.root, format=collection.format,
                        samples=[s for s in collection.samples if s.split == split and s.modality in modalities])
    report = check_collection(subset, decode=True, dist=DistInfo(rank, world_size))  # once for all ranks
    if report.problems and not skip_bad:
        raise DcinetError(f"{split} data in {collection.root} has problems; fix them or skip the bad "
                          f"samples with --skip-bad\n{format_problems(report.problems)}")
    kept = [s for i, s in enumerate(subset.samples) if i not in report.bad_samples]
    for m in modalities:
        if not any(s.modality == m for s in kept):
            raise DcinetError(f"no usable {split} samples of modality {m!r} in {collection.root}")
    augment = TrainAugment.from_config(cfg)
    sampler = MultiModalBatchSampler(kept, cfg.batch_per_modality, seed=cfg.seed,
                                     class_aware=cfg.sampler == "class_aware",
                                     samples_per_class=cfg.samples_per_class, rank=rank,
                                     world_size=world_size)
    dataset = SampleDataset(kept, SampleDecoder(cfg, cache_dir), augment=augment)
    dataset.keep_decoded(cfg.decoded_cache_mb)
    workers = cfg.num_workers > 0
    loader = DataLoader(dataset, batch_sampler=sampler,
                        collate_fn=partial(collate_by_modality, modalities=sampler.modalities),
                        num_workers=cfg.num_workers, persistent_workers=workers,
                        prefetch_factor=cfg.prefetch_factor if workers else None,
                        worker_init_fn=_seed_worker, generator=torch.Generator().manual_seed(cfg.seed + rank),
                        pin_memory=pin_memory)
    return loader, report.problems


def dropped_from_training(loader: DataLoader, classes: list[str], text_len: int) -> dict:
    """What a train loader of :func:`build_train_loader` leaves out or shortens.

    Returns:
        ``{"classes_missing_a_modality": [names], "texts_truncated": n, "texts": n_texts,
        "text_len": text_len}``: the classes the class-aware sampler never draws (they lack a
        modality), and how many text samples are longer than ``text_len`` characters once
        normalised (:func:`~dcinet.data.text.normalize_text`), which the encoder cuts. When the
        recordings are cut into windows, also ``"audio_windows": {"recordings": n, "windows": n,
        "quiet_skipped": n, "floor_db": f}``: the windows training draws from, and how many the
        energy floor leaves out.
    """
    samples = loader.dataset.samples
    texts = [s for s in samples if s.modality == "text"]
    truncated = sum(len(normalize_text(s.text if s.path is None else read_text(s.path))) > text_len
                    for s in texts)
    dropped = {"classes_missing_a_modality": [classes[c] for c in loader.batch_sampler.unused_labels],
               "texts_truncated": truncated, "texts": len(texts), "text_len": text_len}
    decoder = loader.dataset.loader
    if decoder.multi_view("audio"):
        counts = [decoder.window_counts(s) for s in samples if s.modality == "audio"]
        kept, total = sum(k for k, _ in counts), sum(t for _, t in counts)
        dropped["audio_windows"] = {"recordings": len(counts), "windows": total,
                                    "quiet_skipped": total - kept,
                                    "floor_db": decoder.windowing.floor_db}
    return dropped
