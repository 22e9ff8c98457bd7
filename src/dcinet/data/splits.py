"""Which items train and which validate: the validation split of a run, and split fingerprints.

A run validates on the dataset's own ``val`` split (the folder layout's
``ROOT/<modality>/val/<class>/...``) or, with ``val_fraction=F``, on items held out of the train
split: per modality and class, ``round(F * n)`` of the class's ``n`` training items (halves round
up), at most ``n - 1`` so that every class keeps a training item of each modality it has. They are
drawn by a generator seeded with ``(seed, modality, label)`` alone, so the same items are held out
on every machine and by every command that reads the run (training, resume, ``evaluate``,
``embed``), whatever the global RNG streams hold. The test split is never touched. A class whose
share rounds to 0 gives no validation item; the record names it (``run.json``'s ``validation``).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from dcinet.config import Config
from dcinet.data.records import MODALITIES, Collection
from dcinet.errors import DcinetError


def split_fingerprint(collection: Collection, split: str = "train") -> dict:
    """A summary of one split that changes whenever its data changes: classes, and every file's
    relative path, label and size in bytes (sizes catch regenerated or replaced files without
    reading their contents).

    Returns:
        ``{"format", "num_classes", "counts": {modality: items}, "digest": sha256 hex}``.
    """
    digest = hashlib.sha256()
    digest.update("\n".join(collection.classes).encode())
    samples = collection.select(split=split)
    root = collection.root
    for s in sorted(samples, key=lambda s: (s.modality, str(s.path), s.label)):
        inside = root and s.path and s.path.is_relative_to(root)
        path = s.path.relative_to(root) if inside else s.path
        size = s.path.stat().st_size if s.path is not None and s.path.is_file() else -1
        digest.update(f"{s.modality}\t{path}\t{s.label}\t{size}\n".encode())
    counts = {m: len(collection.select(split=split, modality=m)) for m in collection.modalities}
    return {"format": collection.format, "num_classes": collection.num_classes, "counts": counts,
            "digest": digest.hexdigest()}


def hold_out_validation(collection: Collection, cfg: Config) -> tuple[Collection, dict | None]:
    """The collection with the run's validation items in split ``val``, and their record.

    Returns:
        ``(collection, record)``: with ``cfg.val_fraction > 0`` a copy whose held-out training
        items have ``split="val"`` (otherwise the collection itself), and the JSON-ready record
        ``{"source": "val_fraction" | "split", "fraction", "items": split_fingerprint(...),
        "classes_without_val": {modality: [class names]}}``, or None when there is no
        validation item.
    Raises:
        DcinetError: ``val_fraction > 0`` on a dataset with its own val split, or a fraction that
            holds out no item at all.
    """
    has_val_split = any(s.split == "val" for s in collection.samples)
    if has_val_split and cfg.val_fraction > 0:
        raise DcinetError(f"config key 'val_fraction' must be 0 for {collection.root}: the dataset "
                          f"has its own val split")
    if cfg.val_fraction > 0:
        held = _held_out(collection, cfg.val_fraction, cfg.seed)
        if not held:
            raise DcinetError(f"config key 'val_fraction' ({cfg.val_fraction}) holds out no item: "
                              f"every class has too few training items")
        samples = [replace(s, split="val") if i in held else s
                   for i, s in enumerate(collection.samples)]
        collection = Collection(collection.classes, samples, collection.root, collection.format)
    elif not has_val_split:
        return collection, None
    record = {"source": "val_fraction" if cfg.val_fraction > 0 else "split",
              "fraction": cfg.val_fraction, "items": split_fingerprint(collection, "val"),
              "classes_without_val": _classes_without_val(collection)}
    return collection, record


def validation_warnings(record: dict | None) -> list[str]:
    """One line per modality whose classes give no validation item (what the record names)."""
    lines = []
    for modality, names in (record or {}).get("classes_without_val", {}).items():
        lines.append(f"{len(names)} classes have no {modality} validation item (too few training "
                     f"items: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")
    return lines


def _held_out(collection: Collection, fraction: float, seed: int) -> set[int]:
    """Indices into ``collection.samples`` of the training items to hold out (see the module)."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, s in enumerate(collection.samples):
        if s.split == "train":
            groups.setdefault((s.modality, s.label), []).append(i)
    held: set[int] = set()
    for (modality, label), members in groups.items():
        n_val = min(int(fraction * len(members) + 0.5), len(members) - 1)
        rng = np.random.default_rng([seed, MODALITIES.index(modality), label])
        held.update(members[j] for j in rng.choice(len(members), n_val, replace=False))
    return held


def _classes_without_val(collection: Collection) -> dict[str, list[str]]:
    """Per modality, the classes with training items but no validation item (modalities where
    every class has one are left out)."""
    out = {}
    for modality in collection.modalities:
        train = {s.label for s in collection.select("train", modality)}
        val = {s.label for s in collection.select("val", modality)}
        if train - val:
            out[modality] = [collection.classes[c] for c in sorted(train - val)]
    return out
