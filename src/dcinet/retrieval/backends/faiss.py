"""FAISS backend (the default): one inner-product index per modality, its items beside it.

Kinds: ``flat`` (exact; ``IndexIDMap`` over ``IndexFlatIP``), ``ivf`` (``IndexIVFFlat``:
``nlist`` k-means cells, ``nprobe`` of them visited per query) and ``ivfpq`` (``IndexIVFPQ``:
each vector stored as ``pq_m`` one-byte codes, for galleries whose vectors do not fit in memory;
approximate scores). The FAISS id of a vector is its item's row. Files in ``INDEX_DIR``, per
modality, named ``<modality>`` + suffix as built and ``<modality>.<generation>`` + suffix after
changes (``index.json`` names the current generation, so a change takes effect at once or not
at all, and a running search keeps reading the files it opened):

* ``.faiss`` — the index (read memory-mapped, ``faiss.IO_FLAG_MMAP``, for searching);
* ``.jsonl`` + ``.rows.npy`` — the items and their table (:mod:`~dcinet.retrieval.backends.items`).

Opened ``writable`` (append, delete), the index is read into memory and the items are streamed
from the old files to the new ones. Indexes written before items had ids (a bare
``IndexFlatIP``, ids = positions = rows) are searched as before and refused for changes.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np

from dcinet.data.records import MODALITIES
from dcinet.errors import DcinetError
from dcinet.files import atomic_write_file
from dcinet.retrieval.backends.items import TABLE, ItemFile, table_entries, write_items
from dcinet.retrieval.gallery import Found, best, default_nlist, normalized

KINDS = ("flat", "ivf", "ivfpq")
ADD_BLOCK = 65536
"""Rows normalised and added per step, so the vectors never need to be in memory at once."""
TRAIN_PER_CELL = 256
"""Training rows per IVF cell (FAISS's k-means uses at most this many)."""
PQ_BITS = 8
PQ_TRAIN = 64 * 2 ** PQ_BITS
"""Training rows the product quantiser gets at least (when the gallery has them)."""


def default_pq_m(dim: int) -> int:
    """Product-quantiser codes per vector: the largest divisor of ``dim`` not above ``dim / 8``
    (8 dimensions per one-byte code; FAISS trains 4-dimensional codebooks about 10x slower)."""
    return max([m for m in range(1, dim // 8 + 1) if dim % m == 0], default=1)


def empty_index(kind: str, dim: int, n: int, nlist: int | None = None, nprobe: int = 8,
                pq_m: int | None = None, seed: int = 0):
    """An untrained inner-product index for ``n`` vectors of ``dim`` floats (see the module).

    ``nlist`` defaults to :func:`~dcinet.retrieval.gallery.default_nlist`, ``nprobe`` is capped
    at ``nlist``, ``pq_m`` (``ivfpq``) defaults to :func:`default_pq_m`; ``seed``: k-means.
    """
    import faiss

    if kind not in KINDS:
        raise DcinetError(f"index kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if n == 0:
        raise DcinetError("cannot index an empty gallery")
    if kind == "flat":
        return faiss.IndexIDMap(faiss.IndexFlatIP(dim))
    nlist = nlist or default_nlist(n)
    if not 1 <= nlist <= n:
        raise DcinetError(f"nlist must be between 1 and the gallery size ({n}), got {nlist}")
    quantizer = faiss.IndexFlatIP(dim)
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        pq_m = pq_m or default_pq_m(dim)
        if dim % pq_m:
            raise DcinetError(f"--pq-m must divide the dimension ({dim}), got {pq_m}")
        if n < 2 ** PQ_BITS:
            raise DcinetError(f"ivfpq needs at least {2 ** PQ_BITS} vectors to train its codes, "
                              f"the gallery has {n}; use flat or ivf")
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, PQ_BITS, faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.seed = seed
    index.cp.seed = seed
    index.nprobe = max(1, min(nprobe, nlist))
    return index


def train_index(index, vectors: np.ndarray) -> None:
    """Train an IVF index on up to ``256 * nlist`` rows of ``vectors`` (float ``(N, D)``, may be
    memory-mapped: only those rows are read) spread evenly over them, and at least
    :data:`PQ_TRAIN` for ``ivfpq``; flat needs nothing."""
    import faiss

    if index.is_trained:
        return
    n, want = len(vectors), TRAIN_PER_CELL * index.nlist
    if isinstance(index, faiss.IndexIVFPQ):
        want = max(want, PQ_TRAIN)
    rows = np.unique(np.linspace(0, n - 1, min(n, want)).astype(np.int64))
    index.train(normalized(vectors[rows]))


def build_faiss(vectors: np.ndarray, kind: str = "flat", nlist: int | None = None,
                nprobe: int = 8, seed: int = 0, pq_m: int | None = None):
    """An index over the L2-normalised rows of ``vectors`` (float ``(N, D)``), FAISS id ``i`` =
    row ``i``, added in blocks of :data:`ADD_BLOCK` (see :func:`empty_index`)."""
    index = empty_index(kind, vectors.shape[1], len(vectors), nlist, nprobe, pq_m, seed)
    train_index(index, vectors)
    for start in range(0, len(vectors), ADD_BLOCK):
        block = normalized(vectors[start:start + ADD_BLOCK])
        index.add_with_ids(block, np.arange(start, start + len(block), dtype=np.int64))
    return index


def _search_params(index, selector, nprobe: int | None):
    """FAISS search parameters for a selector and IVF cells; None when the index's own do."""
    import faiss

    options = {"sel": selector} if selector is not None else {}
    if isinstance(index, faiss.IndexIVF) and (options or nprobe is not None):
        return faiss.SearchParametersIVF(nprobe=nprobe or index.nprobe, **options)
    return faiss.SearchParameters(**options) if options else None


class FaissGallery:
    """The FAISS :class:`~dcinet.retrieval.gallery.Gallery` of an ``INDEX_DIR``.

    Args:
        path: the ``INDEX_DIR``. info: its description (``counts``: the modalities to open;
            ``generation``: which files are current, see the module).
        writable: open for :meth:`prepare` / :meth:`add` / :meth:`delete` + :meth:`commit`; the
            files of other generations (left by a change that did not finish) are removed.
    """

    def __init__(self, path: Path, info: dict, writable: bool = False) -> None:
        import faiss

        self.path, self.info = Path(path), info
        self._indexes, self._items, self._selectors = {}, {}, {}
        self._added_lines: dict[str, tempfile.SpooledTemporaryFile] = {}
        self._added: dict[str, list[np.ndarray]] = {}
        self._deleted: dict[str, set[int]] = {}
        generation = info.setdefault("generation", {})
        for modality, count in info["counts"].items():
            stem = self._stem(modality, generation.get(modality, 0))
            file = stem.with_name(stem.name + ".faiss")
            try:
                index = faiss.read_index(str(file), 0 if writable else faiss.IO_FLAG_MMAP)
            except RuntimeError as exc:
                raise DcinetError(f"cannot read {file}: {str(exc).splitlines()[0]}") from None
            self._indexes[modality] = index
            self._items[modality] = ItemFile(stem)
            if not index.ntotal == count == len(self._items[modality]):
                raise DcinetError(f"{self.path}: {modality} index, items and index.json disagree "
                                  "on the gallery size; rebuild the index")
        if writable:
            self._remove_stale()

    def _stem(self, modality: str, generation: int) -> Path:
        """``INDEX_DIR/<modality>`` (generation 0) or ``INDEX_DIR/<modality>.<generation>``."""
        return self.path / (modality if generation == 0 else f"{modality}.{generation}")

    def _remove_stale(self) -> None:
        for modality in MODALITIES:
            current = set()
            if modality in self.info["counts"]:
                stem = self._stem(modality, self.info["generation"].get(modality, 0)).name
                current = {stem + suffix for suffix in (".faiss", ".jsonl", ".rows.npy")}
            for file in self.path.glob(f"{modality}.*"):
                if file.name not in current:
                    file.unlink()

    @classmethod
    def create(cls, path: Path, info: dict) -> FaissGallery:
        """A new, empty gallery in ``path`` (its indexes are made by :meth:`prepare`)."""
        info["ivf"] = {}
        return cls(path, info, writable=True)

    @staticmethod
    def drop(path: Path, info: dict) -> None:
        """Nothing outside ``path`` to remove."""

    def lookup(self, vector: np.ndarray, k: int, modalities: list[str], label: int | None = None,
               nprobe: int | None = None) -> Found:
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        found = []
        for modality in modalities:
            index = self._indexes[modality]
            selector = None if label is None else self._selector(modality, label)
            if index.ntotal == 0 or (label is not None and selector is None):
                continue
            scores, ids = index.search(query, min(k, index.ntotal),
                                       params=_search_params(index, selector, nprobe))
            items = self._items[modality]
            found += [(float(s), items.get(int(i))) for s, i in zip(scores[0], ids[0], strict=True)
                      if i >= 0]
        return best(found, k)

    def _selector(self, modality: str, label: int):
        """The FAISS selector of the rows of class ``label`` in ``modality`` (cached), or None
        when it has none."""
        import faiss

        if (modality, label) not in self._selectors:
            rows = self._items[modality].rows_of(label)
            self._selectors[modality, label] = faiss.IDSelectorBatch(rows) if len(rows) else None
        return self._selectors[modality, label]

    def item(self, modality: str, row: int) -> dict | None:
        items = self._items.get(modality)
        return items.get(row) if items is not None else None

    def prepare(self, modality: str, vectors: np.ndarray) -> None:
        if modality in self._indexes:
            return
        options = self.info["build"]
        index = empty_index(self.info["kind"], vectors.shape[1], len(vectors),
                            min(options["nlist"], len(vectors)) if options["nlist"] else None,
                            options["nprobe"], options["pq_m"])
        train_index(index, vectors)
        self._indexes[modality] = index
        if self.info["kind"] != "flat":
            self.info["ivf"][modality] = {"nlist": index.nlist, "nprobe": index.nprobe}
        if self.info["kind"] == "ivfpq":
            self.info["ivf"][modality]["pq_m"] = index.pq.M

    def _changeable(self, modality: str):
        import faiss

        index = self._indexes[modality]
        if isinstance(index, faiss.IndexFlat):
            raise DcinetError(f"{self.path} was built by an earlier dcinet (its items have no "
                              "ids); rebuild it with `dcinet index` to append or delete")
        return index

    def add(self, modality: str, vectors: np.ndarray, items: list[dict]) -> None:
        rows = np.array([it["row"] for it in items], dtype=np.int64)
        self._changeable(modality).add_with_ids(vectors, rows)
        lines = [(json.dumps(it) + "\n").encode("utf-8") for it in items]
        spool = self._added_lines.setdefault(
            modality, tempfile.SpooledTemporaryFile(max_size=1 << 24, mode="w+b"))
        spool.writelines(lines)
        self._added.setdefault(modality, []).append(table_entries(lines, items))

    def delete(self, keys: list[tuple[str, int]]) -> None:
        import faiss

        wanted: dict[str, list[int]] = {}
        for modality, row in keys:
            wanted.setdefault(modality, []).append(row)
        for modality, rows in wanted.items():
            missing = rows if modality not in self._items else self._items[modality].missing(rows)
            if missing:
                raise DcinetError(f"no item {modality}/{missing[0]} in {self.path}")
            self._changeable(modality)
        for modality, rows in wanted.items():
            self._indexes[modality].remove_ids(faiss.IDSelectorBatch(np.array(rows, np.int64)))
            self._deleted.setdefault(modality, set()).update(rows)

    def counts(self) -> dict[str, int]:
        return {m: int(index.ntotal) for m, index in self._indexes.items()}

    def commit(self) -> None:
        """Write the changed modalities as a new generation of files; they become current when
        ``index.json`` (written by the caller) names them."""
        import faiss

        for modality in [m for m in MODALITIES if m in {*self._added, *self._deleted}]:
            old = self._items.get(modality)
            generation = self.info["generation"].get(modality, 0) + 1 if old is not None else 0
            stem = self._stem(modality, generation)
            added = self._added.get(modality, [])
            write_items(stem, old, self._deleted.get(modality, set()),
                        self._added_lines.get(modality, io.BytesIO()),
                        np.concatenate(added) if added else np.zeros(0, TABLE))
            atomic_write_file(stem.with_name(stem.name + ".faiss"),
                              lambda tmp, m=modality: faiss.write_index(self._indexes[m], str(tmp)))
            self.info["generation"][modality] = generation
        self._added_lines.clear()
        self._added.clear()
        self._deleted.clear()
