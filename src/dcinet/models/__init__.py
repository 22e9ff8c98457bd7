"""The DCINet model: CCRN (``ccrn``), text module (``text``), CMSI/CMCI (``interaction``),
offline pretrained weights (``pretrained``) and the assembled network (``dcinet``)."""

from __future__ import annotations

from dcinet.config import Config
from dcinet.errors import DcinetError
from dcinet.models.ccrn import CCRN
from dcinet.models.dcinet import DCINet
from dcinet.models.interaction import CMCI, CMSI, MixupSettings, cmci, cmsi
from dcinet.models.pretrained import PretrainedReport, load_pretrained
from dcinet.models.text import TextToImage

__all__ = ["CCRN", "CMCI", "CMSI", "DCINet", "MixupSettings", "PretrainedReport", "TextToImage",
           "build_model", "cmci", "cmsi", "load_pretrained"]


def build_model(cfg: Config, num_classes: int, modalities: list[str]) -> DCINet:
    """The model a :class:`Config` describes (``method: dcinet``), for ``num_classes`` classes and
    the training ``modalities``; the text vocabulary is the data layer's."""
    from dcinet.data.text import VOCAB_SIZE

    if cfg.method != "dcinet":
        raise DcinetError(f"config key 'method': build_model builds 'dcinet' only, got {cfg.method!r}")
    return DCINet(
        num_classes, modalities, backbone=cfg.backbone, layer=cfg.layer,
        interaction=cfg.interaction, vocab_size=VOCAB_SIZE, text_len=cfg.text_len,
        img_size=cfg.img_size, text_channels=cfg.text_channels, text_embedding=cfg.text_embedding,
        mixup=MixupSettings.from_config(cfg), w_modal=cfg.w_modal, w_dual=cfg.w_dual,
        pretrained=cfg.pretrained,
    )
