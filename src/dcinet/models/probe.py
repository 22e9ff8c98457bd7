"""The frozen-encoder baseline (``method: probe``): pretrained encoders per modality, never
trained, and one linear classifier per modality into the shared class space.

A reviewer's first question about a shared network trained across modalities: is training it
worth anything? This baseline trains no network at all. Each modality goes through a frozen
pretrained encoder in eval mode, under ``torch.no_grad``:

* images, audio spectrograms and video frames: the config's backbone with its pretrained weights
  (one copy for all three), its pooled pre-logits vector ``(B, D)`` (e.g. ``D = 1280`` for
  efficientnet_lite0);
* texts: all-MiniLM-L6-v2's sentence embedding ``(B, 384)`` (:mod:`dcinet.models.minilm`), from the
  same character ids every model reads.

Only the heads learn, one linear classifier per modality, ``BatchNorm1d(D_m, affine=False)`` then
``Linear(D_m, K)`` (:func:`linear_head`), with the per-modality cross-entropy ``L_m`` of DCINet's
eq. 8 (no ``L_dual``: there is no interaction). At test time ``encode`` returns the head's
logits or their softmax: the classes are the only space the modalities share, so the
``embedding`` feature is refused. ``dcinet train`` / ``evaluate`` / ``embed`` run it as they run
DCINet.
"""

from __future__ import annotations

import torch
from torch import nn

from dcinet.config import FEATURES
from dcinet.errors import DcinetError
from dcinet.losses import modality_cross_entropy
from dcinet.models.dcinet import LOSS_NAMES
from dcinet.models.minilm import MINILM_DIM, MiniLM
from dcinet.models.shared import canonical_modalities


def linear_head(width: int, num_classes: int) -> nn.Sequential:
    """``(B, width) -> (B, num_classes)``: each feature standardised (batch statistics in training,
    running ones at test time; no learned scale or shift), then a linear layer: at test time the
    whole head is one affine map. The standardisation (MAE's linear probe) lets one learning rate
    suit both MiniLM's unit-norm 384-d embedding (components ~0.05) and a CNN's pooled vector
    (components of order 1): without it, the text head of a 4-epoch run was still near chance
    (cross-entropy 3.8, ln 66 = 4.2) while the image head learned."""
    return nn.Sequential(nn.BatchNorm1d(width, affine=False), nn.Linear(width, num_classes))


class Probe(nn.Module):
    """Frozen encoders and trained linear heads, with DCINet's ``forward`` / ``encode`` interface.

    ``offered_features``: what :meth:`encode` returns; no ``embedding``, since the frozen vectors
    of different modalities live in different spaces, of different widths.

    Args:
        num_classes: ``K`` fine-grained classes.
        modalities: the modalities served (a subset of image, audio, text, video).
        net: the frozen timm backbone (pretrained weights loaded, classifier removed:
            ``forward_head(pre_logits=True)`` gives ``(B, D)``); needed unless the only modality
            is text.
        text_encoder: the frozen MiniLM; needed when text is served. It stays outside the module
            tree (not in ``state_dict()``): it always comes from the installed package.
        img_size: input side in pixels (sets ``D`` through one dry forward pass).
        ce_label_smoothing: label smoothing of each ``L_m``.
    """

    offered_features = ("softmax", "logits")

    def __init__(self, num_classes: int, modalities: list[str], net: nn.Module | None,
                 text_encoder: MiniLM | None, img_size: int, ce_label_smoothing: float = 0.0):
        super().__init__()
        self.modalities = canonical_modalities(modalities)
        self.num_classes = num_classes
        self.ce_label_smoothing = ce_label_smoothing
        pictures = [m for m in self.modalities if m != "text"]
        if pictures and net is None:
            raise DcinetError(f"method probe needs a pretrained backbone for {', '.join(pictures)}")
        if "text" in self.modalities and text_encoder is None:
            raise DcinetError("method probe needs the MiniLM text encoder for text")
        self.encoder = net.eval().requires_grad_(False) if pictures else None
        self.text_encoder = text_encoder if "text" in self.modalities else None
        width = self._picture_width(img_size) if pictures else 0
        self.heads = nn.ModuleDict({m: linear_head(MINILM_DIM if m == "text" else width, num_classes)
                                    for m in self.modalities})

    @torch.no_grad()
    def _picture_width(self, img_size: int) -> int:
        """``D`` of the backbone's pooled pre-logits vector, from one forward pass of zeros."""
        x = torch.zeros(1, 3, img_size, img_size)
        return int(self.encoder.forward_head(self.encoder.forward_features(x), pre_logits=True).shape[1])

    def train(self, mode: bool = True) -> Probe:
        """The heads follow ``mode``; the frozen encoder stays in eval mode (its batch-norm
        statistics and dropout never change)."""
        super().train(mode)
        if self.encoder is not None:
            self.encoder.eval()
        return self

    def new_layers(self) -> list[nn.Parameter]:
        """Every trained parameter: the heads (the encoders are frozen)."""
        return list(self.heads.parameters())

    @torch.no_grad()
    def features(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """The frozen encoder's vector: pictures ``(B, 3, H, W)`` -> ``(B, D)``, text ids
        ``(B, text_len)`` -> ``(B, 384)``; float32, no gradient."""
        if modality not in self.modalities:
            raise DcinetError(f"this model was built for {', '.join(self.modalities)}, not {modality!r}")
        if modality == "text":
            return self.text_encoder.sentence_embeddings(x)
        return self.encoder.forward_head(self.encoder.forward_features(x), pre_logits=True).float()

    def encode(self, x: torch.Tensor, modality: str, feature: str = "softmax") -> torch.Tensor:
        """Test-time representation: ``softmax`` or ``logits`` ``(B, K)`` of the modality's head.

        Raises:
            DcinetError: ``embedding`` (the frozen vectors of different modalities live in
                different spaces, of different widths) or an unknown feature.
        """
        if feature not in FEATURES:
            raise DcinetError(f"feature must be one of {', '.join(FEATURES)}, got {feature!r}")
        if feature == "embedding":
            raise DcinetError("method probe has no shared embedding: its modalities meet only in "
                              "the class space (use the feature logits, or softmax)")
        features = self.features(x, modality)  # checks the modality first
        logits = self.heads[modality](features)
        return logits.softmax(dim=1) if feature == "softmax" else logits

    def forward(self, inputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> dict:
        """One training step's losses: per modality, the cross-entropy of its head on the frozen
        features.

        Args:
            inputs: modality -> batch (``(b, 3, H, W)`` float, text ``(b, text_len)`` int64).
            labels: modality -> int64 ``(b,)`` class indices (on the CPU or the inputs' device).
        Returns:
            ``{"loss": sum_m L_m, "parts": {"l_img", "l_aud", "l_txt", "l_vid" (present)}}``.
        """
        present = [m for m in self.modalities if m in inputs]
        if not present or len(present) != len(inputs):
            raise DcinetError(f"inputs hold {sorted(inputs)}; this model serves {', '.join(self.modalities)}")
        parts = {}
        for m in present:
            logits = self.heads[m](self.features(inputs[m], m))
            target = labels[m].to(logits.device, non_blocking=True)  # the loop keeps them on the host
            parts[LOSS_NAMES[m]] = modality_cross_entropy(logits, target, self.ce_label_smoothing)
        return {"loss": sum(parts.values()), "parts": parts}
