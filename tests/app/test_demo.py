"""``dcinet demo``: generate, train, evaluate and show queries, in one command."""

from __future__ import annotations

import json
from pathlib import Path

from dcinet.app.cli import main
from dcinet.app.demo import run_demo

TINY = ["epochs=1", "text_len=48", "batch_per_modality=4", "samples_per_class=2", "log_every=1000"]


def test_the_demo_trains_evaluates_and_shows_a_query_per_modality(tmp_path: Path, capsys):
    result = run_demo(tmp_path / "data", tmp_path / "out", TINY, classes=4, per_class=8)
    printed = capsys.readouterr().out
    for step in ("[1/4] built-in dataset (4 classes x 8 per modality)", "[2/4] training DCINet",
                 "[3/4] evaluating", "[4/4] example queries", "done in "):
        assert step in printed
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["average_bimodal"] == result["average_bimodal"]
    assert set(saved["directions"]) >= {"i2t", "a2i", "t2a", "i2all"}
    assert (tmp_path / "out" / "run" / "checkpoint.json").is_file()
    queries = [line for line in printed.splitlines() if line.startswith("query [")]
    assert [q.split("]")[0] for q in queries] == ["query [image", "query [audio", "query [text"]
    ranks = [line.strip() for line in printed.splitlines() if line.startswith("  ") and ". " in line]
    assert len(ranks) == 15  # top 5 per query
    # a second demo reuses the dataset and the finished run
    mtime = (tmp_path / "out" / "run" / "model-1.safetensors").stat().st_mtime
    assert run_demo(tmp_path / "data", tmp_path / "out", TINY, classes=4, per_class=8) == result
    assert (tmp_path / "out" / "run" / "model-1.safetensors").stat().st_mtime == mtime


def test_a_bad_override_is_one_line_and_exit_2_before_any_work(tmp_path: Path, capsys):
    code = main(["demo", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
                 "epochs=0"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "epochs" in err and "\n" not in err
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()


def test_a_data_path_that_is_a_file_is_one_line_and_exit_2(tmp_path: Path, capsys):
    (tmp_path / "file").write_text("not a folder")
    code = main(["demo", "--data", str(tmp_path / "file"), "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.strip() == (f"error: synthetic dataset: {tmp_path / 'file'} "
                                               "exists and is not a folder")
    assert not (tmp_path / "out").exists()
