"""DCINet (§3): the CCRN shared by all modalities, the text module, and CMSI/CMCI between the
CCRN's sub-modules during training."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcinet.data.records import MODALITIES
from dcinet.errors import DcinetError
from dcinet.losses import modality_cross_entropy, soft_target_cross_entropy
from dcinet.models.ccrn import CCRN
from dcinet.models.interaction import CMCI, CMSI, MixupSettings
from dcinet.models.text import TextToImage

INTERACTIONS = ("none", "cmsi", "cmci", "cmsi+cmci")
LOSS_NAMES = {"image": "l_img", "audio": "l_aud", "text": "l_txt", "video": "l_vid"}
FEATURES = ("softmax", "logits", "embedding")


class DCINet(nn.Module):
    """The training network of Fig. 2 (``forward``) and the test network (``encode``).

    Args:
        num_classes: ``K`` fine-grained classes.
        modalities: the modalities the model serves (a subset of image, audio, text, video);
            only ``text`` gets a text module (:class:`TextToImage`), the others are images.
        backbone, layer, pretrained: see :class:`CCRN`.
        interaction: ``none`` (plain shared backbone), ``cmsi``, ``cmci`` or ``cmsi+cmci``.
        vocab_size, text_len, text_channels, text_embedding: see :class:`TextToImage`.
        img_size: input side in pixels (also the text module's output side).
        mixup: CMSI's timm Mixup settings (default: the paper's).
        w_modal, w_dual: eq. 8 weights, ``L_sum = w_modal * sum_m L_m + w_dual * L_dual``.
    """

    def __init__(self, num_classes: int, modalities: list[str], backbone: str = "resnet50",
                 layer: int = 4, interaction: str = "cmsi+cmci", vocab_size: int = 64,
                 text_len: int = 448, img_size: int = 448, text_channels: int = 64,
                 text_embedding: str = "onehot", mixup: MixupSettings | None = None,
                 w_modal: float = 1.0, w_dual: float = 1.0, pretrained: str | None = None):
        super().__init__()
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities:
            raise DcinetError(f"modalities must be a non-empty subset of {', '.join(MODALITIES)}, "
                              f"got {modalities}")
        if interaction not in INTERACTIONS:
            raise DcinetError(f"interaction must be one of {', '.join(INTERACTIONS)}, got {interaction!r}")
        self.modalities = [m for m in MODALITIES if m in modalities]
        self.num_classes, self.interaction = num_classes, interaction
        self.w_modal, self.w_dual = w_modal, w_dual
        self.ccrn = CCRN(backbone, num_classes, layer, pretrained, img_size)
        self.text = (TextToImage(vocab_size, text_len, img_size, text_channels, text_embedding)
                     if "text" in self.modalities else None)
        self.cmsi = CMSI(num_classes, mixup or MixupSettings()) if "cmsi" in interaction else None
        self.cmci = CMCI() if "cmci" in interaction else None

    def to_image(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """The CCRN input of a modality: text ids ``(B, text_len)`` -> ``(B, 3, S, S)`` through the
        text module; image / audio spectrogram / video ``(B, 3, H, W)`` pass unchanged."""
        if modality not in self.modalities:
            raise DcinetError(f"this model was built for {', '.join(self.modalities)}, not {modality!r}")
        return self.text(x) if modality == "text" else x

    def encode(self, x: torch.Tensor, modality: str, feature: str = "softmax") -> torch.Tensor:
        """Test-time representation (CCRN only; CMSI/CMCI never run here).

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

    def forward(self, inputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> dict:
        """One training step's losses (§3.1, eq. 7-8).

        The modalities of ``inputs`` are concatenated along the batch (canonical order), sub-module
        1 runs once; sub-module 2 on those maps gives ``L_m`` per modality (mean cross-entropy
        over that modality's samples). In training mode with ``interaction != "none"``, CMSI
        and/or CMCI transform the maps, sub-module 2 runs again and ``L_dual`` is the
        soft-target cross-entropy (one-hot targets without CMSI). In eval mode only ``L_m``.

        Args:
            inputs: modality -> batch (``(b, 3, H, W)`` float, text ``(b, text_len)`` int64).
            labels: modality -> int64 ``(b,)`` class indices.
        Returns:
            ``{"loss": L_sum, "parts": {"l_img", "l_aud", "l_txt", "l_vid" (present modalities),
            "l_dual" (training with an interaction)}}``, float32 scalars.
        """
        present = [m for m in self.modalities if m in inputs]
        if not present or len(present) != len(inputs):
            raise DcinetError(f"inputs hold {sorted(inputs)}; this model serves {', '.join(self.modalities)}")
        x = torch.cat([self.to_image(inputs[m], m) for m in present])
        y = torch.cat([labels[m] for m in present])
        sizes = [len(labels[m]) for m in present]
        maps = self.ccrn.forward_features(x)
        logits = self.ccrn.forward_head(maps).split(sizes)
        parts = {LOSS_NAMES[m]: modality_cross_entropy(z, labels[m]) for m, z in zip(present, logits, strict=True)}
        loss = self.w_modal * sum(parts.values())
        if self.training and self.interaction != "none":
            parts["l_dual"] = self.dual_loss(maps, y, sizes)
            loss = loss + self.w_dual * parts["l_dual"]
        return {"loss": loss, "parts": parts}

    def dual_loss(self, maps: torch.Tensor, y: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """``L_dual``: CMSI -> CMCI (those enabled) -> sub-module 2 -> soft-target cross-entropy.

        Args:
            maps: float ``(N, C, h, w)`` sub-module 1 output of the concatenated batch.
            y: int64 ``(N,)`` labels in the same order.
            sizes: samples per modality, in the batch's (canonical) order, summing to ``N``.
        Returns:
            float32 scalar.
        """
        modality_ids = torch.repeat_interleave(torch.arange(len(sizes), device=y.device),
                                               torch.tensor(sizes, device=y.device))
        if self.cmsi is not None:
            maps, targets, perm = self.cmsi(maps, y)
            y, modality_ids = y[perm], modality_ids[perm]
        else:
            targets = F.one_hot(y, self.num_classes).float()
        if self.cmci is not None:
            maps, targets = self.cmci(maps, targets, y, modality_ids)
        return soft_target_cross_entropy(self.ccrn.forward_head(maps), targets)
