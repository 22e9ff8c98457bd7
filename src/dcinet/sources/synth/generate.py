"""Write the built-in dataset: ``OUT/<modality>/<split>/<class>/<index>.<ext>`` plus ``synth.json``.

Every item draws from its own random generator seeded by ``(seed, class, modality, index)``, so a
file's bytes depend only on those and the arguments, not on the order of generation nor on how
many worker processes write them. ``synth.json`` (the arguments, the per-class attributes and
``"complete"``) is written first with ``complete: false`` and rewritten with ``true`` at the end:
a re-run with the same arguments on a complete tree only checks that the files exist; on an
interrupted one it writes everything again.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from dcinet.errors import DcinetError
from dcinet.sources.synth.audio import SAMPLE_RATE, render_call
from dcinet.sources.synth.image import render_image
from dcinet.sources.synth.taxonomy import (
    FAMILIES,
    MAX_CLASSES,
    Species,
    build_taxonomy,
    family_sizes,
)
from dcinet.sources.synth.text import write_note

MANIFEST = "synth.json"
GENERATOR_VERSION = 1
MODALITY_CODES = {"image": 0, "audio": 1, "text": 2}
EXTENSIONS = {"image": ".png", "audio": ".wav", "text": ".txt"}
CHUNK = 50  # files per task handed to a worker process


def split_sizes(per_class: int, test_fraction: float) -> tuple[int, int]:
    """``(train, test)`` items per class and modality: ``test = round(per_class * test_fraction)``
    kept in ``[1, per_class - 1]`` so both splits hold every class."""
    n_test = min(max(round(per_class * test_fraction), 1), per_class - 1)
    return per_class - n_test, n_test


def item_rng(seed: int, class_index: int, modality: str, index: int, attempt: int = 0) -> np.random.Generator:
    """The generator of one item; ``class_index`` is the class's position in the taxonomy."""
    return np.random.default_rng([seed, class_index, MODALITY_CODES[modality], index, attempt])


def _validate(classes: int, per_class: int, seed: int, test_fraction: float, image_size: int) -> None:
    checks = (
        (isinstance(classes, int) and 2 <= classes <= MAX_CLASSES, f"classes must be between 2 and {MAX_CLASSES}, got {classes!r}"),
        (isinstance(per_class, int) and per_class >= 2, f"per_class must be at least 2 (one train and one test item), got {per_class!r}"),
        (isinstance(seed, int) and seed >= 0, f"seed must be a non-negative integer, got {seed!r}"),
        (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0, f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}"),
        (isinstance(image_size, int) and 32 <= image_size <= 1024, f"image_size must be between 32 and 1024, got {image_size!r}"),
    )
    for ok, message in checks:
        if not ok:
            raise DcinetError(f"synthetic dataset: {message}")


def _manifest(species: list[Species], config: dict, complete: bool) -> dict:
    ordered = sorted(species, key=lambda s: s.name)
    return {
        "generator": "dcinet.sources.synth", "version": GENERATOR_VERSION, "config": config,
        "complete": complete,
        "families": {f.name: size for f, size in zip(FAMILIES, family_sizes(len(species)), strict=False)},
        "classes": [{"label": label, **s.describe()} for label, s in enumerate(ordered)],
    }


def _item_paths(out: Path, species: list[Species], train: int, per_class: int) -> Iterator[tuple[str, int, int, Path]]:
    """``(modality, class_index, index, path)`` of every file, in a fixed order."""
    for modality, ext in EXTENSIONS.items():
        for class_index, s in enumerate(species):
            for index in range(per_class):
                split = "train" if index < train else "test"
                yield modality, class_index, index, out / modality / split / s.name / f"{index:04d}{ext}"


def _texts(species: list[Species], seed: int, per_class: int) -> dict[tuple[int, int], str]:
    """Every note, made unique: an item whose note repeats an earlier one (fixed order) redraws."""
    seen: set[str] = set()
    notes = {}
    for class_index, s in enumerate(species):
        for index in range(per_class):
            attempt = 0
            note = write_note(s, item_rng(seed, class_index, "text", index))
            while note in seen:
                attempt += 1
                note = write_note(s, item_rng(seed, class_index, "text", index, attempt))
            seen.add(note)
            notes[class_index, index] = note
    return notes


