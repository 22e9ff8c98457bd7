"""``index``: FAISS indexes over L2-normalised embeddings, one per modality, metadata beside them.

Cosine similarity is the inner product of L2-normalised vectors (normalised with
:func:`~dcinet.retrieval.scores.l2_normalize`, as ``evaluate`` does). ``flat`` (default) is exact;
``ivf`` (an inverted file of ``nlist`` k-means cells, ``nprobe`` of them visited per query) is
approximate and meant for large galleries only. Layout of ``INDEX_DIR``:

* ``index.json`` — kind, dimension, per-modality counts, ``nlist``/``nprobe``, the feature and
  the run / weights (with sha256) that produced the embeddings, so that queries are embedded by
  the same model with the same preprocessing;
* ``<modality>.faiss`` — the index of that modality's gallery;
* ``<modality>.jsonl`` — its metadata, line ``i`` = FAISS id ``i`` (copied from ``EMB_DIR``).

Indexes are loaded memory-mapped (``faiss.IO_FLAG_MMAP``), so a big gallery is paged in on demand.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcinet.errors import DcinetError
from dcinet.files import atomic_write_bytes
from dcinet.retrieval.embed import load_embeddings, read_manifest

INDEX_FILE = "index.json"
KINDS = ("flat", "ivf")
ADD_BLOCK = 65536
"""Rows normalised and added per step, so the embeddings never need to be in memory at once."""


def default_nlist(n: int) -> int:
    """IVF cells for ``n`` vectors: about ``4 sqrt(n)``, at most one per 39 training vectors."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def normalized(x: np.ndarray) -> np.ndarray:
    """Rows of ``(N, D)`` scaled to unit L2 norm (zero rows stay zero); C-contiguous float32."""
    from dcinet.retrieval.scores import l2_normalize

    return np.ascontiguousarray(l2_normalize(np.array(x, dtype=np.float32)).numpy())


def build_faiss(vectors: np.ndarray, kind: str = "flat", nlist: int | None = None,
                nprobe: int = 8, seed: int = 0):
    """An inner-product FAISS index over the L2-normalised rows of ``vectors`` (float (N, D)).

    ``ivf`` trains its coarse quantiser (k-means, ``seed``) on up to ``256 * nlist`` rows spread
    evenly over the gallery; ``nlist`` defaults to :func:`default_nlist`, ``nprobe`` is capped
    at ``nlist``. Rows are added in blocks of :data:`ADD_BLOCK`; FAISS id ``i`` = row ``i``.
    """
    import faiss

    if kind not in KINDS:
        raise DcinetError(f"index kind must be one of {', '.join(KINDS)}, got {kind!r}")
    n, dim = vectors.shape
    if n == 0:
        raise DcinetError("cannot index an empty gallery")
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = nlist or default_nlist(n)
        if not 1 <= nlist <= n:
            raise DcinetError(f"nlist must be between 1 and the gallery size ({n}), got {nlist}")
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        train_rows = np.linspace(0, n - 1, min(n, 256 * nlist)).astype(np.int64)
        index.train(normalized(vectors[np.unique(train_rows)]))
        index.nprobe = max(1, min(nprobe, nlist))
    for start in range(0, n, ADD_BLOCK):
        index.add(normalized(vectors[start:start + ADD_BLOCK]))
    return index


