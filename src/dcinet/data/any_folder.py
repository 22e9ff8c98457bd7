"""Read any folder as a gallery to embed: a dataset, or a loose collection of files.

What a practitioner points ``dcinet embed`` at (:func:`read_any`):

* a dataset in one of :data:`~dcinet.config.FORMATS` (``folder``: ``ROOT/<modality>/<split>/
  <class>/<file>``; ``fgxmedia``; ``cub``), with any subset of the modalities and any classes,
  including classes the run never saw: labels are metadata, kept as they are;
* a loose folder (format ``files``): every file under it, flat or nested, is one item whose
  modality comes from its extension or its first bytes (:mod:`dcinet.data.kinds`). Items are
  unlabelled, or (``labels="folder"``) labelled by the name of the folder they sit in.

Unlabelled items carry :data:`~dcinet.data.records.UNLABELLED` and an empty class name. Nothing is
left out silently: files of an unknown kind, or of a modality the run was not trained on, are
refused in one line unless the caller asked to leave them out, and then they are counted in
:attr:`AnyFolder.notes`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dcinet.config import FORMATS
from dcinet.data.kinds import file_modality
from dcinet.data.reader_common import require_root
from dcinet.data.readers import read_collection
from dcinet.data.records import MODALITIES, SPLITS, UNLABELLED, Sample
from dcinet.errors import DcinetError

LOOSE = "files"
"""The format name of a loose folder of files."""
GALLERY_FORMATS: tuple[str, ...] = (*FORMATS, LOOSE)
ALL_SPLITS = "all"
LABEL_MODES = ("none", "folder")


@dataclass
class AnyFolder:
    """The items of a folder to embed.

    Attributes:
        samples: the items, modality-major in canonical order, each modality in reading order.
        classes: the class names (``classes[label]``); empty when nothing is labelled.
        format: the layout read: one of :data:`GALLERY_FORMATS`.
        notes: lines saying what was left out at the caller's request (printed by the CLI).
    """

    samples: list[Sample]
    classes: list[str]
    format: str
    notes: list[str] = field(default_factory=list)


def is_dataset_layout(root: Path) -> bool:
    """Whether ``root`` holds modality folders (``ROOT/image``, ``ROOT/audio``...) with split
    folders inside: the ``folder`` dataset layout."""
    return any((root / m).is_dir() and any((root / m / s).is_dir() for s in SPLITS)
               for m in MODALITIES)


def read_any(root: Path | str, model_modalities: list[str], fmt: str | None = None,
             split: str = ALL_SPLITS, modalities: list[str] | None = None, labels: str = "none",
             skip_unknown: bool = False, read_options: dict | None = None) -> AnyFolder:
    """The items of ``root`` a model trained on ``model_modalities`` can embed.

    Args:
        fmt: one of :data:`GALLERY_FORMATS`; None = ``folder`` when :func:`is_dataset_layout`,
            else ``files``.
        split: a dataset's split to read (one of :data:`~dcinet.data.records.SPLITS`) or
            ``all``; a loose folder has no splits (only ``all``).
        modalities: the modalities wanted (default: every one found); items of the others are
            left out and counted in the notes.
        labels: loose folders only: ``none`` (unlabelled) or ``folder`` (the parent folder's
            name; files directly in ``root`` stay unlabelled).
        skip_unknown: loose folders only: leave out files of an unknown kind (counted in the
            notes) instead of refusing the folder.
        read_options: ``lists_dir``, ``num_classes`` (fgxmedia), ``train_flag`` (cub).

    Raises:
        DcinetError: no such folder, a bad option, a file of an unknown kind, items of a modality
            the model was not trained on (unless ``modalities`` leaves them out), or no item.
    """
    root = Path(root)
    require_root(root)
    if labels not in LABEL_MODES:
        raise DcinetError(f"labels must be one of {', '.join(LABEL_MODES)}, got {labels!r}")
    if split != ALL_SPLITS and split not in SPLITS:
        raise DcinetError(f"split must be one of {', '.join(SPLITS)} or {ALL_SPLITS}, got {split!r}")
    for m in modalities or []:
        if m not in model_modalities:
            raise DcinetError(f"--modalities {m}: the run was trained on "
                              f"{', '.join(model_modalities)} only")
    fmt = fmt or ("folder" if is_dataset_layout(root) else LOOSE)
    if fmt not in GALLERY_FORMATS:
        raise DcinetError(f"unknown format {fmt!r}; choose one of {', '.join(GALLERY_FORMATS)}")
    if fmt == LOOSE:
        if split != ALL_SPLITS:
            raise DcinetError(f"{root} is not in the dataset layout (ROOT/<modality>/<split>/"
                              f"<class>/<file>), so it has no '{split}' split; leave out --split")
        samples, notes = _read_loose(root, labels, skip_unknown)
        classes = sorted({s.class_name for s in samples if s.label != UNLABELLED})
        index = {name: i for i, name in enumerate(classes)}
        samples = [s if s.label == UNLABELLED else _relabel(s, index[s.class_name]) for s in samples]
    else:
        if labels != "none" or skip_unknown:
            raise DcinetError("--labels and --skip-unknown apply to loose folders (format files), "
                              f"not to the {fmt} layout, whose labels are its class folders")
        collection = read_collection(root, fmt, **(read_options or {}))
        samples, classes, notes = collection.samples, collection.classes, []
        if split != ALL_SPLITS:
            samples = [s for s in samples if s.split == split]
    samples, left_out = _pick_modalities(samples, model_modalities, modalities, root)
    notes += left_out
    if not samples:
        where = "" if split == ALL_SPLITS else f" in its '{split}' split"
        raise DcinetError(f"{root} holds no {' / '.join(modalities or model_modalities)} items"
                          f"{where}")
    return AnyFolder(samples, classes, fmt, notes)


def _relabel(sample: Sample, label: int) -> Sample:
    return Sample(sample.modality, sample.split, label, sample.class_name, sample.path)


def _read_loose(root: Path, labels: str, skip_unknown: bool) -> tuple[list[Sample], list[str]]:
    """Every visible file under ``root`` (sorted by path, hidden files and folders skipped), as
    unlabelled items of the modality :func:`~dcinet.data.kinds.file_modality` finds."""
    samples, unknown, paths = [], [], []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        paths += [Path(folder) / name for name in files if not name.startswith(".")]
    for path in sorted(paths, key=lambda p: p.relative_to(root).parts):
        modality = file_modality(path)
        if modality is None:
            unknown.append(path)
            continue
        named = labels == "folder" and path.parent != root
        samples.append(Sample(modality, "test", 0 if named else UNLABELLED,
                              path.parent.name if named else "", path))
    notes = []
    if unknown:
        if not skip_unknown:
            raise DcinetError(
                f"{len(unknown)} file(s) under {root} are neither images, audio nor .txt texts "
                f"(e.g. {unknown[0]}); remove them or pass --skip-unknown to leave them out")
        notes.append(f"left out {len(unknown)} file(s) of an unknown kind (e.g. {unknown[0]})")
    return samples, notes


def _pick_modalities(samples: list[Sample], model_modalities: list[str],
                     wanted: list[str] | None, root: Path) -> tuple[list[Sample], list[str]]:
    """The samples of the wanted modalities, canonical order; the others refused (a modality the
    model does not know and the caller did not leave out) or counted in a note."""
    found = Counter(s.modality for s in samples)
    foreign = [m for m in MODALITIES if found[m] and m not in model_modalities]
    if foreign and wanted is None:
        raise DcinetError(
            f"{root} holds {found[foreign[0]]} {foreign[0]} item(s), but the run was trained on "
            f"{', '.join(model_modalities)} only; pass --modalities "
            f"{' '.join(m for m in model_modalities if found[m]) or model_modalities[0]} "
            f"to leave them out")
    keep = wanted or model_modalities
    notes = [f"left out {found[m]} {m} item(s) (not in --modalities)"
             for m in MODALITIES if found[m] and m not in keep]
    ordered = [s for m in MODALITIES if m in keep for s in samples if s.modality == m]
    return ordered, notes
