"""Fit a preset's batch to a small dataset instead of refusing it.

A preset's ``batch_per_modality`` (b) assumes enough classes: the class-aware sampler draws
``b / samples_per_class`` classes per step from those present in every training modality, and
CMSI mixes the maps of a batch in pairs, so ``b x modalities`` must be even. On a dataset of a
few species (5 classes, 3 modalities) both would refuse to train. :func:`fit_batch` lowers b to
what the data allows (or, when no class has items in every modality, takes the random sampler)
and says so in one line each; only a dataset that cannot give a single batch is refused.
"""

from __future__ import annotations

from dataclasses import replace

from dcinet.config import Config
from dcinet.data.records import Collection
from dcinet.errors import DcinetError


def shared_classes(collection: Collection, modalities: list[str], split: str = "train") -> int:
    """How many classes have ``split`` items in every one of ``modalities``."""
    present = [{s.label for s in collection.samples if s.modality == m and s.split == split}
               for m in modalities]
    return len(set.intersection(*present)) if present else 0


def fit_batch(cfg: Config, collection: Collection, modalities: list[str]) -> tuple[Config, list[str]]:
    """``cfg`` with a ``batch_per_modality`` the training split of ``collection`` can fill, and a
    line for each change made.

    * class-aware sampler: at most one step's worth of the classes present in every modality,
      i.e. ``b = min(b, C x samples_per_class)``; with no such class (``C = 0``), the random
      sampler;
    * CMSI (``method: dcinet`` with ``cmsi`` in ``interaction``): ``b x modalities`` even, by one
      class (class-aware) or one item (random) fewer, or ``b = 2`` from ``b = 1``.

    Raises:
        DcinetError: CMSI cannot get an even batch of one class (``samples_per_class`` odd, one
            class, odd modality count).
    """
    b, k, m = cfg.batch_per_modality, cfg.samples_per_class, len(modalities)
    notes = []
    if cfg.sampler == "class_aware":
        classes = shared_classes(collection, modalities)
        if classes == 0:
            notes.append(f"no class has training items in every modality ({', '.join(modalities)}), "
                         f"which the class-aware sampler draws from, so sampler is random")
            cfg = replace(cfg, sampler="random")
        elif classes < b // k:
            notes.append(f"only {classes} classes have training items in every modality, so "
                         f"batch_per_modality is lowered from {b} to {classes * k} "
                         f"({classes} classes x samples_per_class {k})")
            b = classes * k
    if cfg.method == "dcinet" and "cmsi" in cfg.interaction and b * m % 2:
        if cfg.sampler == "class_aware":
            if b // k < 2:
                raise DcinetError(f"CMSI mixes pairs of maps, but one class x samples_per_class "
                                  f"{k} x {m} modalities is odd; set samples_per_class=2")
            new = b - k
        else:
            new = b - 1 if b > 1 else 2
        notes.append(f"CMSI mixes pairs of maps: batch_per_modality {b} x {m} modalities is odd, "
                     f"so it is {'lowered' if new < b else 'raised'} to {new}")
        b = new
    return (replace(cfg, batch_per_modality=b) if b != cfg.batch_per_modality else cfg), notes
