"""Every refusal ``dcinet train`` would make for a config on a dataset, found before any training
(``dcinet data check ROOT --config C``).

:func:`train_refusals` runs the checks that :func:`~dcinet.train.loop.prepare` runs, each on its
own so that one refusal does not hide the next, with the same functions and so the same words:
the validation hold-out, the training modalities, the batch fitted to the data
(:func:`~dcinet.train.batch_fit.fit_batch`; its changes are notes, not refusals), one process's
share of it, the model (backbone, CMSI's map), and whether the pretrained weights can be had
without training (a file, the packaged weights, timm's weights in the cache or a hub that
answers). The data's own problems (files that do not decode...) are
:func:`~dcinet.data.check.check_root`'s report, which ``data check`` prints above these.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from dcinet.config import Config
from dcinet.data.readers import read_configured
from dcinet.errors import DcinetError


@dataclass
class Preflight:
    """What training ``cfg`` on a dataset would meet.

    Attributes:
        refusals: each refusal's one-line message, in the order training meets them.
        notes: what training would adjust and say (the batch fitted to the data).
    """

    refusals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        """Lines for the terminal: ``train would refuse: ...`` / ``train would note: ...``, or
        that it would start."""
        lines = [f"train would refuse: {r}" for r in self.refusals]
        lines += [f"train would note: {n}" for n in self.notes]
        return "\n".join(lines or ["train would start with this config"])


def train_refusals(cfg: Config, root: Path | str) -> Preflight:
    """Check ``cfg`` against the dataset at ``root`` as ``dcinet train`` would, collecting every
    refusal instead of stopping at the first. Reads no media file and downloads nothing."""
    from dcinet.data.dataset import train_modalities
    from dcinet.data.splits import hold_out_validation
    from dcinet.models.factory import create_model
    from dcinet.train.batch_fit import fit_batch
    from dcinet.train.device import per_rank_batch

    found = Preflight()

    def attempt(check):
        try:
            return check()
        except DcinetError as exc:
            found.refusals.append(str(exc))
            return None

    collection = attempt(lambda: read_configured(root, cfg, problems=[]))
    if collection is None:
        return found
    held = attempt(lambda: hold_out_validation(collection, cfg))
    collection = held[0] if held else collection
    modalities = attempt(lambda: train_modalities(collection, cfg))
    if not modalities:
        return found
    fitted = attempt(lambda: fit_batch(cfg, collection, modalities))
    if fitted is not None:
        cfg, notes = fitted
        found.notes += notes
        attempt(lambda: per_rank_batch(cfg, len(modalities), 1))
    attempt(lambda: create_model(replace(cfg, pretrained=None), collection.num_classes, modalities))
    if cfg.pretrained:
        attempt(lambda: check_pretrained(cfg.pretrained, cfg.backbone))
    return found


def check_pretrained(spec: str, backbone: str) -> None:
    """Raise :class:`DcinetError` unless the weights ``spec`` names can be had without training:
    an existing file, the installed packaged weights, or timm weights of ``backbone`` that are in
    the Hugging Face cache or on a hub that answers (nothing is downloaded here)."""
    from dcinet.models import pretrained

    if pretrained.timm_request(spec) is not None:
        tag = pretrained.timm_tag(spec, backbone)
        if not pretrained.timm_cached(tag) and not pretrained.hub_reachable():
            raise DcinetError(f"timm weights {tag} are not in the cache and the hub cannot be "
                              f"reached (offline?): pass a local file with pretrained=PATH")
    elif spec in pretrained.PACKAGED:
        pretrained.packaged_weights_path(spec)
    elif not Path(spec).expanduser().is_file():
        raise DcinetError(f"pretrained '{spec}': no such file, and not a packaged weights name "
                          f"({', '.join(pretrained.PACKAGED)}) nor timm[:<model>.<tag>]")
