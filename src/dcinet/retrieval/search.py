"""Search an index with an image, audio clip or text: the Python API behind ``dcinet search`` and
``dcinet serve``.

A :class:`Searcher` opens the index's gallery (FAISS or Milvus, see
:mod:`~dcinet.retrieval.gallery`) and loads the model that produced its embeddings once (checking
the weights' sha256), then embeds each query exactly as the gallery was embedded (the run's image
/ audio / text preprocessing, ``model.encode`` with the index's feature) and looks it up, with
the gallery's engine applying the modality and class filters. Queries are decoded from memory:
uploaded bytes never touch the file system. A long recording is a query like any other: its
windows are encoded and their logits averaged (:func:`~dcinet.retrieval.features.encode_views`),
as ``embed`` does for the gallery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dcinet.data.records import UNLABELLED
from dcinet.errors import DcinetError
from dcinet.retrieval.embed import file_sha256
from dcinet.retrieval.encoder import Encoder
from dcinet.retrieval.gallery import item_key, normalized
from dcinet.retrieval.index import open_gallery

QUERY_MODALITIES = ("image", "audio", "text")
TARGET_ALL = "all"
MAX_K = 1000

QuerySource = str | Path | bytes
"""An image / audio query: a file path or the file's bytes; a text query: the text (str)."""


@dataclass(frozen=True)
class Hit:
    """One ranked result.

    Attributes:
        rank: 1-based position. score: cosine similarity to the query (float32 precision).
        modality, label, class_name: the gallery item's (label: its class's position in the
        index's classes; label and class_name None for an unlabelled item). row: its number in the index's
        ``modality`` gallery (for the first embeddings indexed: its row there). id:
        ``"<modality>/<row>"``, what ``dcinet index INDEX --delete`` takes.
        path: its file (absolute), or None. text: a text item's whole text, else None.
    """

    rank: int
    score: float
    modality: str
    label: int | None
    class_name: str | None
    row: int
    id: str
    path: str | None
    text: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def _read_query_file(src: str | Path, modality: str) -> tuple[bytes, str]:
    try:
        return Path(src).read_bytes(), str(src)
    except FileNotFoundError:
        raise DcinetError(f"{modality} query file not found: {src}") from None
    except OSError as exc:
        raise DcinetError(f"cannot read {modality} query file {src} "
                          f"({exc.strerror or exc})") from None