def _existing(out: Path, config: dict) -> dict | None:
    """The stored manifest when ``out`` holds a dataset made with ``config``; None when ``out`` is
    missing or empty. Raises :class:`DcinetError` for anything else."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise DcinetError(f"synthetic dataset: {out} exists and is not a folder")
    if not any(out.iterdir()):
        return None
    manifest_path = out / MANIFEST
    try:
        stored = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DcinetError(f"synthetic dataset: {out} is not empty and holds no {MANIFEST}; "
                          "choose an empty or new folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DcinetError(f"synthetic dataset: cannot read {manifest_path}: {exc}") from None
    old = stored.get("config") if isinstance(stored, dict) else None
    if old != config:
        diff = ", ".join(f"{k} {old.get(k)!r} -> {config[k]!r}" for k in config if old.get(k) != config[k]) \
            if isinstance(old, dict) else "unreadable config"
        raise DcinetError(f"synthetic dataset: {out} holds a dataset made with other arguments ({diff}); "
                          "choose another folder or delete it")
    return stored


def _progress(total: int, enabled: bool):
    """``(advance, close)`` callables (``advance(n)``: n more files written): a tqdm bar on a
    terminal, a line per 10 % otherwise, nothing if disabled."""
    if not enabled:
        return lambda n: None, lambda: None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc="synthesizing", unit="file")
        return bar.update, bar.close
    done = [0]

    def advance(n: int) -> None:
        before, done[0] = done[0], done[0] + n
        if before * 10 // total != done[0] * 10 // total or done[0] == total:
            print(f"synthesizing: {done[0]}/{total} files", file=sys.stderr, flush=True)

    return advance, lambda: None


def _write(path: Path, modality: str, s: Species, rng: np.random.Generator, image_size: int, note: str) -> None:
    if modality == "image":
        Image.fromarray(render_image(s, rng, image_size)).save(path, format="PNG")
    elif modality == "audio":
        sf.write(path, render_call(s, rng), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    else:
        path.write_text(note + "\n", encoding="utf-8")


def _write_items(items: list[tuple[str, int, int, Path]], species: list[Species], seed: int,
                 image_size: int, notes: dict[tuple[int, int], str]) -> int:
    """Write ``(modality, class_index, index, path)`` items; returns how many."""
    for modality, class_index, index, path in items:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, modality, species[class_index], item_rng(seed, class_index, modality, index),
               image_size, notes[class_index, index])
    return len(items)


def _write_all(items: list, write: Callable[[list], int], workers: int,
               advance: Callable[[int], None]) -> None:
    """``write`` every chunk of :data:`CHUNK` items, in ``workers`` spawned processes when > 1
    (spawned: a forked child of a process running torch's OpenMP threads can hang)."""
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    if workers <= 1:
        for chunk in chunks:
            advance(write(chunk))
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for written in pool.map(write, chunks):
            advance(written)


def synthesize(out: Path | str, classes: int = 20, per_class: int = 40, seed: int = 0,
               test_fraction: float = 0.25, image_size: int = 96, progress: bool = True,
               workers: int = 1) -> Path:
    """Generate (or reuse) the built-in fine-grained tri-modal dataset under ``out``.

    Per class and modality ``per_class`` items: the first ``train`` to ``train/``, the rest to
    ``test/`` (see :func:`split_sizes`). Image: RGB PNG ``image_size`` x ``image_size``; audio: WAV,
    16 kHz mono PCM_16, 1-3 s; text: UTF-8 note of 1-3 sentences. Returns ``out``.

    ``workers`` > 1 writes the files in that many spawned processes (the bytes are the same): a
    script that calls it so must guard its top-level code with ``if __name__ == "__main__":``.

    Raises:
        DcinetError: bad arguments; ``out`` not empty and not made with the same arguments.
    """
    _validate(classes, per_class, seed, test_fraction, image_size)
    out = Path(out)
    train, test = split_sizes(per_class, test_fraction)
    config = {"classes": classes, "per_class": per_class, "seed": seed, "test_fraction": test_fraction,
              "image_size": image_size, "train_per_class": train, "test_per_class": test,
              "sample_rate": SAMPLE_RATE, "version": GENERATOR_VERSION}
    species = build_taxonomy(classes)
    items = list(_item_paths(out, species, train, per_class))
    stored = _existing(out, config)
    if stored is not None and stored.get("complete") and all(p.is_file() for *_, p in items):
        return out

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(json.dumps(_manifest(species, config, False), indent=1), encoding="utf-8")
    write = partial(_write_items, species=species, seed=seed, image_size=image_size,
                    notes=_texts(species, seed, per_class))
    advance, close = _progress(len(items), progress)
    try:
        _write_all(items, write, workers, advance)
    finally:
        close()
    (out / MANIFEST).write_text(json.dumps(_manifest(species, config, True), indent=1), encoding="utf-8")
    return out
