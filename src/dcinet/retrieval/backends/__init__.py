"""Index backends: each a :class:`~dcinet.retrieval.gallery.Gallery` class in its own module, with
``create(path, info)`` (a new, empty gallery) and ``drop(path, info)`` (what an index being
rebuilt leaves outside ``INDEX_DIR``) beside the protocol's methods."""

from __future__ import annotations

from dcinet.errors import DcinetError

BACKENDS = ("faiss", "milvus")
"""``faiss`` (the default): files in ``INDEX_DIR``; ``milvus``: Milvus Lite or a Milvus server."""


def gallery_class(backend: str) -> type:
    """The gallery class of ``backend`` (imported on demand: pymilvus is an optional extra)."""
    if backend == "faiss":
        from dcinet.retrieval.backends.faiss import FaissGallery

        return FaissGallery
    if backend == "milvus":
        try:
            from dcinet.retrieval.backends.milvus import MilvusGallery
        except ImportError:
            raise DcinetError("the milvus backend needs pymilvus: "
                              "pip install 'dcinet[milvus]'") from None
        return MilvusGallery
    raise DcinetError(f"index backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
