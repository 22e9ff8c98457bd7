"""``index``: a gallery of L2-normalised embeddings in an index backend, described by
``INDEX_DIR/index.json``.

Cosine similarity is the inner product of L2-normalised vectors (normalised with
:func:`~dcinet.retrieval.gallery.normalized`, as ``evaluate`` does). The backend is FAISS (the
default, files in ``INDEX_DIR``: :mod:`~dcinet.retrieval.backends.faiss`) or Milvus (Milvus Lite
inside ``INDEX_DIR``, or a server: :mod:`~dcinet.retrieval.backends.milvus`); both are
:class:`~dcinet.retrieval.gallery.Gallery` objects. Kinds: ``flat`` (exact, default), ``ivf``
(approximate, for large galleries), ``ivfpq`` (FAISS only: compressed, for galleries whose
vectors do not fit in memory).

``index.json`` records the backend, kind, dimension, per-modality counts and next free rows, the
build options, the feature and the run / weights (with sha256) that produced the embeddings, so
that queries are embedded by the same model with the same preprocessing and appended embeddings
are refused unless the same model made them. Embeddings are read in blocks of
:data:`ADD_BLOCK` rows (:class:`NpyRows`), so they are never in memory at once.
"""

from __future__ import annotations

import json
import os
import shutil
from itertools import islice
from pathlib import Path

import numpy as np

from dcinet.data.records import MODALITIES, UNLABELLED
from dcinet.errors import DcinetError
from dcinet.files import atomic_write_bytes
from dcinet.retrieval.backends import gallery_class
from dcinet.retrieval.embed import read_manifest
from dcinet.retrieval.gallery import Gallery, normalized

INDEX_FILE = "index.json"
ADD_BLOCK = 65536
"""Embedding rows read, normalised and added per step."""
MODEL_KEYS = ("run_dir", "weights", "weights_sha256", "feature", "split", "data_root")
SAME_MODEL = ("weights_sha256", "feature")


def read_info(index_dir: Path) -> dict:
    """``INDEX_DIR/index.json``; an index written before backends existed reads as FAISS."""
    path = Path(index_dir) / INDEX_FILE
    if not path.is_file():
        raise DcinetError(f"{index_dir} is not a dcinet index (no {INDEX_FILE}); "
                          "build one with `dcinet index`")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise DcinetError(f"{path} is corrupt") from None
    info.setdefault("backend", "faiss")
    info.setdefault("build", {"nlist": None, "nprobe": 8, "pq_m": None, "uri": None})
    info.setdefault("next_row", dict(info["counts"]))
    info.setdefault("appended", [])
    return info


def open_gallery(index_dir: Path, writable: bool = False) -> Gallery:
    """The gallery of an ``INDEX_DIR``, for searching or (``writable``) for changing."""
    info = read_info(index_dir)
    return gallery_class(info["backend"])(Path(index_dir), info, writable)


def _save(index_dir: Path, gallery: Gallery) -> dict:
    """Commit the gallery's changes, then record its counts in ``index.json``; returns the info."""
    gallery.commit()
    counts = gallery.counts()
    gallery.info["counts"] = {m: counts[m] for m in MODALITIES if m in counts}
    atomic_write_bytes(Path(index_dir) / INDEX_FILE, json.dumps(gallery.info, indent=1).encode())
    return gallery.info


