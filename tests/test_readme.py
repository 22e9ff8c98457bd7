"""The front page cannot lie: README.md's "Your own data" commands and its Python API snippet run,
as written, on the tiny built-in dataset (the preset swapped for ``cpu-tiny`` with tiny settings,
so that the test trains in seconds)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from dcinet.app.cli import main, parse

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = ["epochs=1", "img_size=32", "resize=36", "layer=3", "text_len=48", "num_workers=0",
        "log_every=1000"]


def _block(section: str, language: str) -> str:
    """The first ``language`` code block under the README heading ``## section``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {section}\n")
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no {language} block under '## {section}'"
    return match.group(1)


def _commands() -> list[list[str]]:
    """The shell block's commands, comments dropped."""
    return [shlex.split(line, comments=True) for line in _block("Your own data", "bash").splitlines()
            if line.strip() and not line.startswith("#")]


@pytest.fixture
def workspace(tiny_builtin: Path, tmp_path: Path, monkeypatch) -> Path:
    """A folder holding the README's names: ``my-birds`` (a labelled dataset), ``my-photos`` (a
    user's unlabelled files, nested) and ``photo.jpg``."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_builtin, tmp_path / "my-birds")
    for i, path in enumerate(sorted((tiny_builtin / "image" / "test").rglob("*.png"))[:6]):
        target = tmp_path / "my-photos" / f"roll{i % 2}" / f"DSC{i:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    shutil.copy(target, tmp_path / "photo.jpg")  # PIL reads the content, whatever the name
    return tmp_path


def test_the_own_data_commands_run_as_written(workspace: Path, capsys):
    commands = _commands()
    assert [c[:2] for c in commands] == [["dcinet", "data"], ["dcinet", "train"], ["dcinet", "embed"],
                                         ["dcinet", "index"], ["dcinet", "search"],
                                         ["dcinet", "serve"]]
    for argv in commands[:-1]:
        args = argv[1:]
        if args[0] == "train":  # the README's preset, at test size
            args = [a if a != "cpu-pretrained" else "cpu-tiny" for a in args] + TINY
        assert main(args) == 0, f"README command failed: {shlex.join(argv)}"
    out = capsys.readouterr().out
    assert "train would" in out                       # data check --config
    assert (workspace / "runs" / "mine" / "checkpoint.json").is_file()
    assert (workspace / "index" / "index.json").is_file()
    hits = [line for line in out.splitlines() if re.match(r"\s+\d+\s+[\d.]+\s+image/", line)]
    assert hits and str(workspace / "my-photos") in hits[0]  # the user's own files, found
    serve = parse(commands[-1][1:])                     # serving blocks: parsed, not run
    assert serve.index == Path("index/")


def test_the_python_snippet_runs_as_written(workspace: Path):
    for argv in _commands()[1:4]:  # train, embed, index (as above)
        args = argv[1:]
        if args[0] == "train":
            args = [a if a != "cpu-pretrained" else "cpu-tiny" for a in args] + TINY
        assert main(args) == 0
    snippet = _block("Python API", "python")
    assert len(snippet.strip().splitlines()) <= 8
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith("tensor([[") and len(lines) >= 1 + 5
    assert all(str(workspace / "my-photos") in line for line in lines[-5:])