def build_index(emb_dir: Path, out: Path, kind: str = "flat", modalities: list[str] | None = None,
                nlist: int | None = None, nprobe: int = 8) -> dict:
    """``dcinet index``: one FAISS index per modality of a complete ``EMB_DIR``.

    Args:
        modalities: the gallery modalities to index (default: all in ``EMB_DIR``).
        nlist, nprobe: ``ivf`` only (see :func:`build_faiss`); ``nlist`` applies to every
            modality (capped at its size) and defaults per modality to :func:`default_nlist`.
    Returns:
        The index description (also in ``out/index.json``).
    """
    import faiss

    emb_dir, out = Path(emb_dir), Path(out)
    manifest = read_manifest(emb_dir)
    available = list(manifest["modalities"])
    chosen = modalities or available
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise DcinetError(f"{emb_dir} has no {', '.join(unknown)} embeddings "
                          f"(it has {', '.join(available)})")
    if (out / INDEX_FILE).exists():
        shutil.rmtree(out)  # rebuilding an index replaces it
    elif out.exists() and any(out.iterdir()):
        raise DcinetError(f"{out} exists and is not an index folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    counts, params = {}, {}
    for modality in [m for m in available if m in chosen]:
        features, metadata = load_embeddings(emb_dir, modality)
        size = len(metadata)
        index = build_faiss(features, kind, min(nlist, size) if nlist else None, nprobe)
        faiss.write_index(index, str(out / f"{modality}.faiss"))
        shutil.copyfile(emb_dir / f"{modality}.jsonl", out / f"{modality}.jsonl")
        counts[modality] = size
        if kind == "ivf":
            params[modality] = {"nlist": index.nlist, "nprobe": index.nprobe}
    info = {"kind": kind, "metric": "cosine (inner product of L2-normalised vectors)",
            "dim": int(next(iter(manifest["modalities"].values()))["dim"]), "counts": counts,
            "ivf": params, "embeddings": str(emb_dir.resolve()),
            **{k: manifest[k] for k in ("run_dir", "weights", "weights_sha256", "feature", "split",
                                        "data_root", "classes")}}
    atomic_write_bytes(out / INDEX_FILE, json.dumps(info, indent=1).encode())
    return info


@dataclass
class LoadedIndex:
    """An ``INDEX_DIR`` in memory: description, FAISS index and metadata per modality."""

    path: Path
    info: dict
    indexes: dict
    metadata: dict[str, list[dict]]

    @property
    def modalities(self) -> list[str]:
        """The gallery modalities, canonical order."""
        return list(self.indexes)

    def lookup(self, vector: np.ndarray, k: int, modality: str, nprobe: int | None = None
               ) -> list[tuple[float, int]]:
        """Top ``k`` of one modality's gallery for a query vector.

        Args:
            vector: float ``(D,)``, normalised here.
            nprobe: ``ivf`` cells to visit (default: the index's).
        Returns:
            ``(cosine score, row)`` pairs, best first (fewer than ``k`` for a small gallery).
        """
        import faiss

        index = self.indexes[modality]
        query = normalized(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        if nprobe is not None and self.info["kind"] == "ivf":
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            scores, ids = index.search(query, min(k, index.ntotal), params=params)
        else:
            scores, ids = index.search(query, min(k, index.ntotal))
        return [(float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]


def load_index(index_dir: Path, mmap: bool = True) -> LoadedIndex:
    """Read an ``INDEX_DIR`` (FAISS files memory-mapped when ``mmap``)."""
    import faiss

    index_dir = Path(index_dir)
    if not (index_dir / INDEX_FILE).is_file():
        raise DcinetError(f"{index_dir} is not a dcinet index (no {INDEX_FILE}); "
                          "build one with `dcinet index`")
    try:
        info = json.loads((index_dir / INDEX_FILE).read_text(encoding="utf-8"))
    except ValueError:
        raise DcinetError(f"{index_dir / INDEX_FILE} is corrupt") from None
    indexes, metadata = {}, {}
    for modality, count in info["counts"].items():
        path = index_dir / f"{modality}.faiss"
        try:
            indexes[modality] = faiss.read_index(str(path), faiss.IO_FLAG_MMAP if mmap else 0)
        except RuntimeError as exc:
            raise DcinetError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
        with open(index_dir / f"{modality}.jsonl", encoding="utf-8") as fh:
            metadata[modality] = [json.loads(line) for line in fh]
        if indexes[modality].ntotal != count or len(metadata[modality]) != count:
            raise DcinetError(f"{index_dir}: {modality} index, metadata and index.json disagree "
                              "on the gallery size; rebuild the index")
    return LoadedIndex(index_dir, info, indexes, metadata)
