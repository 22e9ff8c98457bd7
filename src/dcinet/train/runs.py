"""Writing run directories (their files: :mod:`dcinet.rundir`): a new run's records, the
per-epoch metrics, and the checks that make ``--resume`` safe."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path

from dcinet.config import Config, save_config
from dcinet.data.records import Collection
from dcinet.errors import DcinetError
from dcinet.files import atomic_write_bytes
from dcinet.rundir import CONFIG_FILE, METRICS_FILE, RUN_FILE, read_run

RESUME_MUTABLE = frozenset({"epochs", "num_workers", "log_every"})
"""Config keys a resumed run may change (raising ``epochs`` extends a run: the lr schedule is
re-planned over the new total, see :func:`dcinet.train.loop.lr_factor`)."""


def dataset_fingerprint(collection: Collection, split: str = "train") -> dict:
    """A summary that changes whenever the training data changes: classes, and every training
    file's relative path, label and size in bytes (sizes catch regenerated or replaced files
    without reading their contents)."""
    digest = hashlib.sha256()
    digest.update("\n".join(collection.classes).encode())
    samples = collection.select(split=split)
    root = collection.root
    for s in sorted(samples, key=lambda s: (s.modality, str(s.path), s.label)):
        path = s.path.relative_to(root) if (root and s.path and s.path.is_relative_to(root)) else s.path
        size = s.path.stat().st_size if s.path is not None and s.path.is_file() else -1
        digest.update(f"{s.modality}\t{path}\t{s.label}\t{size}\n".encode())
    counts = {m: len(collection.select(split=split, modality=m)) for m in collection.modalities}
    return {"format": collection.format, "num_classes": collection.num_classes, "counts": counts,
            "digest": digest.hexdigest()}


def write_run_info(run_dir: Path, cfg: Config, collection: Collection, modalities: list[str],
                   dropped: dict | None = None) -> dict:
    """Write ``config.yaml`` and ``run.json`` for a new run; returns the run info.

    Args:
        dropped: what the training data checks left out or shortened (recorded as ``dropped``).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
    info = {
        "classes": collection.classes,
        "modalities": modalities,
        "data_root": str(collection.root) if collection.root else None,
        "dataset": dataset_fingerprint(collection),
        "dropped": dropped or {},
    }
    atomic_write_bytes(run_dir / RUN_FILE, json.dumps(info, indent=1).encode())
    return info


def check_resume(run_dir: Path, cfg: Config, collection: Collection) -> None:
    """Refuse to resume a run made with another dataset or model configuration."""
    saved_cfg, info = read_run(run_dir)
    changed = [
        f.name for f in fields(Config)
        if f.name not in RESUME_MUTABLE and getattr(saved_cfg, f.name) != getattr(cfg, f.name)
    ]
    if changed:
        detail = ", ".join(f"{k}: {getattr(saved_cfg, k)!r} -> {getattr(cfg, k)!r}" for k in changed)
        raise DcinetError(f"cannot resume {run_dir}: its configuration differs ({detail})")
    if info.get("dataset") != dataset_fingerprint(collection):
        raise DcinetError(
            f"cannot resume {run_dir}: it was trained on different data "
            f"(saved {info.get('dataset', {}).get('counts')}, now {dataset_fingerprint(collection)['counts']})"
        )
    if cfg.epochs < saved_cfg.epochs:
        raise DcinetError(f"cannot resume {run_dir} with fewer epochs ({cfg.epochs} < {saved_cfg.epochs})")



def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    """Rewrite ``metrics.csv`` with one row per completed epoch (columns = union of keys)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = [",".join(columns)]
    lines += [",".join(_fmt(row.get(c, "")) for c in columns) for row in rows]
    atomic_write_bytes(run_dir / METRICS_FILE, ("\n".join(lines) + "\n").encode())


def _fmt(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
