"""Milvus backend: the whole gallery in one Milvus collection, embedded or on a server.

Without ``--uri`` the collection lives in Milvus Lite, an embedded database folder inside the
index (``INDEX_DIR/gallery.db``; one process at a time may open it). With ``--uri
http://HOST:19530`` the same client calls go to a Milvus standalone server or cluster, and
``INDEX_DIR`` only holds ``index.json`` (URI and collection name); an access token is read from
``MILVUS_TOKEN``, never from the URI (``index.json`` records the URI).

One entity per item: ``key`` (``"<modality>/<row>"``, the primary key), ``vector`` (inner
product of unit vectors = cosine), ``modality``, ``row``, ``label``, ``class_name``, ``path``,
``text``, ``source``. Modality and class filters are Milvus filter expressions. Kinds: ``flat``
(FLAT, exact) and ``ivf`` (IVF_FLAT, ``nlist`` / ``nprobe``).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from dcinet.errors import DcinetError
from dcinet.retrieval.gallery import Found, best, default_nlist, item_key

LITE_DB = "gallery.db"
INDEX_TYPES = {"flat": "FLAT", "ivf": "IVF_FLAT"}
TEXT_FIELDS = {"modality": 16, "class_name": 1024, "path": 4096, "text": 65535, "source": 4096}
"""VARCHAR fields and their byte limits (``text`` at Milvus's maximum)."""
ITEM_FIELDS = ["modality", "row", "label", "class_name", "path", "text", "source"]
CONNECT_ATTEMPTS, CONNECT_RETRY_S = 3, 2.0
"""Connection attempts, and the wait between them (a Milvus Lite server may still be starting)."""
INSERT_BATCH = 4096
"""Entities per insert request (well under gRPC's message size at any dimension we use)."""
LITE_MEMTABLE_ENV, LITE_MEMTABLE_BYTES = "MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES", 32 << 20
"""Milvus Lite's in-memory buffer before it writes a segment (its default: 128 MiB). Milvus Lite
runs in this process and turns every buffered row into Python objects when it writes one, so the
buffer sets the build's peak: 100k x 256 peaked at 938 MiB with 32 MiB, 1,604 MiB with the default
(taking ~1.4x longer). Read once, when milvus_lite is imported; a user's own value is kept."""


def _connect(uri: str):
    """A client for ``uri`` (a ``.db`` folder = Milvus Lite, else a server), on a connection of
    its own: pymilvus 3.0's shared connections fail their health check once idle for 30 s."""
    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)  # we report its failures
    lite = uri.endswith(".db")
    if lite:
        os.environ.setdefault(LITE_MEMTABLE_ENV, str(LITE_MEMTABLE_BYTES))
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            return MilvusClient(uri=uri, token=os.environ.get("MILVUS_TOKEN", ""), dedicated=True)
        except MilvusException as exc:
            failure = exc
        if attempt + 1 < CONNECT_ATTEMPTS:
            time.sleep(CONNECT_RETRY_S)  # a Milvus Lite server that is busy or still starting
    where = "Milvus Lite database" if lite else "Milvus server"
    hint = " (is another process, e.g. `dcinet serve`, using it?)" if lite else ""
    raise DcinetError(f"cannot open the {where} {uri}{hint} after {CONNECT_ATTEMPTS} attempts: "
                      f"{str(failure.message).splitlines()[0]}")


