"""The items of one FAISS modality gallery, kept on disk: ``NAME.jsonl`` (one item per line, rows
ascending) and ``NAME.rows.npy``, its table (per line: row, byte offset, length, label), read
memory-mapped. An item is one ``pread``; the rows of a class come from the table; so a gallery
of any size is searched without its items in memory. A table that is missing (an index written
before tables existed) is computed from the JSONL when opened.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from dcinet.files import atomic_write_file

TABLE = np.dtype([("row", "<i8"), ("offset", "<i8"), ("length", "<i4"), ("label", "<i4")])


def table_entries(lines: list[bytes], items: list[dict]) -> np.ndarray:
    """Table entries (offsets left 0) of encoded JSONL ``lines`` and their ``items``."""
    entries = np.zeros(len(items), TABLE)
    entries["row"] = [it["row"] for it in items]
    entries["length"] = [len(line) for line in lines]
    entries["label"] = [it["label"] for it in items]
    return entries


def _table_from_jsonl(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        lines = fh.readlines()
    entries = table_entries(lines, [json.loads(line) for line in lines])
    entries["offset"] = np.concatenate([[0], np.cumsum(entries["length"][:-1])]) if len(lines) else 0
    return entries


class ItemFile:
    """The items ``NAME.jsonl`` + ``NAME.rows.npy`` (see the module), opened for reading.

    Args:
        stem: the path without suffix, e.g. ``INDEX_DIR/image``.
    """

    def __init__(self, stem: Path) -> None:
        self.jsonl = stem.with_name(stem.name + ".jsonl")
        table = stem.with_name(stem.name + ".rows.npy")
        self.table = np.load(table, mmap_mode="r") if table.exists() else _table_from_jsonl(self.jsonl)
        self._fd = os.open(self.jsonl, os.O_RDONLY)

    def __len__(self) -> int:
        return len(self.table)

    def __del__(self) -> None:
        if hasattr(self, "_fd"):
            os.close(self._fd)

    def get(self, row: int) -> dict | None:
        """The item of ``row``, or None."""
        i = int(np.searchsorted(self.table["row"], row))
        if i == len(self.table) or self.table["row"][i] != row:
            return None
        entry = self.table[i]
        return json.loads(os.pread(self._fd, int(entry["length"]), int(entry["offset"])))

    def rows_of(self, label: int) -> np.ndarray:
        """The rows of class ``label``, int64, ascending."""
        return np.asarray(self.table["row"][self.table["label"] == label], dtype=np.int64)

    def missing(self, rows: list[int]) -> list[int]:
        """Those of ``rows`` that are not here."""
        return [r for r, here in zip(rows, np.isin(rows, self.table["row"]), strict=True) if not here]


def write_items(stem: Path, old: ItemFile | None, deleted: set[int], added_lines,
                added: np.ndarray) -> None:
    """Write ``stem.jsonl`` and ``stem.rows.npy`` (atomically each): the items of ``old`` less the
    ``deleted`` rows, then the encoded lines of the file object ``added_lines`` whose table
    entries are ``added``."""
    kept = old.table if old is not None else np.zeros(0, TABLE)
    keep = ~np.isin(kept["row"], list(deleted)) if deleted else None
    table = np.concatenate([kept if keep is None else kept[keep], added])
    if len(table):
        table["offset"] = np.concatenate([[0], np.cumsum(table["length"][:-1], dtype=np.int64)])

    def write_jsonl(tmp: Path) -> None:
        with open(tmp, "wb") as dst:
            if old is not None:
                with open(old.jsonl, "rb") as src:
                    if keep is None:
                        shutil.copyfileobj(src, dst)
                    else:
                        dst.writelines(line for line, k in zip(src, keep, strict=True) if k)
            added_lines.seek(0)
            shutil.copyfileobj(added_lines, dst)

    def write_table(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, table, allow_pickle=False)

    atomic_write_file(stem.with_name(stem.name + ".jsonl"), write_jsonl)
    atomic_write_file(stem.with_name(stem.name + ".rows.npy"), write_table)
