"""The command line: key=value overrides anywhere among the flags, stray arguments refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dcinet.app.cli import main, parse


def test_overrides_may_stand_between_and_after_flags():
    args = parse(["train", "epochs=3", "--config", "cpu-tiny", "--data", "D", "lr=0.1",
                  "--out", "R", "--quiet", "seed=4"])
    assert args.overrides == ["epochs=3", "lr=0.1", "seed=4"]
    assert (args.config, args.data, args.out, args.quiet) == ("cpu-tiny", Path("D"), Path("R"), True)
    assert parse(["train", "--data", "D", "--out", "R"]).overrides == []


@pytest.mark.parametrize("argv", [
    ["train", "--data", "D", "--out", "R", "--bogus"],        # unknown flag
    ["train", "--data", "D", "--out", "R", "epochs=3", "--quiet", "oops"],  # not key=value
    ["index", "E", "--out", "I", "k=3"],                      # a verb without overrides
])
def test_stray_arguments_exit_2_naming_them(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    assert f"unrecognized arguments: {argv[-1]}" in capsys.readouterr().err


def test_an_override_without_equals_sign_is_a_user_error(capsys):
    assert main(["train", "--data", "D", "--out", "R", "--quiet", "oops"]) == 2
    assert "override 'oops' is not of the form key=value" in capsys.readouterr().err


def test_building_the_parser_loads_neither_torch_nor_numpy():
    """``dcinet --help`` and a usage error answer at once: only a verb that runs loads torch."""
    code = ("import sys; from dcinet.app.cli import build_parser; build_parser(); "
            "loaded = {'torch', 'numpy'} & set(sys.modules); assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_without_config_names_the_presets_and_writes_nothing(tmp_path, capsys):
    """No silent default: the paper preset would reach for the hub and a GPU on a laptop."""
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--config is required" in err
    assert all(p in err for p in ("cpu-pretrained", "cpu-tiny", "paper"))
    assert not run.exists()
