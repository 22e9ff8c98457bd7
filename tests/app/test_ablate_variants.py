"""``ablate``'s method-variant grids: their rows, folders and note; a finished run of another
configuration is never reused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dcinet.app.ablate import grid_entries, grid_note, run_folder
from dcinet.app.cli import main
from dcinet.config import load_config, save_config
from dcinet.errors import DcinetError
from dcinet.train.loop import train_or_resume

PLAIN = ("resnet10t", {"interaction": "none"})
DCINET = ("resnet10t+CMSI+CMCI", {"interaction": "cmsi+cmci"})


def test_variant_grids_try_each_setting_beside_the_plain_network_and_the_paper():
    cfg = load_config("cpu-tiny")
    assert grid_entries("cmci_modes", cfg) == [
        PLAIN, DCINET, ("resnet10t+CMSI+CMCI cmci_mode=symmetric",
                        {"interaction": "cmsi+cmci", "cmci_mode": "symmetric"})]
    assert grid_entries("cmsi_smoothing", cfg)[2] == (
        "resnet10t+CMSI+CMCI label_smoothing=0.1", {"interaction": "cmsi+cmci", "label_smoothing": 0.1})
    assert grid_entries("cmsi_boxes", cfg)[2:] == [
        ("resnet10t+CMSI+CMCI cmsi_box=beta", {"interaction": "cmsi+cmci", "cmsi_box": "beta"}),
        ("resnet10t+CMSI+CMCI cutmix_minmax=[0.3,0.8]",
         {"interaction": "cmsi+cmci", "cutmix_minmax": [0.3, 0.8]})]
    variants = grid_entries("variants", cfg)
    assert [name for name, _ in variants] == [
        "resnet10t", "resnet10t+CMSI+CMCI", "resnet10t+CMSI+CMCI cmci_mode=symmetric",
        "resnet10t+CMSI+CMCI label_smoothing=0.1", "resnet10t+CMSI+CMCI cmsi_box=beta",
        "resnet10t+CMSI+CMCI cutmix_minmax=[0.3,0.8]", "resnet10t+CMSI+CMCI cmsi_pairs=cross"]
    assert grid_entries("cmsi_pairs", cfg) == [
        PLAIN, DCINET, ("resnet10t+CMSI+CMCI cmsi_pairs=cross",
                        {"interaction": "cmsi+cmci", "cmsi_pairs": "cross"})]
    cross = load_config("cpu-tiny", ["cmsi_pairs=cross"])
    assert [n for n, _ in grid_entries("cmsi_pairs", cross)][2:] == ["resnet10t+CMSI+CMCI cmsi_pairs=flip"]
    assert grid_entries("baselines", cfg) == grid_entries("cmsi_pairs", cfg)  # no probe: no weights
    assert "probe) is left out" in grid_note("baselines", cfg)
    pretrained = load_config("cpu-pretrained")
    assert [n for n, _ in grid_entries("baselines", pretrained)] == [
        "efficientnet_lite0", "efficientnet_lite0+CMSI+CMCI", "efficientnet_lite0+CMSI+CMCI cmsi_pairs=cross",
        "probe"]
    assert grid_entries("baselines", pretrained)[-1][1] == {"method": "probe", "new_layer_lr_mult": 1.0}
    for _, overrides in variants:
        replace(cfg, **overrides).validate()
    # the DCINet row is the components grid's, so the two grids share its runs
    assert grid_entries("components", cfg)[-1] == DCINET


def test_the_config_own_value_is_the_dcinet_row_and_the_other_one_is_tried():
    cfg = load_config("cpu-tiny", ["label_smoothing=0.1", "cmci_mode=symmetric"])
    assert grid_entries("cmsi_smoothing", cfg)[2:] == [
        ("resnet10t+CMSI+CMCI label_smoothing=0.0", {"interaction": "cmsi+cmci", "label_smoothing": 0.0})]
    assert [n for n, _ in grid_entries("cmci_modes", cfg)][2:] == ["resnet10t+CMSI+CMCI cmci_mode=paper"]
    beta = load_config("cpu-tiny", ["cmsi_box=beta"])
    assert [n for n, _ in grid_entries("cmsi_boxes", beta)][2:] == [
        "resnet10t+CMSI+CMCI cmsi_box=minmax", "resnet10t+CMSI+CMCI cmsi_box=minmax cutmix_minmax=[0.3,0.8]"]
    note = grid_note("variants", cfg)
    assert note.startswith("resnet10t+CMSI+CMCI: cmci_mode=symmetric, label_smoothing=0.1, "
                           "cmsi_box=minmax, cutmix_minmax=[0.5,0.6], cmsi_pairs=flip;")
    assert grid_note("components", cfg) == ""


def test_run_folders_keep_the_old_names_and_make_safe_new_ones():
    assert run_folder("resnet10t+CMSI+CMCI") == "resnet10t_CMSI_CMCI"  # as before: + -> _
    assert run_folder("layer3") == "layer3" and run_folder("vit_base_patch16_224") == "vit_base_patch16_224"
    assert run_folder("resnet10t+CMSI+CMCI cmci_mode=symmetric") == "resnet10t_CMSI_CMCI_cmci_mode_symmetric"
    assert run_folder("resnet10t+CMSI+CMCI cutmix_minmax=[0.3,0.8]") == "resnet10t_CMSI_CMCI_cutmix_minmax_0.3_0.8"
    names = [run_folder(n) for n, _ in grid_entries("variants", load_config("cpu-tiny"))]
    assert len(set(names)) == len(names)


def test_a_finished_run_of_another_configuration_is_refused_not_reused(tmp_path: Path):
    cfg = load_config("cpu-tiny", ["epochs=1"])
    run = tmp_path / "run"
    run.mkdir()
    save_config(cfg, run / "config.yaml")
    (run / "run.json").write_text("{}")
    (run / "metrics.csv").write_text("epoch,loss\n1,0.5\n")
    assert train_or_resume(cfg, tmp_path / "no-data", run, progress=False) == [{"epoch": 1, "loss": 0.5}]
    with pytest.raises(DcinetError, match=r"finished run of another configuration \(label_smoothing: 0.0 -> 0.1\)"):
        train_or_resume(replace(cfg, label_smoothing=0.1), tmp_path / "no-data", run, progress=False)
    # keys a resume may change (here epochs, fewer than were trained) still reuse the run
    assert train_or_resume(replace(cfg, epochs=1, log_every=5), tmp_path / "no-data", run, progress=False)


@pytest.mark.slow
def test_cmci_modes_grid_end_to_end(tiny_builtin: Path, tmp_path: Path, tiny_overrides):
    out = tmp_path / "ablation"
    assert main(["ablate", "--grid", "cmci_modes", "--config", "cpu-tiny", "--data",
                 str(tiny_builtin), "--out", str(out), "--quiet", *tiny_overrides]) == 0
    table = (out / "cmci_modes.md").read_text()
    for name in ("resnet10t", "resnet10t+CMSI+CMCI", "resnet10t+CMSI+CMCI cmci_mode=symmetric"):
        assert f"| {name} |" in table
    assert "resnet10t+CMSI+CMCI: cmci_mode=paper, label_smoothing=0.0" in table
    assert sorted(p.parent.name for p in out.glob("*/checkpoint.json")) == [
        "resnet10t-s0", "resnet10t_CMSI_CMCI-s0", "resnet10t_CMSI_CMCI_cmci_mode_symmetric-s0"]
