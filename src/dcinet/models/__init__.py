"""The DCINet model: CCRN (``ccrn``), text module (``text``), CMSI/CMCI (``interaction``),
offline pretrained weights (``pretrained``) and the assembled network (``dcinet``); the
FGCrossNet baseline (``fgcrossnet``) shares the CCRN and text module (``shared``)."""

from __future__ import annotations

from dcinet.config import Config
from dcinet.errors import DcinetError
from dcinet.models.ccrn import CCRN
from dcinet.models.dcinet import DCINet
from dcinet.models.fgcrossnet import FGCrossNet
from dcinet.models.interaction import CMCI, CMSI, MixupSettings, cmci, cmsi
from dcinet.models.pretrained import PretrainedReport, load_pretrained
from dcinet.models.text import TextToImage

__all__ = ["CCRN", "CMCI", "CMSI", "DCINet", "FGCrossNet", "MixupSettings", "PretrainedReport",
           "TextToImage", "build_model", "cmci", "cmsi", "load_pretrained"]


def build_model(cfg: Config, num_classes: int, modalities: list[str]) -> DCINet | FGCrossNet:
    """The model a :class:`Config` describes, for ``num_classes`` classes and the training
    ``modalities``: :class:`DCINet` for ``method: dcinet``, :class:`FGCrossNet` for
    ``method: fgcrossnet``; the text vocabulary is the data layer's."""
    from dcinet.data.text import VOCAB_SIZE

    text = {"vocab_size": VOCAB_SIZE, "text_len": cfg.text_len, "img_size": cfg.img_size,
            "text_channels": cfg.text_channels, "text_embedding": cfg.text_embedding}
    if cfg.method == "fgcrossnet":
        return FGCrossNet(num_classes, modalities, backbone=cfg.backbone, **text,
                          w_center=cfg.w_center, w_quadruplet=cfg.w_quadruplet,
                          margin1=cfg.quadruplet_margin1, margin2=cfg.quadruplet_margin2,
                          pretrained=cfg.pretrained)
    if cfg.method != "dcinet":
        raise DcinetError(f"config key 'method' must be dcinet or fgcrossnet, got {cfg.method!r}")
    return DCINet(
        num_classes, modalities, backbone=cfg.backbone, layer=cfg.layer,
        interaction=cfg.interaction, **text, mixup=MixupSettings.from_config(cfg),
        w_modal=cfg.w_modal, w_dual=cfg.w_dual, pretrained=cfg.pretrained,
    )
