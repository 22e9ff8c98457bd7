"""``dcinet train`` on a dataset with a truncated PNG, a zero-length WAV and an empty text file:
refused (exit 2, every bad file named, no run directory left behind) without ``--skip-bad``;
with it the run finishes and ``RUN_DIR/skipped.txt`` lists each skipped file once. A bad file
that reached the training loader would raise while decoding, so a finished run also shows that
none of them was used."""

from __future__ import annotations

import shutil
from pathlib import Path

from dcinet.app.cli import main
from dcinet.rundir import read_metrics

FAST = ["img_size=32", "resize=36", "layer=3"]


def _damaged_copy(tiny_builtin: Path, root: Path) -> dict[str, Path]:
    """A copy of the dataset with one bad training file per modality; kind words -> file."""
    shutil.copytree(tiny_builtin, root)
    classes = sorted(p.name for p in (root / "image" / "train").iterdir())
    png = root / "image" / "train" / classes[0] / "0000.png"
    png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    wav = root / "audio" / "train" / classes[1] / "0001.wav"
    wav.write_bytes(b"")
    txt = root / "text" / "train" / classes[2] / "0002.txt"
    txt.write_bytes(b"")
    return {"unreadable image": png, "undecodable audio": wav, "bad text": txt}


def test_bad_files_stop_training_unless_skipped(tiny_builtin: Path, tmp_path: Path, tiny_overrides,
                                                capsys):
    bad = _damaged_copy(tiny_builtin, tmp_path / "data")
    run = tmp_path / "run"
    args = ["train", "--config", "cpu-tiny", "--data", str(tmp_path / "data"), "--out", str(run),
            "--quiet", *tiny_overrides, *FAST]

    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--skip-bad" in err and "Traceback" not in err
    for path in bad.values():
        assert str(path) in err
    assert not (run / "config.yaml").exists()  # the same command may be rerun with --skip-bad

    assert main([*args, "--skip-bad"]) == 0
    lines = (run / "skipped.txt").read_text().splitlines()
    assert len(lines) == len(bad)
    for kind, path in bad.items():
        naming = [line for line in lines if str(path) in line]
        assert len(naming) == 1 and naming[0].startswith(f"{kind}: {path}")
    assert [row["epoch"] for row in read_metrics(run)] == [1]
    assert "skipped 3 bad files" in capsys.readouterr().out
