"""What DCINet and the FGCrossNet baseline have in common: one CCRN for every modality, the text
module in front of it, the test-time encoder and the concatenated training batch."""

from __future__ import annotations

import torch
from torch import nn

from dcinet.config import FEATURES
from dcinet.data.records import MODALITIES
from dcinet.errors import DcinetError
from dcinet.models.ccrn import CCRN
from dcinet.models.text import TextToImage


def modality_ids(sizes: list[int], device: torch.device) -> torch.Tensor:
    """int64 ``(N,)``: the position of each sample's modality in a concatenated batch of
    ``sizes[0]`` samples of the first modality, then ``sizes[1]`` of the second, ...

    Filled on ``device`` itself: no host-to-device copy, so a CUDA step does not wait for it."""
    return torch.cat([torch.full((size,), k, dtype=torch.int64, device=device)
                      for k, size in enumerate(sizes)])


def canonical_modalities(modalities: list[str]) -> list[str]:
    """``modalities`` in canonical order; :class:`DcinetError` unless a non-empty subset of
    :data:`~dcinet.data.records.MODALITIES`."""
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        raise DcinetError(f"modalities must be a non-empty subset of {', '.join(MODALITIES)}, "
                          f"got {modalities}")
    return [m for m in MODALITIES if m in modalities]


class SharedCCRNModel(nn.Module):
    """A CCRN shared by all modalities, plus a :class:`TextToImage` module when text is served.

    Args:
        num_classes: ``K`` fine-grained classes.
        modalities: the modalities the model serves (a subset of image, audio, text, video);
            only ``text`` gets a text module, the others are images.
        backbone, layer, net: see :class:`CCRN` (``net``: a timm model to split, e.g. with
            pretrained weights; :func:`~dcinet.models.factory.create_model` passes one).
        vocab_size, text_len, text_channels, text_embedding: see :class:`TextToImage`.
        img_size: input side in pixels (also the text module's output side).
    """

    def __init__(self, num_classes: int, modalities: list[str], backbone: str, layer: int,
                 vocab_size: int, text_len: int, img_size: int, text_channels: int,
                 text_embedding: str, net: nn.Module | None = None):
        super().__init__()
        self.modalities = canonical_modalities(modalities)
        self.num_classes = num_classes
        self.ccrn = CCRN(backbone, num_classes, layer, img_size, net)
        self.text = (TextToImage(vocab_size, text_len, img_size, text_channels, text_embedding)
                     if "text" in self.modalities else None)

    def new_layers(self) -> list[nn.Parameter]:
        """The parameters no pretrained backbone provides: the classifier (the last linear or
        1x1-conv layer of sub-module 2's head with ``num_classes`` outputs) and the text module.

        Raises:
            DcinetError: the head has no such layer.
        """
        classifiers = [m for m in self.ccrn.submodule2.head.modules()
                  if (isinstance(m, nn.Linear) and m.out_features == self.num_classes)
                  or (isinstance(m, nn.Conv2d) and m.out_channels == self.num_classes)]
        if not classifiers:
            raise DcinetError(f"backbone '{self.ccrn.backbone}': no classifier with "
                              f"{self.num_classes} outputs found in its head")
        text = list(self.text.parameters()) if self.text is not None else []
        return list(classifiers[-1].parameters()) + text

    def to_image(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """The CCRN input of a modality: text ids ``(B, text_len)`` -> ``(B, 3, S, S)`` through the
        text module; image / audio spectrogram / video ``(B, 3, H, W)`` pass unchanged."""
        if modality not in self.modalities:
            raise DcinetError(f"this model was built for {', '.join(self.modalities)}, not {modality!r}")
        return self.text(x) if modality == "text" else x

    def encode(self, x: torch.Tensor, modality: str, feature: str = "softmax") -> torch.Tensor:
        """Test-time representation (the CCRN only).

        Args:
            x: one modality's batch, as for :meth:`to_image`.
            modality: its name.
            feature: ``softmax`` (class probabilities, the paper's retrieval feature),
                ``logits`` or ``embedding`` (the pooled pre-logits vector).
        Returns:
            ``(B, K)`` for softmax/logits, ``(B, D)`` for embedding. Call ``eval()`` first for
            deterministic features (batch norm running statistics, no dropout).
        """
        if feature not in FEATURES:
            raise DcinetError(f"feature must be one of {', '.join(FEATURES)}, got {feature!r}")
        maps = self.ccrn.forward_features(self.to_image(x, modality))
        if feature == "embedding":
            return self.ccrn.forward_head(maps, pre_logits=True)
        logits = self.ccrn.forward_head(maps)
        return logits.softmax(dim=1) if feature == "softmax" else logits

    def encode_pair(self, x: torch.Tensor, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled embedding ``(B, D)`` and the logits ``(B, K)`` of one CCRN pass (what the
        gallery feature ``softmax+embedding`` mixes); as :meth:`encode` otherwise."""
        maps = self.ccrn.forward_features(self.to_image(x, modality))
        return self.ccrn.forward_head(maps, pre_logits=True), self.ccrn.forward_head(maps)

    def concat_batch(self, inputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
                     ) -> tuple[list[str], torch.Tensor, torch.Tensor, list[int]]:
        """One training batch as a single CCRN input, modalities in canonical order.

        Args:
            inputs: modality -> batch (``(b, 3, H, W)`` float, text ``(b, text_len)`` int64).
            labels: modality -> int64 ``(b,)`` class indices, on the inputs' device or on the
                CPU (the training loop keeps them there): they are moved without waiting.
        Returns:
            ``(present, x, y, sizes)``: the modalities in batch order, float ``(N, 3, S, S)``
            CCRN inputs, int64 ``(N,)`` labels on the inputs' device, and samples per modality
            (summing to ``N``).
        """
        present = [m for m in self.modalities if m in inputs]
        if not present or len(present) != len(inputs):
            raise DcinetError(f"inputs hold {sorted(inputs)}; this model serves {', '.join(self.modalities)}")
        x = torch.cat([self.to_image(inputs[m], m) for m in present])
        y = torch.cat([labels[m] for m in present]).to(x.device, non_blocking=True)
        return present, x, y, [len(labels[m]) for m in present]
