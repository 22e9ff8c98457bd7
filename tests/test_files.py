"""Atomic writes: the new bytes or the old ones, never a temporary file left behind."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from dcinet.files import atomic_save_npy, atomic_write_bytes
from dcinet.train.checkpoint import TEMP_FILE


def test_writes_replaces_and_creates_the_folder(tmp_path):
    path = tmp_path / "sub" / "run.json"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second", durable=False)
    assert path.read_bytes() == b"second"
    assert os.listdir(path.parent) == ["run.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    path.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["metrics.csv"]


def test_concurrent_writers_of_one_path_never_share_a_temporary(tmp_path):
    # the spectrogram cache: several loaders may write the same entry at once
    path, arrays = tmp_path / "entry.npy", [np.full((64, 64), i, np.float32) for i in range(8)]
    threads = [threading.Thread(target=atomic_save_npy, args=(path, a)) for a in arrays for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loaded = np.load(path)
    assert any(np.array_equal(loaded, a) for a in arrays)  # one whole array, not a mixture
    assert os.listdir(tmp_path) == ["entry.npy"]


def test_checkpoint_leftover_names_match_the_temporaries_written_here(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append(os.path.basename(src)),
                                                          real_replace(src, dst)))
    atomic_write_bytes(tmp_path / "checkpoint.json", b"{}")
    assert len(seen) == 1 and TEMP_FILE.fullmatch(seen[0])


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "run.json", b"{}")
        atomic_save_npy(tmp_path / "a.npy", np.zeros(3))
        (tmp_path / "plain.txt").write_bytes(b"")  # what an ordinary open() gives
    finally:
        os.umask(old)
    for name in ("run.json", "a.npy", "plain.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