class MilvusGallery:
    """The Milvus :class:`~dcinet.retrieval.gallery.Gallery` of an ``INDEX_DIR``.

    Args:
        path: the ``INDEX_DIR``. info: its description (``milvus``: URI, collection, search).
        writable: accepted for the common signature; a Milvus collection is always writable.
    """

    def __init__(self, path: Path, info: dict, writable: bool = False) -> None:
        self.path, self.info = Path(path), info
        conf = info["milvus"]
        self.uri = conf["uri"] or str(self.path / LITE_DB)
        self.collection = conf["collection"]
        self.client = _connect(self.uri)
        if not self.client.has_collection(self.collection):
            raise DcinetError(f"{self.uri} has no collection {self.collection} (recorded in "
                              f"{self.path}); rebuild the index")
        self.client.load_collection(self.collection)
        self._counts = dict(info["counts"])  # kept by add and delete (see counts)

    @classmethod
    def create(cls, path: Path, info: dict) -> MilvusGallery:
        """A new, empty collection for the gallery described by ``info`` (``build``: uri, nlist,
        nprobe; ``total``: items to come, for the default ``nlist``)."""
        build, kind = info["build"], info["kind"]
        if kind not in INDEX_TYPES:
            raise DcinetError(f"--backend milvus supports --kind {' or '.join(INDEX_TYPES)}, "
                              f"not {kind}")
        uri = build["uri"]
        if uri is not None and "@" in uri.split("//", 1)[-1].split("/", 1)[0]:
            raise DcinetError("--uri must not hold credentials (index.json records it); "
                              "put the token in MILVUS_TOKEN")
        conf = {"uri": uri, "collection": "gallery" if uri is None else
                f"dcinet_{uuid.uuid4().hex[:16]}", "index_type": INDEX_TYPES[kind]}
        client = _connect(uri or str(Path(path) / LITE_DB))
        schema = client.create_schema(auto_id=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=32)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=info["dim"])
        for name in ("row", "label"):
            schema.add_field(name, DataType.INT64)
        for name, limit in TEXT_FIELDS.items():
            schema.add_field(name, DataType.VARCHAR, max_length=limit,
                             nullable=name in ("path", "text"))
        params = client.prepare_index_params()
        index_params = {}
        if kind == "ivf":
            conf["nlist"] = build["nlist"] or default_nlist(build["total"])
            conf["nprobe"] = max(1, min(build["nprobe"], conf["nlist"]))
            index_params = {"nlist": conf["nlist"]}
        params.add_index("vector", index_type=conf["index_type"], metric_type="IP",
                         params=index_params)
        client.create_collection(conf["collection"], schema=schema, index_params=params)
        info["milvus"] = conf
        return cls(path, info)

    @staticmethod
    def drop(path: Path, info: dict) -> None:
        """Remove the collection of the index ``info`` describes (an index being rebuilt)."""
        conf = info["milvus"]
        if conf["uri"] is None:
            try:
                from milvus_lite.server_manager import server_manager_instance
            except ImportError:  # nothing of it can be open in this process
                return
            server_manager_instance.release_server(str(Path(path) / LITE_DB))
            return  # the database folder goes with INDEX_DIR
        client = _connect(conf["uri"])
        if client.has_collection(conf["collection"]):
            client.drop_collection(conf["collection"])

    def lookup(self, vector: np.ndarray, k: int, modalities: list[str], label: int | None = None,
               nprobe: int | None = None) -> Found:
        where = f"modality in {json.dumps(modalities)}"
        if label is not None:
            where += f" and label == {int(label)}"
        params = {"metric_type": "IP"}
        if "nprobe" in self.info["milvus"]:
            params["params"] = {"nprobe": nprobe or self.info["milvus"]["nprobe"]}
        hits = self.client.search(self.collection, data=[np.asarray(vector, np.float32).tolist()],
                                  limit=k, filter=where, output_fields=ITEM_FIELDS,
                                  search_params=params)[0]
        return best([(float(h["distance"]), dict(h["entity"])) for h in hits], k)

    def item(self, modality: str, row: int) -> dict | None:
        found = self.client.get(self.collection, ids=[item_key(modality, row)],
                                output_fields=ITEM_FIELDS)
        return {f: found[0][f] for f in ITEM_FIELDS} if found else None

    def prepare(self, modality: str, vectors: np.ndarray) -> None:
        """Nothing to prepare: Milvus builds its index itself."""

    def add(self, modality: str, vectors: np.ndarray, items: list[dict]) -> None:
        for item in items:
            for name, limit in TEXT_FIELDS.items():
                value = item.get(name)
                if value is not None and len(value.encode("utf-8")) > limit:
                    raise DcinetError(f"item {item_key(modality, item['row'])}: its {name} is "
                                      f"longer than Milvus's {limit}-byte limit for the field")
        for start in range(0, len(items), INSERT_BATCH):  # entities built per request: Python
            stop = start + INSERT_BATCH                    # lists of floats cost ~30x the array
            self.client.insert(self.collection, [
                {"key": item_key(modality, item["row"]), "vector": vector.tolist(),
                 **{f: item.get(f) for f in ITEM_FIELDS}}
                for vector, item in zip(vectors[start:stop], items[start:stop], strict=True)])
        self._counts[modality] = self._counts.get(modality, 0) + len(items)

    def delete(self, keys: list[tuple[str, int]]) -> None:
        ids = [item_key(m, r) for m, r in keys]
        present = set()
        for start in range(0, len(ids), INSERT_BATCH):
            present |= {e["key"] for e in self.client.get(
                self.collection, ids=ids[start:start + INSERT_BATCH], output_fields=["key"])}
        missing = [i for i in ids if i not in present]
        if missing:
            raise DcinetError(f"no item {missing[0]} in {self.path}")
        self.client.delete(self.collection, ids=ids)
        for modality, _ in dict.fromkeys(keys):  # an id named twice is one item
            self._counts[modality] -= 1

    def counts(self) -> dict[str, int]:
        """The items per modality: those recorded in ``index.json``, plus the ones added and less
        the ones deleted since (every insert succeeded, every deleted id was present). Not a
        ``count(*)`` query: Milvus Lite evaluates one by reading every matching entity; after a
        300k x 256 build it took 55 s and raised the build's RSS from 1.9 to 5.0 GiB."""
        return dict(self._counts)

    def commit(self) -> None:
        self.client.flush(self.collection)