class NpyRows:
    """A float ``(N, D)`` ``.npy`` file read by rows with positioned reads: ``rows[i:j]`` (one
    read) or ``rows[index_array]`` (one read per row). Nothing is memory-mapped, so the pages
    read stay in the kernel's page cache and never count in the process's memory (a memory map
    keeps every page it touched resident while it lives, and readahead around scattered rows, as
    index training reads them, touches most of the file).

    Attributes:
        shape, dtype: the array's.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(fh)
            self.offset = fh.tell()
        if len(shape) != 2 or fortran_order:
            raise DcinetError(f"{self.path} is not a C-ordered (N, D) array")
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.row_bytes = shape[1] * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice | np.ndarray) -> np.ndarray:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if isinstance(rows, slice):
                start, stop, step = rows.indices(len(self))
                if step != 1:
                    raise ValueError("NpyRows reads contiguous slices only")
                out = np.empty((max(0, stop - start), self.shape[1]), self.dtype)
                self._read_into(fd, out, self.offset + start * self.row_bytes)
                return out
            wanted = np.asarray(rows, dtype=np.int64)
            out = np.empty((len(wanted), self.shape[1]), self.dtype)
            for k, row in enumerate(wanted.tolist()):
                self._read_into(fd, out[k], self.offset + row * self.row_bytes)
            return out
        finally:
            os.close(fd)

    def _read_into(self, fd: int, out: np.ndarray, offset: int) -> None:
        """Fill the contiguous array ``out`` with the file's bytes from ``offset``."""
        view, done = memoryview(out.reshape(-1).view(np.uint8)), 0
        while done < len(view):
            got = os.preadv(fd, [view[done:]], offset + done)
            if got == 0:
                raise DcinetError(f"{self.path} ends at byte {offset + done}: a cut file?")
            done += got


def _class_map(info: dict, emb_classes: list[str]) -> dict[int | None, int]:
    """The index's label of each label of an ``EMB_DIR`` (its class names added to the index's
    ``classes`` when new), and :data:`~dcinet.data.records.UNLABELLED` for an unlabelled item."""
    position = {name: i for i, name in enumerate(info["classes"])}
    for name in emb_classes:
        if name not in position:
            position[name] = len(info["classes"])
            info["classes"].append(name)
    return {None: UNLABELLED, **{i: position[name] for i, name in enumerate(emb_classes)}}


def _stored(item: dict, row: int, labels: dict[int | None, int]) -> dict:
    """An ``embed`` metadata line as the gallery stores it: its row in the index, its label in the
    index's classes (unlabelled: ``-1`` and class name ``""``, as every backend can filter)."""
    return {**item, "row": row, "label": labels[item["label"]],
            "class_name": item["class_name"] or ""}


def _fill(gallery: Gallery, emb_dir: Path, modalities: list[str]) -> None:
    """Add the embeddings of ``modalities`` of ``emb_dir`` in blocks, rows numbered from each
    modality's next free row, labels mapped into the index's classes."""
    manifest = read_manifest(emb_dir)
    labels = _class_map(gallery.info, manifest["classes"])
    for modality in [m for m in MODALITIES if m in modalities]:
        vectors = NpyRows(emb_dir / f"{modality}.npy")
        shape = (manifest["modalities"][modality]["count"], gallery.info["dim"])
        if vectors.shape != shape or vectors.dtype != np.float32:
            raise DcinetError(f"{emb_dir / f'{modality}.npy'} is {vectors.shape} "
                              f"{vectors.dtype}, expected float32 {shape}")
        gallery.prepare(modality, vectors)
        first = gallery.info["next_row"].get(modality, 0)
        with open(emb_dir / f"{modality}.jsonl", encoding="utf-8") as fh:
            for start in range(0, len(vectors), ADD_BLOCK):
                block = vectors[start:start + ADD_BLOCK]
                items = [_stored(json.loads(line), first + start + i, labels)
                         for i, line in enumerate(islice(fh, len(block)))]
                last = start + len(block) == len(vectors)
                if len(items) != len(block) or (last and fh.readline()):
                    raise DcinetError(f"{emb_dir}: {modality}.jsonl and {modality}.npy disagree "
                                      "on the number of rows")
                gallery.add(modality, normalized(block), items)
        gallery.info["next_row"][modality] = first + len(vectors)


