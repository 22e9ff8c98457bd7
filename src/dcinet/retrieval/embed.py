"""``embed``: a trained run's test-time features of any folder, written in resumable chunks.

The features are :func:`~dcinet.retrieval.features.extract_features`'s (the ones ``evaluate``
ranks), computed chunk by chunk so that a large collection survives an interruption. Layout of
``EMB_DIR``:

* ``embed.json`` — what produced the embeddings (run directory, weights file and its sha256,
  feature, split, folder and its format, the folder's own classes), per-modality row counts and
  dimensions, and ``"complete": true`` once every modality is assembled;
* ``<modality>.npy`` — float32 ``(N, D)``; row ``i`` belongs to line ``i`` of
* ``<modality>.jsonl`` — one object per row: ``row, modality, label, class_name, path, text,
  source`` (``label`` / ``class_name``: null for an unlabelled item; ``text``: the whole text of
  a text item, else null);
* ``chunks/<modality>-<start>.npy`` — finished chunks while running; removed when complete.

A second call with the same run, data, split and feature continues where the first stopped.

The folder may be any folder (:func:`gallery_samples`): a dataset in any layout, with any subset
of the modalities and classes the run never saw, or loose files without labels. The default
feature is :data:`GALLERY_FEATURE`, chosen by measurement (``bench/unseen_classes.py``,
``bench/search_feature.py``; docs/search.md): the logits never saturate into runs of equal scores
as softmax probabilities do, and of the candidates they lose least to the best one on each of
cross-modal search of trained classes, image search of trained classes and image search of
classes the run never saw. ``evaluate`` keeps the paper's softmax for its tables.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from dcinet.config import MIXED_FEATURE
from dcinet.data.any_folder import ALL_SPLITS, AnyFolder, read_any
from dcinet.data.check import check_items
from dcinet.data.problems import format_problems
from dcinet.data.records import UNLABELLED, Sample
from dcinet.data.text import read_text
from dcinet.distributed import DistInfo, barrier
from dcinet.errors import DcinetError
from dcinet.files import atomic_save_npy, atomic_write_bytes
from dcinet.models.factory import TrainedModel
from dcinet.retrieval.features import Inference, check_model_feature, extract_features

MANIFEST = "embed.json"
CHUNK_DIR = "chunks"
GALLERY_FEATURE = "logits"
"""The feature ``embed`` (and so ``index``, ``search``, ``serve`` and ``dcinet.load``) uses
unless told otherwise (see the module)."""
GALLERY_FEATURES = ("logits", "embedding", MIXED_FEATURE)
"""The features a gallery may hold. ``embedding`` ranks classes the run never saw best;
``softmax+embedding`` ranks the trained classes best, its ties broken by the embedding. Plain
``softmax`` saturates (many items score 1.0 against a confident query), so it is ``evaluate``'s
only."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sample_metadata(sample: Sample, row: int) -> dict:
    """The metadata line of one gallery row (JSON-ready); text samples carry their whole text."""
    text = sample.text
    if sample.modality == "text" and text is None and sample.path is not None:
        text = " ".join(read_text(sample.path).split())
    labelled = sample.label != UNLABELLED
    return {"row": row, "modality": sample.modality,
            "label": int(sample.label) if labelled else None,
            "class_name": sample.class_name if labelled else None,
            "path": str(sample.path.resolve()) if sample.path is not None else None,
            "text": text, "source": sample.source}


def _samples_digest(samples: list[Sample]) -> str:
    digest = hashlib.sha256()
    for s in samples:
        digest.update(f"{s.modality}\t{s.path}\t{s.label}\t{s.text}\n".encode())
    return digest.hexdigest()


