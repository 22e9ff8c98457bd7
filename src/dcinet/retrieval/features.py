"""Test-time feature extraction with the CCRN only (no CMSI / CMCI): one function shared by
``evaluate``, ``embed`` and the search index, so that all of them see identical vectors."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from dcinet.data.dataset import SampleDataset
from dcinet.data.decode import SampleDecoder
from dcinet.data.records import Sample
from dcinet.models.factory import TrainedModel


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
                     batch_size: int = 64, num_workers: int = 0, progress: bool = False,
                     device: str | torch.device = "cpu") -> dict[str, ModalityFeatures]:
    """Encode samples with ``model.encode`` (eval mode), grouped by modality.

    Args:
        trained: a loaded model (see :func:`dcinet.models.factory.load_trained`).
        samples: records of any modalities (their order is kept within each modality).
        feature: ``softmax`` (the paper's retrieval feature), ``logits`` or ``embedding``.
    Returns:
        modality -> :class:`ModalityFeatures`, modalities in canonical order.
    """
    model = trained.model.eval()
    loader_fn = SampleDecoder(trained.cfg)
    out: dict[str, ModalityFeatures] = {}
    for modality in trained.modalities:
        subset = [s for s in samples if s.modality == modality]
        if not subset:
            continue
        if modality == "video":
            chunks = [_encode_clip(model, loader_fn, s, feature, trained.cfg.video_frames, device)
                      for s in subset]
        else:
            loader = DataLoader(SampleDataset(subset, loader_fn), batch_size=batch_size,
                                shuffle=False, num_workers=num_workers)
            chunks = [model.encode(x.to(device), modality, feature=feature).float().cpu()
                      for x, _, _ in loader]
        if progress:
            print(f"  {modality}: {len(subset)} items encoded", file=sys.stderr, flush=True)
        out[modality] = ModalityFeatures(
            torch.cat(chunks).numpy().astype(np.float32),
            np.asarray([s.label for s in subset], dtype=np.int64),
            subset,
        )
    return out


def _encode_clip(model, loader_fn: SampleDecoder, sample: Sample, feature: str, max_frames: int,
                 device) -> torch.Tensor:
    """One video's feature ``(1, D)``: logits (or embeddings) averaged over its frames, then
    softmax for the ``softmax`` feature — FGCrossNet's video protocol."""
    frames = loader_fn.load_frames(sample, max_frames).to(device)
    inner = "embedding" if feature == "embedding" else "logits"
    mean = model.encode(frames, "video", feature=inner).float().mean(0, keepdim=True).cpu()
    return mean.softmax(dim=1) if feature == "softmax" else mean
