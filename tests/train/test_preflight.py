"""``dcinet data check ROOT --config C``: every refusal ``train`` would make, before any training,
worded as ``train`` words them, and the batch it would fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.train.preflight import check_pretrained, train_refusals

SMALL = ["img_size=64", "resize=72", "text_len=48"]


def _check(root: Path, *args: str) -> int:
    return main(["data", "check", str(root), "--no-decode", *args])


def test_every_refusal_is_reported_not_only_the_first(tiny_builtin, tmp_path, capsys):
    missing = tmp_path / "weights.safetensors"
    code = _check(tiny_builtin, "--config", "cpu-tiny", "img_size=32", "resize=32",
                  f"pretrained={missing}")
    out = capsys.readouterr().out
    refusals = [line for line in out.splitlines() if line.startswith("train would refuse: ")]
    assert code == 2 and len(refusals) == 2, out
    assert "CMSI needs a map of at least 2x2 after layer 4" in refusals[0]
    assert f"pretrained '{missing}': no such file" in refusals[1]
    assert not (tmp_path / "run").exists()


def test_a_clean_dataset_says_train_would_start_and_what_it_would_fit(tiny_builtin, capsys):
    assert _check(tiny_builtin, "--config", "cpu-tiny", *SMALL) == 0
    out = capsys.readouterr().out
    # cpu-tiny draws 8 classes per step; the tiny built-in dataset has 4
    assert "train would note: only 4 classes have training items in every modality, so " \
           "batch_per_modality is lowered from 8 to 4" in out
    assert "train would refuse" not in out
    assert _check(tiny_builtin, "--config", "cpu-tiny", *SMALL, "batch_per_modality=4") == 0
    assert "train would start with this config" in capsys.readouterr().out


def test_preflight_agrees_with_train(tiny_builtin, tmp_path, tiny_overrides, capsys):
    """What the check refuses, train refuses with the same words; what it passes trains."""
    bad = ["backbone=resnet5O"]
    found = train_refusals(load_config("cpu-tiny", [*SMALL, *bad]), tiny_builtin)
    assert len(found.refusals) == 1
    assert main(["train", "--config", "cpu-tiny", "--data", str(tiny_builtin), "--out",
                 str(tmp_path / "run"), "--quiet", *tiny_overrides, *bad]) == 2
    assert capsys.readouterr().err.strip() == f"error: {found.refusals[0]}"


def test_overrides_need_a_config(tiny_builtin, capsys):
    assert _check(tiny_builtin, "epochs=2") == 2
    assert "overrides apply with --config" in capsys.readouterr().err


def test_pretrained_weights_are_checked_without_a_download(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from dcinet.errors import DcinetError
    from dcinet.models import pretrained

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(pretrained, "hub_reachable", lambda timeout=0: False)
    with pytest.raises(DcinetError, match="resnet18.a1_in1k are not in the cache"):
        check_pretrained("timm", "resnet18")
    monkeypatch.setattr(pretrained, "hub_reachable", lambda timeout=0: True)
    check_pretrained("timm", "resnet18")  # a hub that answers: train would download them
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    check_pretrained(str(weights), "resnet18")  # a file: read (and checked) when training
