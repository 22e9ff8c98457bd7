"""The FGCrossNet baseline (He, Peng, Xie, ACM MM 2019): one shared network for every modality,
trained with ``L = L_cls + w_center * L_center + w_quadruplet * L_rank`` and no interaction.

``L_cls`` is the cross-entropy over all samples of the batch (every modality together),
``L_center`` (:func:`dcinet.losses.center_loss`) and ``L_rank``
(:func:`dcinet.losses.quadruplet_loss`, cross-modal positives) act on the pooled pre-logits
embedding. The class centres are a parameter of the model, trained by the run's optimizer; their
gradient is that of the unweighted ``L_center`` (``w_center`` only scales what reaches the
network), so with plain SGD each step moves ``c_k`` by ``lr * (1/N) * sum_{i: y_i = k} (f_i - c_k)``
(the run's momentum and weight decay apply as to every parameter). The public FGCrossNet code
gets the same update by multiplying the centres' gradient by ``1 / w_center`` before the step.
"""

from __future__ import annotations

import torch
from torch import nn

from dcinet.errors import DcinetError
from dcinet.losses import center_loss, modality_cross_entropy, quadruplet_loss
from dcinet.models.shared import SharedCCRNModel, modality_ids


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged in the forward pass, its gradient multiplied by ``scale`` in the backward."""
    return x.detach() + (x - x.detach()) * scale


class FGCrossNet(SharedCCRNModel):
    """The FGCrossNet training network (``forward``) and its test network (``encode``).

    The CCRN is the whole backbone (its split point plays no role here: no CMSI/CMCI), so the
    ``layer``, ``interaction``, mixup and ``w_dual`` settings do not apply.

    Args:
        num_classes: ``K`` fine-grained classes (also the number of centres).
        modalities: the modalities the model serves; only ``text`` gets a text module.
        backbone, net: see :class:`~dcinet.models.shared.SharedCCRNModel`.
        vocab_size, text_len, text_channels, text_embedding: see
            :class:`~dcinet.models.text.TextToImage`.
        img_size: input side in pixels.
        w_center, w_quadruplet: ``lambda_c`` and ``lambda_r`` (>= 0).
        margin1, margin2: the quadruplet margins ``alpha_1``, ``alpha_2``.
        ce_label_smoothing: label smoothing of ``L_cls`` (0: one-hot targets).
    """

    def __init__(self, num_classes: int, modalities: list[str], backbone: str = "resnet50",
                 vocab_size: int = 64, text_len: int = 448, img_size: int = 448,
                 text_channels: int = 64, text_embedding: str = "onehot", w_center: float = 0.001,
                 w_quadruplet: float = 0.1, margin1: float = 1.0, margin2: float = 0.5,
                 net: nn.Module | None = None, ce_label_smoothing: float = 0.0):
        if w_center < 0 or w_quadruplet < 0:
            raise DcinetError(f"loss weights must be >= 0, got w_center={w_center}, "
                              f"w_quadruplet={w_quadruplet}")
        super().__init__(num_classes, modalities, backbone, 4, vocab_size, text_len, img_size,
                         text_channels, text_embedding, net)
        self.w_center, self.w_quadruplet = w_center, w_quadruplet
        self.margin1, self.margin2 = margin1, margin2
        self.ce_label_smoothing = ce_label_smoothing
        self.centres = nn.Parameter(torch.randn(num_classes, self._embedding_dim()))

    def _embedding_dim(self) -> int:
        """``D`` of the pooled embedding: the input width of the classifier (the last linear layer
        of sub-module 2 with ``num_classes`` outputs)."""
        widths = [m.in_features for m in self.ccrn.submodule2.modules()
                  if isinstance(m, nn.Linear) and m.out_features == self.num_classes]
        if not widths:
            raise DcinetError(f"backbone '{self.ccrn.backbone}': no linear classifier found for the "
                              f"FGCrossNet centres")
        return widths[-1]

    def new_layers(self) -> list[nn.Parameter]:
        """The classifier and the text module (:meth:`SharedCCRNModel.new_layers`) and the
        class centres."""
        return [*super().new_layers(), self.centres]

    def forward(self, inputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> dict:
        """One training step's losses.

        The modalities of ``inputs`` are concatenated (canonical order) and run through the CCRN
        once; the pooled embedding ``f`` ``(N, D)`` feeds the centre and quadruplet losses, the
        classifier's logits ``(N, K)`` the cross-entropy.

        Args:
            inputs: modality -> batch (``(b, 3, H, W)`` float, text ``(b, text_len)`` int64).
            labels: modality -> int64 ``(b,)`` class indices.
        Returns:
            ``{"loss": L_cls + w_center * L_center + w_quadruplet * L_rank,
            "parts": {"l_cls", "l_center", "l_rank"}}``, float32 scalars.
        """
        _, x, y, sizes = self.concat_batch(inputs, labels)
        maps = self.ccrn.forward_features(x)
        embedding = self.ccrn.forward_head(maps, pre_logits=True)
        logits = self.ccrn.forward_head(maps)
        ids = modality_ids(sizes, y.device) if len(sizes) > 1 else None
        centres = scale_grad(self.centres, 1.0 / self.w_center) if self.w_center > 0 else self.centres
        parts = {
            "l_cls": modality_cross_entropy(logits, y, self.ce_label_smoothing),
            "l_center": center_loss(embedding, y, centres),
            "l_rank": quadruplet_loss(embedding, y, ids, self.margin1, self.margin2),
        }
        loss = parts["l_cls"] + self.w_center * parts["l_center"] + self.w_quadruplet * parts["l_rank"]
        return {"loss": loss, "parts": parts}
