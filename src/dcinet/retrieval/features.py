"""Test-time feature extraction with the CCRN only (no CMSI / CMCI): one function shared by
``evaluate``, ``embed`` and the search index, so that all of them see identical vectors.

The DataLoader's workers collate each batch's views into one tensor, already in the model's memory
format (NHWC for a ``channels_last`` model); on CUDA it is pinned and goes to the GPU in one
non-blocking copy per forward pass, and the features come back once per batch.

Under ``torchrun`` the batches are dealt to the ranks in turn (batch ``j`` to rank
``j % world_size``) and gathered back in order, so every batch holds exactly the samples it holds
in one process: the features equal one process's.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader

from dcinet.config import FEATURES, RETRIEVAL_FEATURES
from dcinet.config import MIXED_FEATURE as MIXED
from dcinet.data.dataset import SampleDataset
from dcinet.data.decode import SampleDecoder
from dcinet.data.records import Sample
from dcinet.distributed import DistInfo, all_gather
from dcinet.errors import DcinetError
from dcinet.models.factory import TrainedModel
from dcinet.retrieval.mixed import MIX_WEIGHT, mixed


@dataclass(frozen=True)
class Inference:
    """How to run the model at test time.

    Attributes:
        device: where the model runs (it must already be there).
        batch_size: samples per forward pass.
        num_workers: DataLoader worker processes decoding the samples (0 = in this process).
        amp: float16 autocast on CUDA (ignored on the CPU, which stays deterministic).
        dist: the process group to shard the batches over (one process by default).
    """

    device: torch.device = torch.device("cpu")
    batch_size: int = 64
    num_workers: int = 0
    amp: bool = True
    dist: DistInfo = field(default_factory=DistInfo)

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise DcinetError(f"--batch-size must be positive, got {self.batch_size}")
        if self.num_workers < 0:
            raise DcinetError(f"--workers must be >= 0, got {self.num_workers}")

    def autocast(self):
        """The autocast context of a forward pass."""
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()


@dataclass
class ModalityFeatures:
    """Features of one modality's samples.

    Attributes:
        features: float32 (N, D) — softmax probabilities, logits or pooled embeddings.
        labels: int64 (N,).
        samples: the N records, in the same order.
    """

    features: np.ndarray
    labels: np.ndarray
    samples: list[Sample]


@torch.no_grad()
def extract_features(trained: TrainedModel, samples: list[Sample], feature: str = "softmax",
                     inference: Inference | None = None,
                     progress: bool = False) -> dict[str, ModalityFeatures]:
    """Encode samples with ``model.encode`` (eval mode), grouped by modality.

    Every sample is encoded through all its test-time views
    (:meth:`~dcinet.data.decode.SampleDecoder.decode_views`: a video's frames, a long recording's
    windows, else the one tensor) by :func:`encode_views`, batches of ``inference.batch_size``
    samples at a time.

    Args:
        trained: a loaded model (see :func:`dcinet.models.factory.load_trained`), on
            ``inference.device``.
        samples: records of any modalities (their order is kept within each modality).
        feature: ``softmax`` (the paper's retrieval feature), ``logits`` or ``embedding``.
        inference: device, batch size, workers, AMP and process group (default: one CPU process,
            batches of 64).
    Returns:
        modality -> :class:`ModalityFeatures`, modalities in canonical order; every rank of a
        process group gets all of them.
    """
    inference = inference or Inference()
    model = trained.model.eval()
    decoder = SampleDecoder(trained.cfg)
    out: dict[str, ModalityFeatures] = {}
    for modality in trained.modalities:
        subset = [s for s in samples if s.modality == modality]
        if not subset:
            continue
        batches = [list(range(a, min(a + inference.batch_size, len(subset))))
                   for a in range(0, len(subset), inference.batch_size)]
        mine = batches[inference.dist.rank::inference.dist.world_size]
        chunks = _encode(model, decoder, subset, mine, modality, feature, inference)
        gathered = all_gather(chunks, inference.dist)
        ordered = [gathered[j % len(gathered)][j // len(gathered)] for j in range(len(batches))]
        if progress and inference.dist.is_main:
            print(f"  {modality}: {len(subset)} items encoded", file=sys.stderr, flush=True)
        out[modality] = ModalityFeatures(
            torch.cat(ordered).numpy().astype(np.float32),
            np.asarray([s.label for s in subset], dtype=np.int64),
            subset,
        )
    return out


def _encode(model, decoder: SampleDecoder, subset: list[Sample], batches: list[list[int]],
            modality: str, feature: str, inference: Inference) -> list[torch.Tensor]:
    """The float32 CPU features ``(len(batch), D)`` of each of ``batches`` (index lists into
    ``subset``); the workers collate (:func:`collate_views`), the loader pins on CUDA."""
    collate = partial(collate_views, channels_last=_is_channels_last(model))
    loader = DataLoader(SampleDataset(subset, decoder, views=True), batch_sampler=batches,
                        collate_fn=collate, num_workers=inference.num_workers,
                        pin_memory=inference.device.type == "cuda")
    _check_feature(feature)
    return [_encode_stacked(model, stacked, counts, modality, feature, inference)
            for stacked, counts in loader]


def collate_views(items: list, channels_last: bool = False) -> tuple[torch.Tensor, list[int]]:
    """A batch of :class:`~dcinet.data.dataset.SampleDataset` items (``views=True``) as one
    tensor: every item's views concatenated, ``(sum V_i, ...)``, NHWC (``channels_last``) when
    4-d and asked; and each item's view count ``V_i``. Runs in the DataLoader's workers, so the
    copy the loader pins is the one the model reads."""
    views = [item[0] for item in items]
    stacked = torch.cat(views)
    if channels_last and stacked.dim() == 4:
        stacked = stacked.contiguous(memory_format=torch.channels_last)
    return stacked, [v.shape[0] for v in views]


def _is_channels_last(model: torch.nn.Module) -> bool:
    """Whether the model's convolution weights are NHWC (``cfg.channels_last``): the first 4-d
    weight with a spatial kernel decides (a 1 x 1 kernel is contiguous either way)."""
    for p in model.parameters():
        if p.dim() == 4 and p.shape[2] * p.shape[3] > 1:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def _check_feature(feature: str) -> None:
    if feature not in RETRIEVAL_FEATURES:
        raise DcinetError(f"feature must be one of {', '.join(RETRIEVAL_FEATURES)}, got "
                          f"{feature!r}")


def check_model_feature(trained: TrainedModel, feature: str) -> None:
    """Refuse, before any work, a feature the run's model cannot give: ``embedding`` (and so
    ``softmax+embedding``) of a model whose ``offered_features`` lack it (the frozen-encoder
    ``probe``, whose modalities meet only in the class space)."""
    _check_feature(feature)
    offered = getattr(trained.model, "offered_features", FEATURES)
    needs = ("logits", "embedding") if feature == MIXED else (feature,)
    missing = [f for f in needs if f not in offered]
    if missing:
        raise DcinetError(f"method {trained.cfg.method} has no {missing[0]}: its modalities meet "
                          f"only in the class space; use the feature logits")


@torch.no_grad()
def encode_views(model, views: list[torch.Tensor], modality: str, feature: str,
                 inference: Inference | None = None) -> torch.Tensor:
    """The features of items given by their views: logits (or embeddings) averaged over each
    item's views, then softmax for the ``softmax`` feature — FGCrossNet's video protocol, used
    for every modality (one view: exactly ``model.encode``'s feature). ``softmax+embedding``
    averages both over the views and mixes them (:func:`~dcinet.retrieval.mixed.mixed`).

    Args:
        model: in eval mode, on ``inference.device``.
        views: one tensor per item, ``(V_i, ...)`` as
            :meth:`~dcinet.data.decode.SampleDecoder.decode_views` returns (``V_i >= 1``).
        modality: as for ``model.encode``.
        feature: one of :data:`~dcinet.config.RETRIEVAL_FEATURES`.
        inference: device, AMP; the views go through the model ``batch_size`` at a time, so a
            long recording's many windows never make one huge batch.

    Returns:
        float32 CPU ``(len(views), D)``.
    """
    inference = inference or Inference()
    _check_feature(feature)
    counts = [v.shape[0] for v in views]
    if not counts or min(counts) < 1:
        raise DcinetError(f"every item needs at least one view, got view counts {counts}")
    stacked, counts = collate_views([(v,) for v in views], _is_channels_last(model))
    return _encode_stacked(model, stacked, counts, modality, feature, inference)


def _encode_stacked(model, stacked: torch.Tensor, counts: list[int], modality: str, feature: str,
                    inference: Inference) -> torch.Tensor:
    """:func:`encode_views` of views already collated (:func:`collate_views`): each forward pass
    moves its ``batch_size`` views in one non-blocking copy, in the model's memory format; the
    means and the softmax are taken on the device and copied back once."""
    inner = "embedding" if feature == "embedding" else "logits"
    if feature == MIXED and not hasattr(model, "encode_pair"):
        raise DcinetError(f"feature {MIXED} needs a shared embedding, which method "
                          f"{type(model).__name__.lower()} has not; choose softmax or logits")
    memory_format = torch.channels_last if _is_channels_last(model) else torch.contiguous_format
    encoded, embedded = [], []
    for a in range(0, stacked.shape[0], inference.batch_size):
        x = stacked[a:a + inference.batch_size].to(inference.device, non_blocking=True)
        if x.dim() == 4:  # a no-op when the workers collated it so
            x = x.contiguous(memory_format=memory_format)
        with inference.autocast():
            if feature == MIXED:
                embedding, logits = model.encode_pair(x, modality)
                embedded.append(embedding.float())
                encoded.append(logits.float())
            else:
                encoded.append(model.encode(x, modality, feature=inner).float())
    means = torch.stack([part.mean(0) for part in torch.cat(encoded).split(counts)])
    if feature == MIXED:
        pooled = torch.stack([part.mean(0) for part in torch.cat(embedded).split(counts)])
        return torch.from_numpy(mixed(means.softmax(dim=1).cpu().numpy(), pooled.cpu().numpy(),
                                      MIX_WEIGHT))
    return (means.softmax(dim=1) if feature == "softmax" else means).cpu()
