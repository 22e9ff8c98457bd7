"""``dcinet ablate``: every grid entry trained and evaluated, tables and loss figure written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dcinet.app.ablate import (
    format_grid_table,
    grid_entries,
    grid_note,
    one_modality_rows,
    pick_rows,
)
from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.errors import DcinetError


def test_grid_entries_follow_the_paper_tables():
    cfg = load_config("paper")
    assert [o["interaction"] for _, o in grid_entries("components", cfg)] == [
        "none", "cmci", "cmsi", "cmsi+cmci"]
    assert [o["layer"] for _, o in grid_entries("layers", cfg)] == [1, 2, 3, 4]
    assert [o["backbone"] for _, o in grid_entries("backbones", cfg)] == [
        "resnetv2_50x1_bit", "vgg16", "vgg19", "vit_base_patch16_224"]
    methods = grid_entries("methods", cfg)
    assert [(name, o["method"]) for name, o in methods] == [
        ("FGCrossNet", "fgcrossnet"), ("DCINet", "dcinet"), ("probe", "probe")]
    # the frozen-encoder baseline needs pretrained encoders: left out without, and the table says so
    tiny = load_config("cpu-tiny")
    assert [name for name, _ in grid_entries("methods", tiny)] == ["FGCrossNet", "DCINet"]
    assert "probe) is left out" in grid_note("methods", tiny) and grid_note("methods", cfg) == ""
    # every other key (backbone, schedule, data, seed) comes from the shared config
    assert set(methods[0][1]) == {"method"}
    assert methods[1][1]["interaction"] == "cmsi+cmci"
    with pytest.raises(DcinetError, match="unknown grid"):
        grid_entries("colours", cfg)


def test_backbones_grid_gives_each_backbone_weights_of_its_own(tmp_path: Path):
    def weights(pretrained, backbones=None):
        cfg = load_config("paper", {"pretrained": pretrained})
        return [o.get("pretrained") for _, o in grid_entries("backbones", cfg, backbones)]

    # the preset's 21k tag goes to its own backbone; the others load their default timm weights
    assert load_config("paper").pretrained == "timm:resnetv2_50x1_bit.goog_in21k"
    assert weights("timm:resnetv2_50x1_bit.goog_in21k") == [None, "timm", "timm", "timm"]
    assert weights("timm") == weights(None) == [None] * 4  # inherited: timm's default per backbone
    file = str(tmp_path / "resnet18.safetensors")
    assert weights(file, ["resnet18"]) == [None]  # one architecture: the file can apply
    with pytest.raises(DcinetError, match="trains 4 architectures but pretrained .* holds one"):
        weights(file)
    with pytest.raises(DcinetError, match="efficientnet_lite0.* holds one"):
        weights("efficientnet_lite0", ["resnet18", "efficientnet_lite0"])
    with pytest.raises(DcinetError, match="for backbone resnet18, which is not in the grid"):
        weights("timm:resnet18.a1_in1k")


def test_table_reports_mean_and_std_over_seeds():
    rows = {"A": [{"directions": {"i2t": 0.2, "t2i": 0.4}, "average_bimodal": 0.3},
                  {"directions": {"i2t": 0.4, "t2i": 0.6}, "average_bimodal": 0.5}]}
    table = format_grid_table("components", rows)
    assert "| model | i2t | t2i | average_bimodal |" in table
    assert "| A | 0.300 ± 0.141 | 0.500 ± 0.141 | 0.400 ± 0.141 |" in table
    assert "2 seed(s)" in table


@pytest.mark.slow
def test_components_grid_end_to_end(tiny_builtin: Path, tmp_path: Path, tiny_overrides):
    out = tmp_path / "ablation"
    code = main(["ablate", "--grid", "components", "--config", "cpu-tiny", "--data",
                 str(tiny_builtin), "--out", str(out), "--quiet", *tiny_overrides])
    assert code == 0
    table = (out / "components.md").read_text()
    for name in ("resnet10t", "resnet10t+CMCI", "resnet10t+CMSI", "resnet10t+CMSI+CMCI"):
        assert f"| {name} |" in table
    assert "i2t" in table and "a2all" in table
    assert (out / "components_loss.png").stat().st_size > 1000
    assert len(list(out.glob("*-s0/checkpoint.json"))) == 4
    # a second call reuses the finished runs instead of training again
    mtimes = {p: p.stat().st_mtime for p in out.glob("*-s0/model-1.safetensors")}
    assert main(["ablate", "--grid", "components", "--config", "cpu-tiny", "--data",
                 str(tiny_builtin), "--out", str(out), "--quiet", *tiny_overrides]) == 0
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes


def test_one_modality_leaves_the_cmci_rows_out_and_says_so():
    entries = grid_entries("components", load_config("cpu-tiny", {}))
    kept, note = one_modality_rows(entries, ["image"])
    assert kept == [("resnet10t", {"interaction": "none"}), ("resnet10t+CMSI", {"interaction": "cmsi"})]
    assert note == ("One modality (image): CMCI swaps channels between modalities and never fires "
                    "here, so its rows (resnet10t+CMCI, resnet10t+CMSI+CMCI) are left out.\n")
    assert one_modality_rows(entries, ["image", "audio"]) == (entries, "")
    cmsi_only = [e for e in entries if "CMCI" not in e[0]]
    assert one_modality_rows(cmsi_only, ["audio"]) == (cmsi_only, "")


def test_one_modality_trains_the_variant_rows_with_cmsi_alone():
    cfg = load_config("cpu-tiny", {})
    kept, note = one_modality_rows(grid_entries("variants", cfg), ["audio"])
    assert kept == [
        ("resnet10t", {"interaction": "none"}), ("resnet10t+CMSI", {"interaction": "cmsi"}),
        ("resnet10t+CMSI label_smoothing=0.1", {"interaction": "cmsi", "label_smoothing": 0.1}),
        ("resnet10t+CMSI cmsi_box=beta", {"interaction": "cmsi", "cmsi_box": "beta"}),
        ("resnet10t+CMSI cutmix_minmax=[0.3,0.8]", {"interaction": "cmsi", "cutmix_minmax": [0.3, 0.8]})]
    # cmci_mode=symmetric changes nothing once CMCI is off: the same run as the DCINet row
    assert note == ("One modality (audio): CMCI swaps channels between modalities and never fires "
                    "here, so its rows (resnet10t+CMSI+CMCI cmci_mode=symmetric) are left out and "
                    "these rows train CMSI alone: resnet10t+CMSI, resnet10t+CMSI label_smoothing=0.1, "
                    "resnet10t+CMSI cmsi_box=beta, resnet10t+CMSI cutmix_minmax=[0.3,0.8]; CMSI "
                    "has no other modality to pair a map with, so the cmsi_pairs rows "
                    "(resnet10t+CMSI+CMCI cmsi_pairs=cross) are left out.\n")
    assert grid_note("variants", cfg, cmsi_only=True).startswith(
        "resnet10t+CMSI: label_smoothing=0.0, cmsi_box=minmax, cutmix_minmax=[0.5,0.6], "
        "cmsi_pairs=flip;")
    layers, note = one_modality_rows(grid_entries("layers", cfg), ["image"])
    assert layers == [(f"layer{k}", {"interaction": "cmsi", "layer": k}) for k in (1, 2, 3, 4)]
    assert note.endswith(", so these rows train CMSI alone: layer1, layer2, layer3, layer4.\n")
    picked = pick_rows(grid_entries("components", cfg), ["resnet10t+CMSI+CMCI"])
    assert one_modality_rows(picked, ["text"])[0] == [("resnet10t", {"interaction": "none"}),
                                                      ("resnet10t+CMSI", {"interaction": "cmsi"})]


@pytest.mark.slow
def test_components_grid_on_one_modality_trains_two_rows(tiny_builtin: Path, tmp_path: Path,
                                                          tiny_overrides, capsys):
    audio = tmp_path / "audio-only"
    shutil.copytree(tiny_builtin / "audio", audio / "audio")
    out = tmp_path / "grid"
    assert main(["ablate", "--grid", "components", "--config", "cpu-tiny", "--data", str(audio),
                 "--out", str(out), *tiny_overrides, "img_size=32", "resize=36", "layer=3"]) == 0
    assert "its rows (resnet10t+CMCI, resnet10t+CMSI+CMCI) are left out" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*-s0")) == ["resnet10t-s0", "resnet10t_CMSI-s0"]
    table = (out / "components.md").read_text()
    assert "| resnet10t |" in table and "| resnet10t+CMSI |" in table and "CMCI |" not in table
    assert "| Δ a2a mAP vs resnet10t |" in table
    assert table.endswith("are left out.\n")


def test_row_picks_the_named_rows_and_keeps_the_baseline():
    entries = grid_entries("components", load_config("cpu-tiny", {}))
    assert pick_rows(entries, None) == entries and pick_rows(entries, []) == entries
    assert [n for n, _ in pick_rows(entries, ["resnet10t+CMSI+CMCI"])] == ["resnet10t",
                                                                          "resnet10t+CMSI+CMCI"]
    picked = pick_rows(entries, ["resnet10t+CMSI+CMCI", "resnet10t+CMCI", "resnet10t"])
    assert [n for n, _ in picked] == ["resnet10t", "resnet10t+CMCI", "resnet10t+CMSI+CMCI"]


def test_an_unknown_row_is_one_line_and_exit_2_before_any_work(tiny_builtin: Path, tmp_path: Path,
                                                               capsys):
    out = tmp_path / "grid"
    code = main(["ablate", "--grid", "components", "--config", "cpu-tiny", "--data",
                 str(tiny_builtin), "--out", str(out), "--row", "resnet10t+CMSl"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert err == ("error: --row 'resnet10t+CMSl' is not a row of this grid (its rows: resnet10t, "
                   "resnet10t+CMCI, resnet10t+CMSI, resnet10t+CMSI+CMCI)")
