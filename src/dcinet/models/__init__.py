"""The DCINet model: CCRN (``ccrn``), text module (``text``), CMSI/CMCI (``interaction``),
the assembled network (``dcinet``) and the FGCrossNet baseline (``fgcrossnet``), which share the
CCRN and text module (``shared``); the frozen-encoder baseline (``probe``) and the packaged
MiniLM sentence encoder (``minilm``); backbone weights from files (``pretrained``); and the builder
(``factory``: :func:`create_model`, :func:`load_trained`), the only part that reads files."""

from __future__ import annotations

from dcinet.models.ccrn import CCRN
from dcinet.models.dcinet import DCINet
from dcinet.models.factory import TrainedModel, create_model, load_trained
from dcinet.models.fgcrossnet import FGCrossNet
from dcinet.models.interaction import CMCI, CMSI, MixupSettings, cmci, cmsi
from dcinet.models.pretrained import PretrainedReport, load_pretrained
from dcinet.models.probe import Probe
from dcinet.models.text import TextToImage

__all__ = ["CCRN", "CMCI", "CMSI", "DCINet", "FGCrossNet", "MixupSettings", "PretrainedReport",
           "Probe", "TextToImage", "TrainedModel", "cmci", "cmsi", "create_model", "load_pretrained",
           "load_trained"]