def build_index(emb_dir: Path, out: Path, kind: str = "flat", modalities: list[str] | None = None,
                nlist: int | None = None, nprobe: int = 8, backend: str = "faiss",
                uri: str | None = None, pq_m: int | None = None) -> dict:
    """``dcinet index EMB --out INDEX``: a gallery of (some modalities of) a complete ``EMB_DIR``.

    Args:
        kind: ``flat``, ``ivf`` or ``ivfpq`` (FAISS only).
        modalities: the gallery modalities to index (default: all in ``EMB_DIR``).
        nlist, nprobe: IVF cells and cells visited per query; FAISS applies ``nlist`` to every
            modality (capped at its size), default per modality (Milvus: for the whole
            collection) :func:`~dcinet.retrieval.gallery.default_nlist`.
        backend: ``faiss`` or ``milvus``. uri: ``milvus`` only: a Milvus server (default:
            Milvus Lite in ``out``).
        pq_m: ``ivfpq`` codes per vector (default ``dim / 8`` rounded to a divisor).
    Returns:
        The index description (also in ``out/index.json``). Rebuilding an index replaces it.
    """
    emb_dir, out = Path(emb_dir), Path(out)
    if uri is not None and backend != "milvus":
        raise DcinetError("--uri is for --backend milvus")
    if pq_m is not None and kind != "ivfpq":
        raise DcinetError("--pq-m is for --kind ivfpq")
    cls = gallery_class(backend)
    manifest = read_manifest(emb_dir)
    available = list(manifest["modalities"])
    chosen = modalities or available
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise DcinetError(f"{emb_dir} has no {', '.join(unknown)} embeddings "
                          f"(it has {', '.join(available)})")
    if (out / INDEX_FILE).exists():
        old = read_info(out)
        gallery_class(old["backend"]).drop(out, old)
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise DcinetError(f"{out} exists and is not an index folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    info = {"backend": backend, "kind": kind,
            "metric": "cosine (inner product of L2-normalised vectors)",
            "dim": int(next(iter(manifest["modalities"].values()))["dim"]), "counts": {},
            "next_row": {}, "build": {"nlist": nlist, "nprobe": nprobe, "pq_m": pq_m, "uri": uri,
                                      "total": sum(manifest["modalities"][m]["count"]
                                                   for m in chosen)},
            "embeddings": str(emb_dir.resolve()), "appended": [],
            **{k: manifest[k] for k in MODEL_KEYS}, "classes": []}  # filled by _fill
    gallery = cls.create(out, info)
    _fill(gallery, emb_dir, chosen)
    return _save(out, gallery)


def append_index(index_dir: Path, emb_dir: Path) -> dict:
    """``dcinet index INDEX --append EMB``: add every modality of another complete ``EMB_DIR``
    embedded by the same model (weights sha256, feature); its items get the next free rows.

    Returns:
        The updated index description.
    """
    index_dir, emb_dir = Path(index_dir), Path(emb_dir)
    manifest = read_manifest(emb_dir)
    gallery = open_gallery(index_dir, writable=True)
    info = gallery.info
    differ = [k for k in SAME_MODEL if manifest[k] != info[k]]
    dims = {m["dim"] for m in manifest["modalities"].values()}
    if differ or dims != {info["dim"]}:
        what = ", ".join(differ) or "dimension"
        raise DcinetError(f"{emb_dir} was embedded by another model than {index_dir} "
                          f"({what} differ); embed it with the index's run")
    _fill(gallery, emb_dir, list(manifest["modalities"]))
    info["appended"].append(str(emb_dir.resolve()))
    return _save(index_dir, gallery)


def delete_items(index_dir: Path, keys: list[tuple[str, int]]) -> dict:
    """``dcinet index INDEX --delete ID,...``: remove the items ``(modality, row)``; none is
    removed when one is missing. Returns the updated index description."""
    gallery = open_gallery(Path(index_dir), writable=True)
    gallery.delete(keys)
    return _save(Path(index_dir), gallery)
