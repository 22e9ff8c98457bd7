"""Writing run directories (their files: :mod:`dcinet.rundir`): a new run's records, the
per-epoch metrics, and the checks that make ``--resume`` safe."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from dcinet.config import Config, save_config
from dcinet.data.records import Collection
from dcinet.data.splits import split_fingerprint
from dcinet.errors import DcinetError
from dcinet.files import atomic_write_bytes
from dcinet.rundir import CONFIG_FILE, METRICS_FILE, RUN_FILE, read_run

RESUME_MUTABLE = frozenset({"epochs", "num_workers", "prefetch_factor", "log_every", "val_every",
                            "amp_dtype", "compile", "sync_bn"})
"""Config keys a resumed run may change (raising ``epochs`` extends a run: the lr schedule is
re-planned over the new total, see :func:`dcinet.train.recipe.lr_factor`; validation leaves the
RNG streams as it found them, so ``val_every`` changes only which epochs are scored). How the
device runs the steps may change too, as a run may resume on another machine: ``amp_dtype``
(``auto`` already differs between GPUs; the CPU ignores it), ``compile`` and ``sync_bn``."""


def write_run_info(run_dir: Path, cfg: Config, collection: Collection, modalities: list[str],
                   dropped: dict | None = None, validation: dict | None = None) -> dict:
    """Write ``config.yaml`` and ``run.json`` for a new run; returns the run info.

    Args:
        dropped: what the training data checks left out or shortened (recorded as ``dropped``).
        validation: the record of the validation items
            (:func:`~dcinet.data.splits.hold_out_validation`; None: there are none).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
    info = {
        "classes": collection.classes,
        "modalities": modalities,
        "data_root": str(collection.root) if collection.root else None,
        "dataset": split_fingerprint(collection),
        "dropped": dropped or {},
        "validation": validation,
    }
    atomic_write_bytes(run_dir / RUN_FILE, json.dumps(info, indent=1).encode())
    return info


def update_run_info(run_dir: Path, values: dict) -> dict:
    """Set the top-level ``values`` of an existing ``run.json`` (atomically; the other keys are
    kept) and return the new info."""
    _, info = read_run(run_dir)
    info.update(values)
    atomic_write_bytes(run_dir / RUN_FILE, json.dumps(info, indent=1).encode())
    return info


def config_changes(saved: Config, cfg: Config) -> str:
    """The keys outside :data:`RESUME_MUTABLE` whose values differ, as ``"k: old -> new, ..."``
    ('' when none do)."""
    keys = [f.name for f in fields(Config)
            if f.name not in RESUME_MUTABLE and getattr(saved, f.name) != getattr(cfg, f.name)]
    return ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(cfg, k)!r}" for k in keys)


def check_resume(run_dir: Path, cfg: Config, collection: Collection,
                 validation: dict | None = None) -> None:
    """Refuse to resume a run made with another dataset, validation items or model
    configuration (``validation``: as for :func:`write_run_info`)."""
    saved_cfg, info = read_run(run_dir)
    changed = config_changes(saved_cfg, cfg)
    if changed:
        raise DcinetError(f"cannot resume {run_dir}: its configuration differs ({changed})")
    now = split_fingerprint(collection)
    if info.get("dataset") != now:
        raise DcinetError(f"cannot resume {run_dir}: it was trained on different data "
                          f"(saved {info.get('dataset', {}).get('counts')}, now {now['counts']})")
    if info.get("validation") != validation:
        raise DcinetError(f"cannot resume {run_dir}: its validation items differ from those "
                          f"{RUN_FILE} records")
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


def dropped_warnings(dropped: dict) -> list[str]:
    """The warnings a run prints about what :func:`write_run_info` records as ``dropped``."""
    lines = []
    if dropped.get("classes_missing_a_modality"):
        names = dropped["classes_missing_a_modality"]
        lines.append(f"the class-aware sampler never draws {len(names)} classes that lack a "
                     f"modality ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")
    if dropped.get("texts_truncated"):
        lines.append(f"{dropped['texts_truncated']} of {dropped['texts']} training texts are longer "
                     f"than text_len={dropped['text_len']} characters and are cut")
    windows = dropped.get("audio_windows") or {}
    if windows.get("quiet_skipped"):
        lines.append(f"{windows['quiet_skipped']} of {windows['windows']} training audio windows are "
                     f"more than {windows['floor_db']:g} dB below their recording's loudest "
                     "window and are skipped (audio_energy_floor_db)")
    return lines
