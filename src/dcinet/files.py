"""Atomic file writes: readers see the old file or the new one, never a half-written one."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, then rename.

    The temporary file is ``.<name>.tmp-<pid>-<random>`` (unique, so concurrent writers of the
    same path never share one) and is removed if the write fails; the parent folder is created.

    Args:
        durable: flush the bytes to disk (``fsync``) before the rename, for files a crash must not
            leave empty (run records, pointers); ``False`` for caches that can be recomputed.
    Raises:
        OSError: the folder or the file cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_npy(path: Path, array, durable: bool = False) -> None:
    """:func:`atomic_write_bytes` of a numpy ``array`` in ``.npy`` format (no pickled objects)."""
    import numpy as np  # here, so that the config (and the command-line parser) stays light

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue(), durable)
