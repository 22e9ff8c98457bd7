import dataclasses
from pathlib import Path

import pytest

from dcinet.app.cli import main
from dcinet.config import Config, load_config, parse_overrides, preset_names, save_config
from dcinet.errors import DcinetError


def test_paper_preset_matches_section_4_2():
    cfg = load_config("paper")
    assert (cfg.backbone, cfg.img_size, cfg.resize) == ("resnetv2_50x1_bit", 448, 510)
    assert cfg.pretrained == "timm:resnetv2_50x1_bit.goog_in21k"  # ResNet-50, ImageNet-21k
    assert (cfg.lr, cfg.weight_decay, cfg.batch_per_modality, cfg.epochs) == (0.001, 0.0001, 8, 150)
    assert (cfg.mixup_alpha, cfg.cutmix_alpha, cfg.cutmix_minmax) == (0.8, 1.0, [0.5, 0.6])
    assert (cfg.mix_prob, cfg.switch_prob) == (1.0, 1.0)
    assert (cfg.layer, cfg.interaction) == (4, "cmsi+cmci")
    # the variants default to the paper (label smoothing: not in the paper; dcinet's 0.0)
    assert (cfg.cmci_mode, cfg.cmsi_box, cfg.label_smoothing) == ("paper", "minmax", 0.0)


def test_cpu_pretrained_preset_is_the_recipe_with_augmentation():
    cfg = load_config("cpu-pretrained")
    assert (cfg.backbone, cfg.pretrained) == ("efficientnet_lite0", "efficientnet_lite0")
    assert cfg.aug_crop_scale < 1 and cfg.aug_flip > 0 and cfg.aug_color_jitter > 0
    assert cfg.aug_time_masks > 0 and cfg.aug_freq_masks > 0
    assert cfg.aug_sentence_drop > 0 and cfg.aug_sentence_shuffle > 0
    assert cfg.warmup_epochs >= 1 and cfg.new_layer_lr_mult > 1 and cfg.ce_label_smoothing > 0
    assert cfg.grad_clip_norm > 0 and 0 < cfg.ema_decay < 1 and cfg.accum_steps == 1


def test_the_defaults_and_the_paper_preset_augment_nothing():
    for cfg in (Config(), load_config("paper"), load_config("cpu-tiny")):
        assert (cfg.aug_crop_scale, cfg.aug_flip, cfg.aug_color_jitter, cfg.aug_time_masks,
                cfg.aug_freq_masks, cfg.aug_sentence_drop, cfg.aug_sentence_shuffle) == (
                    1.0, 0.0, 0.0, 0, 0, 0.0, 0.0)
        assert (cfg.new_layer_lr_mult, cfg.ce_label_smoothing, cfg.grad_clip_norm,
                cfg.ema_decay, cfg.accum_steps) == (1.0, 0.0, 0.0, 0.0, 1)


def test_presets_listed_and_valid():
    assert {"paper", "cpu-tiny", "cpu-pretrained"} <= set(preset_names())
    for name in preset_names():
        assert isinstance(load_config(name), Config)


def test_overrides_are_typed():
    cfg = load_config("paper", ["epochs=3", "layer=3", "interaction=cmsi", "lr=0.5",
                                "cutmix_minmax=[0.4,0.5]", "pretrained=/x/y.safetensors"])
    assert cfg.epochs == 3 and cfg.layer == 3 and cfg.interaction == "cmsi" and cfg.lr == 0.5
    assert cfg.cutmix_minmax == [0.4, 0.5] and cfg.pretrained == "/x/y.safetensors"


@pytest.mark.parametrize("override, needle", [
    (["epochs=three"], "epochs"),
    (["layer=5"], "layer"),
    (["interaction=both"], "interaction"),
    (["colour=red"], "colour"),
    (["epochs"], "key=value"),
    (["amp=maybe"], "amp"),
    (["epochs=2.5"], "epochs"),
    (["cutmix_minmax=[0.7,0.6]"], "cutmix_minmax"),
    (["resize=10"], "resize"),
    (["sampler=class_aware", "samples_per_class=3"], "samples_per_class"),
])
def test_bad_overrides_name_the_key(override, needle):
    with pytest.raises(DcinetError, match=needle):
        load_config("paper", override)


def test_unknown_preset_and_bad_file(tmp_path: Path):
    with pytest.raises(DcinetError, match="unknown config"):
        load_config("no-such-preset")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(DcinetError, match="not valid YAML"):
        load_config(str(bad))
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(DcinetError, match="mapping"):
        load_config(str(listy))
    with pytest.raises(DcinetError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))


