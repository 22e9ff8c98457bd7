"""DCINet (§3): the CCRN shared by all modalities, the text module, and CMSI/CMCI between the
CCRN's sub-modules during training."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcinet.config import INTERACTIONS
from dcinet.errors import DcinetError
from dcinet.losses import modality_cross_entropy, soft_target_cross_entropy
from dcinet.models.interaction import CMCI, CMSI, MixupSettings
from dcinet.models.shared import SharedCCRNModel, modality_ids

LOSS_NAMES = {"image": "l_img", "audio": "l_aud", "text": "l_txt", "video": "l_vid"}


class DCINet(SharedCCRNModel):
    """The training network of Fig. 2 (``forward``) and the test network (``encode``, CCRN only:
    CMSI/CMCI never run at test time).

    Args:
        num_classes: ``K`` fine-grained classes.
        modalities: the modalities the model serves (a subset of image, audio, text, video);
            only ``text`` gets a text module (:class:`TextToImage`), the others are images.
        backbone, layer, net: see :class:`SharedCCRNModel`.
        interaction: ``none`` (plain shared backbone), ``cmsi``, ``cmci`` or ``cmsi+cmci``.
        vocab_size, text_len, text_channels, text_embedding: see :class:`TextToImage`.
        img_size: input side in pixels (also the text module's output side).
        mixup: CMSI's timm Mixup settings and pairing (default: the paper's; ``pairs``
            flip or cross, see :func:`~dcinet.models.interaction.cmsi`).
        cmci_mode: ``paper`` (a CMCI triple's first map receives channels) or ``symmetric`` (all
            three do), see :func:`~dcinet.models.interaction.cmci_sources`.
        w_modal, w_dual: eq. 8 weights, ``L_sum = w_modal * sum_m L_m + w_dual * L_dual``.
        ce_label_smoothing: label smoothing of each ``L_m`` (0: the paper's one-hot targets;
            ``L_dual``'s targets come from CMSI's own ``label_smoothing``).
    """

    def __init__(self, num_classes: int, modalities: list[str], backbone: str = "resnet50",
                 layer: int = 4, interaction: str = "cmsi+cmci", vocab_size: int = 64,
                 text_len: int = 448, img_size: int = 448, text_channels: int = 64,
                 text_embedding: str = "onehot", mixup: MixupSettings | None = None,
                 cmci_mode: str = "paper", w_modal: float = 1.0, w_dual: float = 1.0,
                 net: nn.Module | None = None, ce_label_smoothing: float = 0.0):
        if interaction not in INTERACTIONS:
            raise DcinetError(f"interaction must be one of {', '.join(INTERACTIONS)}, got {interaction!r}")
        super().__init__(num_classes, modalities, backbone, layer, vocab_size, text_len, img_size,
                         text_channels, text_embedding, net)
        self.interaction = interaction
        self.w_modal, self.w_dual = w_modal, w_dual
        self.ce_label_smoothing = ce_label_smoothing
        self.cmsi = CMSI(num_classes, mixup or MixupSettings()) if "cmsi" in interaction else None
        self.cmci = CMCI(cmci_mode) if "cmci" in interaction else None

    def forward(self, inputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> dict:
        """One training step's losses (§3.1, eq. 7-8).

        The modalities of ``inputs`` are concatenated along the batch (canonical order), sub-module
        1 runs once; sub-module 2 on those maps gives ``L_m`` per modality (mean cross-entropy
        over that modality's samples). In training mode with ``interaction != "none"``, CMSI
        and/or CMCI transform the maps, sub-module 2 runs again and ``L_dual`` is the
        soft-target cross-entropy (one-hot targets without CMSI). In eval mode only ``L_m``.

        Args:
            inputs: modality -> batch (``(b, 3, H, W)`` float, text ``(b, text_len)`` int64).
            labels: modality -> int64 ``(b,)`` class indices, on the inputs' device or on the CPU
                (as the training loop passes them: CMCI's matching then reads them there, and a
                CUDA step never copies labels back to the host).
        Returns:
            ``{"loss": L_sum, "parts": {"l_img", "l_aud", "l_txt", "l_vid" (present modalities),
            "l_dual" (training with an interaction)}}``, float32 scalars; training with an
            interaction adds ``"fired"``, how many maps CMSI and CMCI changed (:meth:`dual_loss`).
        """
        present, x, y, sizes = self.concat_batch(inputs, labels)
        host = torch.cat([labels[m] for m in present])
        maps = self.ccrn.forward_features(x)
        logits = self.ccrn.forward_head(maps).split(sizes)
        parts = {LOSS_NAMES[m]: modality_cross_entropy(z, t, self.ce_label_smoothing)
                 for m, z, t in zip(present, logits, y.split(sizes), strict=True)}
        loss = self.w_modal * sum(parts.values())
        out = {"parts": parts}
        if self.training and self.interaction != "none":
            parts["l_dual"], out["fired"] = self.dual_loss(
                maps, y, sizes, present, host if host.device.type == "cpu" else None)
            loss = loss + self.w_dual * parts["l_dual"]
        return {"loss": loss, **out}

    def dual_loss(self, maps: torch.Tensor, y: torch.Tensor, sizes: list[int],
                  modalities: list[str], y_host: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, dict]:
        """``L_dual``: CMSI -> CMCI (those enabled) -> sub-module 2 -> soft-target cross-entropy.

        Args:
            maps: float ``(N, C, h, w)`` sub-module 1 output of the concatenated batch.
            y: int64 ``(N,)`` labels in the same order.
            sizes: samples per modality, in the batch's (canonical) order, summing to ``N``.
            modalities: the names of those modalities, same order.
            y_host: the same labels on the CPU, if the caller has them (CMCI's matching reads
                labels on the host; without them it copies ``y`` back, which waits for the GPU).
        Returns:
            ``(L_dual, fired)``: a float32 scalar, and per enabled interaction and modality how
            many of its maps it changed, as plain ints (:func:`count_by_modality`; a map's
            modality after CMSI is that of the map it is based on):
            ``{"cmsi": {m: {"maps", "changed", "cross_modal", "same_modality"}}, "cmci": {m:
            {"maps", "changed"}}}``. CMSI changes a map when its lambda is below 1 (all maps or
            none: one box per batch); ``cross_modal`` and ``same_modality`` count those whose box
            (or blend) came from a map of another modality, or of the same one (``cmsi_pairs``
            flip: some; cross: none when the batch has two modalities or more). CMCI changes the
            maps that received a channel block.
        """
        ids = modality_ids(sizes, y.device)
        ids_cpu = modality_ids(sizes, torch.device("cpu"))
        fired = {}
        if self.cmsi is not None:
            maps, targets, perm, lam, partner = self.cmsi(maps, y, ids_cpu)
            # CMSI drew perm on the host: one pinned, non-blocking copy, so the host never waits
            on_device = perm if y.device.type == "cpu" else \
                perm.pin_memory().to(y.device, non_blocking=True)
            y, ids = y[on_device], ids[on_device]
            ids_cpu, box_ids = ids_cpu[perm], ids_cpu[partner]
            changed = torch.full(ids_cpu.shape, lam < 1.0)
            fired["cmsi"] = count_by_modality(modalities, ids_cpu, changed=changed,
                                              cross_modal=changed & (ids_cpu != box_ids),
                                              same_modality=changed & (ids_cpu == box_ids))
        else:
            targets = F.one_hot(y, self.num_classes).float()
        if self.cmci is not None:
            # the matching runs on the host: the host labels, permuted as CMSI permuted the maps
            if y_host is None:
                y_host = y.cpu()
            elif self.cmsi is not None:
                y_host = y_host[perm]
            maps, targets, changed = self.cmci(maps, targets, y_host, ids_cpu)
            fired["cmci"] = count_by_modality(modalities, ids_cpu, changed=changed)
        return soft_target_cross_entropy(self.ccrn.forward_head(maps), targets), fired


def count_by_modality(modalities: list[str], ids: torch.Tensor, **masks: torch.Tensor
                      ) -> dict[str, dict[str, int]]:
    """Per modality, its number of maps and how many of them each mask marks.

    Args:
        modalities: names of the modality ids ``0, 1, ...``.
        ids: int64 ``(N,)`` modality id of each map (CPU).
        masks: name -> bool ``(N,)`` (CPU).
    Returns:
        ``{modality: {"maps": n, name: count, ...}}`` as plain ints, every modality listed.
    """
    out = {}
    for k, name in enumerate(modalities):
        mine = ids == k
        out[name] = {"maps": int(mine.sum()),
                     **{key: int((mask & mine).sum()) for key, mask in masks.items()}}
    return out
