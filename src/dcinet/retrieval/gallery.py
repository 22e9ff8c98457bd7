"""The one interface every index backend implements (:class:`Gallery`), and what they share.

A gallery holds L2-normalised float32 vectors, each with its item: the metadata line of
``embed`` (``modality, label, class_name, path, text, source``) and ``row``, the item's number in
its modality's gallery (for the first ``EMB_DIR`` indexed: its row there; appended items get the
next free numbers; numbers of deleted items are not reused). ``modality/row`` is the item's id
(:func:`item_key`), what ``dcinet index INDEX --delete`` takes. Filters (modalities, class label)
are evaluated by the engine: FAISS through its per-modality indexes and an id selector, Milvus
through a filter expression. Callers normalise vectors (:func:`normalized`) before handing them
over.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from dcinet.data.records import MODALITIES
from dcinet.errors import DcinetError

Found = list[tuple[float, dict]]
"""``(cosine score, item)`` pairs, best first."""


def normalized(x: np.ndarray) -> np.ndarray:
    """Rows of ``(N, D)`` scaled to unit L2 norm (zero rows stay zero); C-contiguous float32."""
    from dcinet.retrieval.scores import l2_normalize

    return np.ascontiguousarray(l2_normalize(np.array(x, dtype=np.float32)).numpy())


def default_nlist(n: int) -> int:
    """IVF cells for ``n`` vectors: about ``4 sqrt(n)``, at most one per 39 training vectors."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def item_key(modality: str, row: int) -> str:
    """The id of an item: ``"<modality>/<row>"``, e.g. ``"image/3"``."""
    return f"{modality}/{row}"


def parse_keys(text: str) -> list[tuple[str, int]]:
    """``"image/3,text/5"`` -> ``[("image", 3), ("text", 5)]`` (duplicates dropped, order kept).

    Raises:
        DcinetError: an id that is not ``<modality>/<row>`` (naming it), or no id at all.
    """
    keys: dict[tuple[str, int], None] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        modality, _, row = part.partition("/")
        if modality not in MODALITIES or not row.isdigit():
            raise DcinetError(f"item id {part!r} is not MODALITY/ROW (e.g. image/3)")
        keys[modality, int(row)] = None
    if not keys:
        raise DcinetError("no item ids given (expected e.g. image/3,text/5)")
    return list(keys)


def best(found: Found, k: int) -> Found:
    """The ``k`` best of candidate pairs from one or several modalities: by score, ties in
    canonical modality order, then row."""
    return sorted(found, key=lambda f: (-f[0], MODALITIES.index(f[1]["modality"]),
                                        f[1]["row"]))[:k]


class Gallery(Protocol):
    """An index backend's gallery (FAISS: :class:`~dcinet.retrieval.backends.faiss.FaissGallery`,
    Milvus: :class:`~dcinet.retrieval.backends.milvus.MilvusGallery`).

    Attributes:
        info: the index description (``INDEX_DIR/index.json``).
    """

    info: dict

    def lookup(self, vector: np.ndarray, k: int, modalities: list[str], label: int | None = None,
               nprobe: int | None = None) -> Found:
        """The ``k`` best items of ``modalities`` (of class ``label`` when given) for a unit
        float32 ``(D,)`` vector, as :func:`best` orders them; fewer when fewer match.
        ``nprobe``: IVF cells to visit (default: the index's)."""

    def item(self, modality: str, row: int) -> dict | None:
        """The item ``modality/row``, or None when the gallery has no such item."""

    def prepare(self, modality: str, vectors: np.ndarray) -> None:
        """Ready ``modality`` for :meth:`add` (FAISS: create and train its index when absent,
        on a sample of the float ``(N, D)`` ``vectors``: an array or
        :class:`~dcinet.retrieval.index.NpyRows`)."""

    def add(self, modality: str, vectors: np.ndarray, items: list[dict]) -> None:
        """Add unit float32 ``(n, D)`` vectors with their ``n`` items (rows not yet used)."""

    def delete(self, keys: list[tuple[str, int]]) -> None:
        """Remove the items ``(modality, row)``; :class:`DcinetError` naming the first missing
        one (then nothing is removed)."""

    def counts(self) -> dict[str, int]:
        """Items per modality, for every modality the gallery has."""

    def commit(self) -> None:
        """Make the changes since opening durable (FAISS: write the files; Milvus: flush)."""