def test_saved_config_round_trips(tmp_path: Path):
    cfg = load_config("cpu-tiny", ["seed=7", "pretrained=efficientnet_lite0"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(str(tmp_path / "config.yaml")) == cfg


def test_parse_overrides_yaml_values():
    assert parse_overrides(["a=1", "b=true", "c=x", "d=[1, 2]", "e="]) == {
        "a": 1, "b": True, "c": "x", "d": [1, 2], "e": None}


NAN, INF = float("nan"), float("inf")

# At least one bad value for every key of Config; each must be refused by validate(), naming the
# key. A key added to Config without a rule and a row here fails the coverage check below.
BAD_VALUES: dict[str, list[object]] = {
    "method": ["dcinetx", None],
    "backbone": ["", "  ", 3],
    "layer": [0, 5, 2.0, True],
    "interaction": ["both"],
    "pretrained": ["", 7],
    "text_embedding": ["glove"],
    "text_channels": [0, -1],
    "img_size": [0, 64.0],
    "resize": [0, 10],  # 10 < img_size
    "text_len": [0],
    "sample_rate": [0],
    "n_fft": [0],
    "hop_length": [-128],
    "audio_seconds": [-1.0, NAN, INF, "5", None],
    "audio_hop_seconds": [0, -2.5, NAN, 2.5],  # 2.5: windows need audio_seconds > 0 (default 0)
    "audio_energy_floor_db": [-10.0, NAN, "40"],
    "video_frames": [0],
    "mixup_alpha": [-0.1, NAN],
    "cutmix_alpha": [-1.0, INF],
    "cutmix_minmax": [[0.6, 0.5], [0.0, 0.5], [0.5, 1.0], [0.5], [0.5, 0.6, 0.7], ["a", "b"],
                      None],
    "mix_prob": [-0.01, 1.01],
    "switch_prob": [1.5, "1"],
    "label_smoothing": [-0.1, 1.0],
    "cmsi_box": ["box", "Beta", None],
    "cmsi_pairs": ["random", "Cross", None],
    "cmci_mode": ["both", "", 1],
    "w_modal": [-1.0],
    "w_dual": [-0.5],
    "w_center": [-0.001],
    "w_quadruplet": [-0.1],
    "quadruplet_margin1": [-1.0],
    "quadruplet_margin2": [NAN],
    "format": ["csv"],
    "cub_train_flag": [2, -1],
    "lists_dir": ["", "  ", 3],
    "num_classes": [0, -2, 1.5],
    "modalities": [[], ["image", "image"], ["image", ""], "image", [["image"]]],
    "batch_per_modality": [0],
    "sampler": ["balanced"],
    "samples_per_class": [0],
    "num_workers": [-1],
    "prefetch_factor": [0, -1, 1.5, True],
    "decoded_cache_mb": [-1, 1.5],
    "skip_bad": ["yes", 1, None],
    "aug_crop_scale": [0.0, 1.5, -0.2],
    "aug_flip": [-0.1, 1.1],
    "aug_color_jitter": [-0.1, 1.5, NAN],
    "aug_time_masks": [-1, 1.5],
    "aug_time_mask_max": [-0.1, 1.5],
    "aug_freq_masks": [-2, True],
    "aug_freq_mask_max": [1.01, INF],
    "aug_sentence_drop": [-0.5, 2.0],
    "aug_sentence_shuffle": [1.5, "0.5"],
    "lr": [0, -0.1, INF],
    "momentum": [-0.1, 1.0],
    "weight_decay": [-1e-4],
    "epochs": [0],
    "scheduler": ["linear"],
    "step_size": [0],
    "warmup_epochs": [-1, 0.5],
    "new_layer_lr_mult": [0, -1.0, INF],
    "ce_label_smoothing": [-0.1, 1.0],
    "grad_clip_norm": [-1.0, NAN],
    "ema_decay": [-0.1, 1.0],
    "accum_steps": [0, 1.5],
    "seed": [-1, 2**32, 1.5],
    "amp": ["true"],
    "amp_dtype": ["float16", "bfloat16", True],
    "channels_last": [0],
    "deterministic": [None],
    "compile": ["yes", 1],
    "sync_bn": [None, "true"],
    "eval_feature": ["probs"],
    "log_every": [0, -1],
    "val_fraction": [-0.1, 1.0, NAN, "0.2"],
    "val_every": [-1, 1.5, True],
}


def test_every_key_refuses_its_bad_values_in_one_line_naming_the_key():
    assert set(BAD_VALUES) == {f.name for f in dataclasses.fields(Config)}
    for key, values in BAD_VALUES.items():
        for value in values:
            with pytest.raises(DcinetError, match=f"'{key}'") as caught:
                dataclasses.replace(Config(), **{key: value}).validate()
            assert "\n" not in str(caught.value), (key, value)


def test_edge_values_are_accepted():
    edges = {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "mix_prob": 0.0, "switch_prob": 0.0,
             "momentum": 0.0, "weight_decay": 0.0, "w_modal": 0.0, "w_dual": 0.0,
             "label_smoothing": 0.0, "num_workers": 0, "decoded_cache_mb": 0, "cub_train_flag": 0,
             "cutmix_minmax": [0.5, 0.5], "seed": 2**32 - 1, "lr": 1e-9, "aug_crop_scale": 1e-3,
             "aug_flip": 1.0, "aug_sentence_drop": 1.0, "aug_time_mask_max": 1.0,
             "grad_clip_norm": 0.0, "ema_decay": 0.0, "new_layer_lr_mult": 1e-3}
    assert dataclasses.replace(Config(), **edges).validate().seed == 2**32 - 1


def test_train_refuses_a_bad_key_before_any_work(tmp_path: Path, capsys):
    run = tmp_path / "R"
    code = main(["train", "--config", "cpu-tiny", "--data", str(tmp_path / "X"), "--out", str(run),
                 "log_every=0"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "'log_every'" in err
    assert not run.exists()


def test_audio_window_keys_constrain_each_other():
    windows = dataclasses.replace(Config(), audio_seconds=4.0, audio_hop_seconds=2.0).validate()
    assert (windows.audio_seconds, windows.audio_hop_seconds) == (4.0, 2.0)
    assert dataclasses.replace(windows, audio_hop_seconds=4.0).validate().audio_hop_seconds == 4.0
    with pytest.raises(DcinetError, match="'audio_hop_seconds'.*leave audio out"):
        dataclasses.replace(windows, audio_hop_seconds=4.5).validate()
    edges = dataclasses.replace(Config(), audio_energy_floor_db=0.0).validate()
    assert edges.audio_energy_floor_db == 0.0 and edges.audio_seconds == 0.0  # whole recordings
    assert load_config("cpu-tiny", ["audio_seconds=5", "audio_energy_floor_db=null"]).audio_energy_floor_db is None
    for preset in ("paper", "cpu-tiny"):  # both keep whole recordings, as before these keys
        assert load_config(preset).audio_seconds == 0.0


def test_fgxmedia_keys_need_the_fgxmedia_format():
    with pytest.raises(DcinetError, match="'lists_dir' and 'num_classes' apply to format fgxmedia"):
        dataclasses.replace(Config(), lists_dir="lists").validate()
    cfg = dataclasses.replace(Config(), format="fgxmedia", lists_dir="lists", num_classes=200)
    assert cfg.validate().num_classes == 200


def test_training_reads_the_configured_fgxmedia_lists(tmp_path: Path):
    from dcinet.data.readers import read_configured

    root = tmp_path / "fgx"
    root.mkdir()
    lists = tmp_path / "elsewhere"
    for modality in ("image", "text"):
        for split in ("train", "test"):
            (lists / modality).mkdir(parents=True, exist_ok=True)
            (lists / modality / f"{split}.txt").write_text(f"{modality}/{split}/a.x 0\n")
            (root / modality / split).mkdir(parents=True)
            (root / modality / split / "a.x").write_bytes(b"")
    cfg = dataclasses.replace(Config(), format="fgxmedia", lists_dir=str(lists), num_classes=5)
    collection = read_configured(root, cfg)
    assert collection.num_classes == 5 and len(collection.samples) == 4
    with pytest.raises(DcinetError):  # the default lists folder ROOT/list does not exist
        read_configured(root, dataclasses.replace(cfg, lists_dir=None))


def test_a_beta_box_needs_an_alpha():
    with pytest.raises(DcinetError, match="'cmsi_box' is beta"):
        dataclasses.replace(Config(), cmsi_box="beta", mixup_alpha=0.0, cutmix_alpha=0.0).validate()
    # the minmax box forces timm's CutMix alpha to 1, so both alphas may be 0 there
    assert dataclasses.replace(Config(), mixup_alpha=0.0, cutmix_alpha=0.0).validate()
    assert dataclasses.replace(Config(), cmsi_box="beta", mixup_alpha=0.0).validate()


def test_holding_items_out_needs_validation():
    with pytest.raises(DcinetError, match="'val_every' is 0"):
        dataclasses.replace(Config(), val_fraction=0.2, val_every=0).validate()
    assert dataclasses.replace(Config(), val_fraction=0.2, val_every=3).validate().val_every == 3


def test_probe_preset_is_cpu_pretrained_with_the_grids_probe_row():
    """``--config probe`` trains exactly the ``probe`` row of ``ablate --grid baselines
    --config cpu-pretrained``, so a table's row and the preset never drift apart."""
    from dataclasses import replace

    from dcinet.app.ablate import PROBE_ROW

    name, overrides = PROBE_ROW
    assert name == "probe"
    assert load_config("probe") == replace(load_config("cpu-pretrained"), **overrides).validate()
