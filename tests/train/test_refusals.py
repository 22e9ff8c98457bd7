"""A refused or failed run leaves nothing behind; what the data checks drop is said and recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.errors import DcinetError
from dcinet.train.loop import fit


def _train(data: Path, run: Path, overrides: list[str], *extra: str) -> int:
    return main(["train", "--config", "cpu-tiny", "--data", str(data), "--out", str(run),
                 "--quiet", *overrides, *extra])


@pytest.fixture
def vgg_weights(tmp_path: Path) -> Path:
    path = tmp_path / "vgg11.safetensors"
    net = timm.create_model("vgg11", pretrained=False, num_classes=3)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


@pytest.mark.parametrize("bad, message", [
    (["backbone=resnet5O"], "unknown backbone 'resnet5O'"),
    (["img_size=32", "resize=32", "layer=4"], "CMSI needs a map of at least 2x2 after layer 4"),
    (["pretrained=WEIGHTS"], "match no tensor of the backbone"),
])
def test_a_refused_run_leaves_no_run_directory(tiny_builtin, tmp_path, tiny_overrides, capsys,
                                               vgg_weights, bad, message):
    run = tmp_path / "run"
    bad = [b.replace("WEIGHTS", str(vgg_weights)) for b in bad]
    assert _train(tiny_builtin, run, tiny_overrides, *bad) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not run.exists()
    assert _train(tiny_builtin, run, tiny_overrides) == 0  # the corrected command just works


def test_refused_before_the_training_split_is_decoded(tiny_builtin, tmp_path, tiny_overrides,
                                                      monkeypatch):
    import dcinet.train.loop

    def must_not_run(*args, **kwargs):
        raise AssertionError("the training split was decoded before the config was checked")

    monkeypatch.setattr(dcinet.train.loop, "build_train_loader", must_not_run)
    assert _train(tiny_builtin, tmp_path / "run", tiny_overrides, "backbone=resnet5O") == 2


@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_first_epoch_removes_only_what_it_wrote(tiny_builtin, tmp_path, tiny_overrides,
                                                        monkeypatch, existed):
    import dcinet.train.loop

    run = tmp_path / "run"
    if existed:
        run.mkdir()
        (run / "notes.txt").write_text("the user's own file")

    def fails(*args, **kwargs):
        raise RuntimeError("first step failed")

    monkeypatch.setattr(dcinet.train.loop, "train_one_epoch", fails)
    with pytest.raises(RuntimeError, match="first step failed"):
        fit(load_config("cpu-tiny", tiny_overrides), tiny_builtin, run, progress=False)
    if existed:
        assert [p.name for p in run.iterdir()] == ["notes.txt"]
    else:
        assert not run.exists()


def test_a_failed_resume_keeps_the_earlier_run(tiny_builtin, tmp_path, tiny_overrides,
                                               monkeypatch):
    import dcinet.train.loop

    run = tmp_path / "run"
    cfg = load_config("cpu-tiny", tiny_overrides)
    fit(cfg, tiny_builtin, run, progress=False)
    before = sorted(p.name for p in run.iterdir())
    monkeypatch.setattr(dcinet.train.loop, "train_one_epoch",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        fit(load_config("cpu-tiny", [*tiny_overrides, "epochs=2"]), tiny_builtin, run,
            resume=True, progress=False)
    assert sorted(p.name for p in run.iterdir()) == before


def test_classes_missing_a_modality_and_cut_texts_are_said_and_recorded(
        tiny_builtin, tmp_path, tiny_overrides, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_builtin, data)
    lonely = sorted((data / "audio" / "train").iterdir())[0]
    shutil.rmtree(lonely)
    texts = sorted((data / "text" / "train").rglob("*.txt"))
    texts[0].write_text("a very long description " * 10)
    run = tmp_path / "run"
    assert main(["train", "--config", "cpu-tiny", "--data", str(data), "--out", str(run),
                 *tiny_overrides, "text_len=48"]) == 0
    out = capsys.readouterr().out
    assert "never draws 1 classes that lack a modality" in out
    dropped = json.loads((run / "run.json").read_text())["dropped"]
    assert dropped["classes_missing_a_modality"] == [lonely.name]
    expected = sum(len(" ".join(p.read_text().split())) > 48 for p in texts)
    assert dropped["texts_truncated"] == expected >= 1 and dropped["texts"] == len(texts)
    assert f"{expected} of {len(texts)} training texts are longer than text_len=48" in out


def test_the_random_sampler_drops_no_class(tiny_builtin, tmp_path, tiny_overrides):
    cfg = load_config("cpu-tiny", [*tiny_overrides, "sampler=random"])
    fit(cfg, tiny_builtin, tmp_path / "run", progress=False)
    dropped = json.loads((tmp_path / "run" / "run.json").read_text())["dropped"]
    assert dropped["classes_missing_a_modality"] == []


def test_create_model_refuses_a_state_dict_of_another_model():
    from dcinet.models.factory import create_model

    cfg = load_config("cpu-tiny", ["img_size=64", "resize=64"])
    other = create_model(load_config("cpu-tiny", ["backbone=resnet34"]), 3, ["image"]).state_dict()
    with pytest.raises(DcinetError, match="does not match the model"):
        create_model(cfg, 3, ["image"], state_dict=other)
    same = create_model(cfg, 3, ["image"]).state_dict()
    rebuilt = create_model(cfg, 3, ["image"], state_dict=same)
    assert all(torch.equal(v, rebuilt.state_dict()[k]) for k, v in same.items())


def test_an_existing_run_is_refused_before_any_weights_are_read(tiny_builtin, tmp_path,
                                                                 tiny_overrides, capsys,
                                                                 monkeypatch):
    import dcinet.train.loop

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("method: dcinet\n")

    def must_not_run(*args, **kwargs):
        raise AssertionError("the model (and its pretrained weights) was built first")

    monkeypatch.setattr(dcinet.train.loop, "create_model", must_not_run)
    assert _train(tiny_builtin, run, tiny_overrides) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds a run; pass --resume" in err