class Searcher:
    """An index plus the model that embedded it, loaded once; thread-safe.

    Args:
        index_dir: an ``INDEX_DIR`` from :func:`~dcinet.retrieval.index.build_index`.
        run: the run directory or weights file to embed queries with (default: the weights
            recorded in the index; pass it when the run was moved). Its sha256 must match.
        device: where the model embeds queries: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        model: an :class:`~dcinet.retrieval.encoder.Encoder` already loaded
            (``dcinet.load``) to embed queries with, instead of ``run`` / ``device``; it must be
            the index's model and feature.
    """

    def __init__(self, index_dir: Path, run: Path | None = None, device: str = "cpu",
                 model: Encoder | None = None) -> None:
        self.gallery = open_gallery(Path(index_dir))
        info = self.gallery.info
        self.feature: str = info["feature"]
        if model is None:
            from dcinet.distributed import resolve_device
            from dcinet.models.factory import load_trained

            trained = load_trained(Path(run) if run else Path(info["weights"]),
                                   resolve_device(device))
            model = Encoder(trained, self.feature, batch_size=64)
        elif run is not None:
            raise DcinetError("pass either model or run, not both")
        elif model.feature != self.feature:
            raise DcinetError(f"the model gives {model.feature} vectors but {index_dir} holds "
                              f"{self.feature} vectors; load it with feature={self.feature!r}")
        self.encoder, self.trained, self.device = model, model.trained, model.device
        if file_sha256(self.trained.weights) != info["weights_sha256"]:
            raise DcinetError(f"{self.trained.weights} is not the model that embedded "
                              f"{index_dir} (weights differ); pass the run it was built from")
        self.decoder = model.decoder

    @property
    def query_modalities(self) -> list[str]:
        """Modalities a query may have (those the model was trained on)."""
        return [m for m in self.trained.modalities if m in QUERY_MODALITIES]

    @property
    def targets(self) -> list[str]:
        """Gallery modalities of the index, canonical order."""
        return list(self.gallery.info["counts"])

    @property
    def classes(self) -> list[str]:
        """Class names of the gallery (label = position)."""
        return list(self.gallery.info["classes"])

    def query_tensor(self, query: QuerySource, modality: str, name: str | None = None):
        """The model input for one query: its views, decoded by the gallery's own path
        (:meth:`~dcinet.data.decode.SampleDecoder.decode_views`, the spectrogram cache left alone).

        Returns:
            image: float32 ``(1, 3, img_size, img_size)``; audio: float32
            ``(V, 3, img_size, img_size)``, its ``V >= 1`` kept windows (1 when the run does not cut
            recordings); text: int64 ``(1, text_len)``.
        Raises:
            DcinetError: unknown modality, empty text, undecodable image / audio (naming ``name``).
        """
        if modality not in self.query_modalities:
            raise DcinetError(f"query modality must be one of {', '.join(self.query_modalities)}, "
                              f"got {modality!r}")
        if modality == "text":
            if not isinstance(query, str) or not query.strip():
                raise DcinetError("the text query is empty")
            return self.decoder.decode_views(query, "text")
        data, label = (query, name or f"uploaded {modality}") if isinstance(query, bytes) \
            else _read_query_file(query, modality)
        if not data:
            raise DcinetError(f"{label}: the {modality} file is empty (0 bytes)")
        return self.decoder.decode_views(data, modality, name=label, cache=False)

    def embed_query(self, query: QuerySource, modality: str, name: str | None = None) -> np.ndarray:
        """The query's feature, float32 ``(D,)`` (not normalised), as ``embed`` computes rows:
        :func:`~dcinet.retrieval.features.encode_views` of :meth:`query_tensor`."""
        return self.encoder.encode_views([self.query_tensor(query, modality, name)],
                                         modality).numpy()[0]

    def check_request(self, k: int, target: str, class_name: str | None = None) -> None:
        """Raise :class:`DcinetError` unless ``1 <= k <= MAX_K`` (an int), ``target`` is a
        gallery modality of the index or ``all`` and ``class_name`` (if given) is a class of it."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise DcinetError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        if target != TARGET_ALL and target not in self.targets:
            raise DcinetError(f"target modality must be one of {', '.join(self.targets)} or "
                              f"{TARGET_ALL}, got {target!r}")
        if class_name is not None and class_name not in self.classes:
            has = (f"it has {len(self.classes)}, e.g. {self.classes[0]!r}" if self.classes else
                   "its items are unlabelled")
            raise DcinetError(f"the index has no class {class_name!r} ({has})")

    def search_vector(self, vector: np.ndarray, k: int = 10, target: str = TARGET_ALL,
                      nprobe: int | None = None, class_name: str | None = None) -> list[Hit]:
        """Index lookup alone: the ``k`` best gallery items of ``target`` (a modality or ``all``,
        merged by score; ties: canonical modality order, then row), of class ``class_name`` when
        given, for a float ``(D,)`` vector (a NumPy array or a tensor, e.g. a row of
        ``model.encode_image``). ``nprobe``: IVF cells to visit (default: the index's)."""
        self.check_request(k, target, class_name)
        if isinstance(vector, torch.Tensor):
            vector = vector.detach().cpu().float().numpy()
        vector = np.asarray(vector, dtype=np.float32)
        dim = self.gallery.info["dim"]
        if vector.shape != (dim,):
            raise DcinetError(f"query vector has shape {vector.shape}, the index holds "
                              f"{dim}-d vectors")
        label = None if class_name is None else self.classes.index(class_name)
        modalities = self.targets if target == TARGET_ALL else [target]
        found = self.gallery.lookup(normalized(vector[None])[0], k, modalities, label, nprobe)
        return [Hit(rank, score, it["modality"],
                    None if it["label"] == UNLABELLED else it["label"], it["class_name"] or None,
                    it["row"], item_key(it["modality"], it["row"]), it["path"], it["text"])
                for rank, (score, it) in enumerate(found, 1)]

    def search(self, query: QuerySource, modality: str, k: int = 10, target: str = TARGET_ALL,
               name: str | None = None, class_name: str | None = None) -> list[Hit]:
        """Embed a query of ``modality`` and return the ``k`` best items of ``target`` (of class
        ``class_name`` when given).

        Raises:
            DcinetError: bad modality / target / k / class, empty text, undecodable media.
        """
        self.check_request(k, target, class_name)
        return self.search_vector(self.embed_query(query, modality, name), k, target,
                                  class_name=class_name)

    def search_image(self, image: str | Path | bytes, k: int = 10, target: str = TARGET_ALL,
                     class_name: str | None = None) -> list[Hit]:
        """:meth:`search` with an image file path or its bytes."""
        return self.search(image, "image", k, target, class_name=class_name)

    def search_audio(self, audio: str | Path | bytes, k: int = 10, target: str = TARGET_ALL,
                     class_name: str | None = None) -> list[Hit]:
        """:meth:`search` with an audio file (wav / flac / ogg / mp3, any length: see
        :meth:`query_tensor`; or a spectrogram picture) or its bytes."""
        return self.search(audio, "audio", k, target, class_name=class_name)

    def search_text(self, text: str, k: int = 10, target: str = TARGET_ALL,
                    class_name: str | None = None) -> list[Hit]:
        """:meth:`search` with a text description."""
        return self.search(text, "text", k, target, class_name=class_name)