def _write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def read_manifest(emb_dir: Path) -> dict:
    """``EMB_DIR/embed.json``, raising :class:`DcinetError` when missing, corrupt or incomplete."""
    path = Path(emb_dir) / MANIFEST
    if not path.is_file():
        raise DcinetError(f"{emb_dir} holds no embeddings (no {MANIFEST}); run `dcinet embed` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise DcinetError(f"{path} is corrupt") from None
    if not manifest.get("complete"):
        raise DcinetError(f"the embeddings in {emb_dir} are incomplete; rerun the same "
                          "`dcinet embed` command to finish them")
    return manifest


def load_embeddings(emb_dir: Path, modality: str, mmap: bool = True) -> tuple[np.ndarray, list[dict]]:
    """One modality of a complete ``EMB_DIR``.

    Returns:
        ``(features, metadata)``: float32 ``(N, D)`` (memory-mapped when ``mmap``) and the N
        metadata lines of ``<modality>.jsonl``.
    """
    emb_dir = Path(emb_dir)
    manifest = read_manifest(emb_dir)
    if modality not in manifest["modalities"]:
        raise DcinetError(f"{emb_dir} has no {modality} embeddings "
                          f"(it has {', '.join(manifest['modalities'])})")
    features = np.load(emb_dir / f"{modality}.npy", mmap_mode="r" if mmap else None)
    with open(emb_dir / f"{modality}.jsonl", encoding="utf-8") as fh:
        metadata = [json.loads(line) for line in fh]
    if features.shape[0] != len(metadata) or features.dtype != np.float32:
        raise DcinetError(f"{emb_dir}: {modality}.npy ({features.shape}, {features.dtype}) does not "
                          f"match {modality}.jsonl ({len(metadata)} rows)")
    return features, metadata


def _job(trained: TrainedModel, samples: list[Sample], data_root: Path, split: str, feature: str,
         chunk_size: int, data_format: str) -> dict:
    """What determines the embeddings: a resumed run must match it exactly."""
    return {"run_dir": str(trained.run_dir.resolve()), "weights": str(trained.weights.resolve()),
            "weights_sha256": file_sha256(trained.weights), "feature": feature, "split": split,
            "data_root": str(Path(data_root).resolve()), "format": data_format,
            "samples_sha256": _samples_digest(samples), "chunk_size": chunk_size}


def _start_or_resume(out: Path, job: dict) -> dict:
    manifest_path = out / MANIFEST
    if manifest_path.is_file():
        try:
            stored = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            raise DcinetError(f"{manifest_path} is corrupt; remove {out} and embed again") from None
        changed = [k for k in job if stored.get("job", {}).get(k) != job[k]]
        if changed:
            raise DcinetError(f"{out} holds embeddings made with another {', '.join(changed)}; "
                              "choose another --out or remove it")
        return stored
    if out.exists() and any(out.iterdir()):
        raise DcinetError(f"{out} exists and is not an embeddings folder; choose another --out")
    return {"job": job, "complete": False}


def _chunk_path(out: Path, modality: str, start: int) -> Path:
    return out / CHUNK_DIR / f"{modality}-{start:012d}.npy"


def _load_chunk(path: Path, rows: int) -> np.ndarray | None:
    """A finished chunk with ``rows`` rows, or None when absent or unreadable (recomputed)."""
    if not path.is_file():
        return None
    try:
        chunk = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return chunk if chunk.ndim == 2 and chunk.shape[0] == rows and chunk.dtype == np.float32 else None


def _assemble(out: Path, modality: str, starts: list[int], n: int) -> int:
    """Concatenate the chunks into ``<modality>.npy`` without holding them all in memory;
    returns the feature dimension."""
    chunks = [np.load(_chunk_path(out, modality, start), mmap_mode="r") for start in starts]
    dim = chunks[0].shape[1]
    tmp = out / f".{modality}.npy.tmp"
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
    for start, chunk in zip(starts, chunks, strict=True):
        array[start:start + chunk.shape[0]] = chunk
    array.flush()
    del array, chunks
    tmp.replace(out / f"{modality}.npy")
    return dim


def embed_samples(trained: TrainedModel, samples: list[Sample], out: Path, data_root: Path,
                  split: str = ALL_SPLITS, feature: str | None = None, chunk_size: int = 1024,
                  inference: Inference | None = None, progress: bool = True,
                  classes: list[str] | None = None, data_format: str | None = None) -> dict:
    """Write the features of ``samples`` (any modalities) to ``out``, resuming a partial run.

    Under ``torchrun`` the chunks are dealt to the ranks in turn (chunk ``j`` of a modality to
    rank ``j % world_size``); each rank writes its own chunk files, and rank 0 assembles them
    once all ranks are done. The files are those one process writes, and a rank's part resumes.

    Args:
        trained: the model (:func:`~dcinet.models.factory.load_trained`), on the inference device.
        samples: the gallery, e.g. :func:`gallery_samples`' (labels may be
            :data:`~dcinet.data.records.UNLABELLED`).
        data_root, split, data_format: recorded in the manifest (and part of what a resume must
            match).
        feature: one of :data:`GALLERY_FEATURES` (``softmax`` is refused); None =
            :data:`GALLERY_FEATURE`.
        chunk_size: rows per chunk file, rounded up to a multiple of the batch size so that the
            batches, and so the features, are exactly those of one ``extract_features`` call.
        inference: device, batch size, workers, AMP, process group (default: one CPU process).
        classes: the names of the samples' labels (``classes[label]``); None = the run's.
    Returns:
        The manifest (also in ``out/embed.json``).
    """
    feature = feature or GALLERY_FEATURE
    if feature not in GALLERY_FEATURES:
        raise DcinetError(f"feature {feature!r} cannot index a gallery: softmax probabilities "
                          f"saturate into equal scores and cannot rank classes the run never "
                          f"saw; choose {', '.join(GALLERY_FEATURES)} (dcinet evaluate keeps "
                          f"the paper's softmax)" if feature == "softmax" else
                          f"feature must be one of {', '.join(GALLERY_FEATURES)}, got {feature!r}")
    check_model_feature(trained, feature)
    classes = list(trained.classes if classes is None else classes)
    inference = inference or Inference()
    dist = inference.dist
    if chunk_size <= 0:
        raise DcinetError("chunk size must be positive")
    chunk_size = -(-chunk_size // inference.batch_size) * inference.batch_size
    out = Path(out)
    job = _job(trained, samples, data_root, split, feature, chunk_size,
               data_format or trained.cfg.format)
    if dist.is_main:  # rank 0 checks the folder and starts the manifest before any rank reads it
        manifest = _start_or_resume(out, job)
        if not manifest["complete"]:
            out.mkdir(parents=True, exist_ok=True)
            _write_json(out / MANIFEST, manifest)
    barrier(dist)
    if not dist.is_main:
        manifest = _start_or_resume(out, job)
    if manifest["complete"]:
        if progress and dist.is_main:
            print(f"{out}: embeddings already complete", file=sys.stderr)
        return manifest
    one_process = replace(inference, dist=DistInfo())  # a rank embeds its own chunks alone
    modalities = {}
    for modality in trained.modalities:
        subset = [s for s in samples if s.modality == modality]
        if not subset:
            continue
        starts = list(range(0, len(subset), chunk_size))
        for start in starts[dist.rank::dist.world_size]:
            part = subset[start:start + chunk_size]
            path = _chunk_path(out, modality, start)
            if _load_chunk(path, len(part)) is None:
                chunk = extract_features(trained, part, feature, one_process)[modality].features
                atomic_save_npy(path, chunk)
            if progress and dist.is_main:
                print(f"\r  embed {modality}: {start + len(part)}/{len(subset)}", end="",
                      file=sys.stderr, flush=True)
        if progress and dist.is_main:
            print(file=sys.stderr)
        modalities[modality] = len(subset), starts
    if not modalities:
        raise DcinetError(f"no samples of the model's modalities ({', '.join(trained.modalities)})")
    barrier(dist)  # every rank's chunks are on disk
    if dist.is_main:
        manifest = _finish(out, manifest, modalities, subsets={
            m: [s for s in samples if s.modality == m] for m in modalities}, classes=classes)
    barrier(dist)
    return manifest if dist.is_main else read_manifest(out)


def _finish(out: Path, manifest: dict, modalities: dict[str, tuple[int, list[int]]],
            subsets: dict[str, list[Sample]], classes: list[str]) -> dict:
    """Assemble every modality's chunks and metadata, mark the manifest complete."""
    shapes = {}
    for modality, (count, starts) in modalities.items():
        dim = _assemble(out, modality, starts, count)
        lines = "".join(json.dumps(sample_metadata(s, i)) + "\n"
                        for i, s in enumerate(subsets[modality]))
        atomic_write_bytes(out / f"{modality}.jsonl", lines.encode("utf-8"))
        shapes[modality] = {"count": count, "dim": dim}
    manifest.update({"complete": True, "modalities": shapes, "classes": classes,
                     **{k: manifest["job"][k] for k in ("run_dir", "weights", "weights_sha256",
                                                        "feature", "split", "data_root",
                                                        "format")}})
    _write_json(out / MANIFEST, manifest)
    shutil.rmtree(out / CHUNK_DIR, ignore_errors=True)
    return manifest


def gallery_samples(trained: TrainedModel, data_root: Path | None, fmt: str | None = None,
                    split: str = ALL_SPLITS, modalities: list[str] | None = None,
                    labels: str = "none", skip_unknown: bool = False,
                    progress: bool = False) -> AnyFolder:
    """The checked items of any folder that ``trained`` can embed
    (:func:`~dcinet.data.any_folder.read_any`): ``data_root`` (default: the run's own dataset,
    read in its own format) as a dataset in any layout, or loose files.

    Raises:
        DcinetError: no such folder, a bad option, a refused item (see ``read_any``), or files
            that do not decode (all of them listed): nothing is skipped silently.
    """
    from dcinet.retrieval.evaluate import dataset_root

    root = dataset_root(trained, data_root)
    own = data_root is None or Path(data_root).resolve() == Path(
        trained.info.get("data_root") or "").resolve()
    cfg = trained.cfg
    if fmt is None and own:
        fmt = cfg.format
    options = {}
    if own and fmt == "fgxmedia":
        options = {"lists_dir": cfg.lists_dir, "num_classes": cfg.num_classes}
    elif own and fmt == "cub":
        options = {"train_flag": cfg.cub_train_flag}
    found = read_any(root, trained.modalities, fmt, split, modalities, labels, skip_unknown,
                     options)
    problems = check_items(found.samples, progress=progress)
    if problems:
        raise DcinetError(f"{root}: items that cannot be embedded\n{format_problems(problems)}")
    return found


def embed_run(run: Path, data_root: Path | None, out: Path, split: str = ALL_SPLITS,
              feature: str | None = None, fmt: str | None = None, chunk_size: int = 1024,
              inference: Inference | None = None, progress: bool = True,
              checkpoint: str = "last", modalities: list[str] | None = None,
              labels: str = "none", skip_unknown: bool = False) -> dict:
    """``dcinet embed``: load a run (directory or checkpoint; of a directory, its ``checkpoint``:
    ``last``, ``best`` or a file) onto the inference device, read and check any folder
    (:func:`gallery_samples`; ``split``, ``modalities``, ``labels``, ``skip_unknown`` as there),
    then :func:`embed_samples`. What was left out at the caller's request is printed (stderr).
    Returns the manifest."""
    from dcinet.models.factory import load_trained
    from dcinet.retrieval.evaluate import dataset_root

    inference = inference or Inference()
    trained = load_trained(Path(run), inference.device, checkpoint)
    found = gallery_samples(trained, data_root, fmt, split, modalities, labels, skip_unknown,
                            progress and inference.dist.is_main and sys.stderr.isatty())
    if progress and inference.dist.is_main:
        for note in found.notes:
            print(note, file=sys.stderr)
    return embed_samples(trained, found.samples, out, dataset_root(trained, data_root), split,
                         feature, chunk_size, inference, progress, found.classes, found.format)
