"""The record type for one sample and the collection a reader returns.

Every reader (generic folders, PKU FG-XMedia lists, CUB files) produces a :class:`Collection`:
a flat list of :class:`Sample` plus the class names, so that everything downstream (checking,
loading, sampling, evaluation) is format-agnostic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MODALITIES: tuple[str, ...] = ("image", "audio", "text", "video")
"""Known modalities, in the canonical order used for batching and tables."""

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Known splits, in reading order (``val``: a layout's own validation split, see
:mod:`dcinet.data.splits`)."""

UNLABELLED = -1
"""The label of an item of no known class (a gallery's unlabelled file; its class name is ``""``)."""


@dataclass(frozen=True)
class Sample:
    """One item of one modality.

    Attributes:
        modality: one of :data:`MODALITIES`.
        split: one of :data:`SPLITS`.
        label: 0-based class index into :attr:`Collection.classes`, or :data:`UNLABELLED`.
        class_name: the class's name (folder name, list-file class, CUB class).
        path: the media file (for video: a folder of frames); ``None`` for inline text.
        text: inline text content (queries typed by a user); ``None`` when ``path`` is set.
        source: where the record came from, for error messages (``"list.txt:12"``); may be empty.
    """

    modality: str
    split: str
    label: int
    class_name: str
    path: Path | None = None
    text: str | None = None
    source: str = ""

    def describe(self) -> str:
        """A short human-readable name of the sample for messages."""
        where = str(self.path) if self.path is not None else "<inline text>"
        return f"{where} ({self.source})" if self.source else where


@dataclass
class Collection:
    """All samples of a dataset, with its class names.

    Attributes:
        classes: class names; ``classes[label]`` is the name of label ``label``.
        samples: every sample of every modality and split.
        root: the dataset root the paths are under.
        format: the reader that produced it (``folder``, ``fgxmedia``, ``cub``).
    """

    classes: list[str]
    samples: list[Sample] = field(default_factory=list)
    root: Path | None = None
    format: str = "folder"

    @property
    def modalities(self) -> list[str]:
        """Modalities present, in canonical order."""
        present = {s.modality for s in self.samples}
        return [m for m in MODALITIES if m in present]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def select(self, split: str | None = None, modality: str | None = None) -> list[Sample]:
        """The samples of one split and/or modality, in reader order."""
        return [
            s
            for s in self.samples
            if (split is None or s.split == split) and (modality is None or s.modality == modality)
        ]

    def counts(self) -> Counter:
        """Number of samples per ``(modality, split)``."""
        return Counter((s.modality, s.split) for s in self.samples)
