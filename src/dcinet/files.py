"""Atomic file writes: readers see the old file or the new one, never a half-written one.

The new file gets the mode an ordinary ``open(path, "w")`` would give it (``0o666`` less the
process's umask), not the ``0o600`` of :func:`tempfile.mkstemp`.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``/proc/self/status``);
    elsewhere set and restored at once (``os.umask`` has no read-only form)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_file(path: Path, write: Callable[[Path], None], durable: bool = True) -> None:
    """Have ``write(tmp)`` fill a temporary file beside ``path``, then rename it to ``path``.

    For writers that take a file name (``faiss.write_index``) or stream large contents. The
    temporary file is ``.<name>.tmp-<pid>-<random>`` (unique, so concurrent writers of the same
    path never share one) and is removed if the write fails; the parent folder is created.

    Args:
        durable: flush the bytes to disk (``fsync``) before the rename, for files a crash must not
            leave empty (run records, pointers); ``False`` for caches that can be recomputed.
    Raises:
        OSError: the folder or the file cannot be written (and whatever ``write`` raises).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    try:
        write(Path(tmp))
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, then rename
    (:func:`atomic_write_file`)."""
    atomic_write_file(path, lambda tmp: tmp.write_bytes(data), durable)


def atomic_save_npy(path: Path, array, durable: bool = False) -> None:
    """:func:`atomic_write_bytes` of a numpy ``array`` in ``.npy`` format (no pickled objects)."""
    import numpy as np  # here, so that the config (and the command-line parser) stays light

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue(), durable)
