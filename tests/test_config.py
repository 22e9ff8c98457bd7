from pathlib import Path

import pytest

from dcinet.config import Config, load_config, parse_overrides, preset_names, save_config
from dcinet.errors import DcinetError


def test_paper_preset_matches_section_4_2():
    cfg = load_config("paper")
    assert (cfg.backbone, cfg.img_size, cfg.resize) == ("resnet50", 448, 510)
    assert (cfg.lr, cfg.weight_decay, cfg.batch_per_modality, cfg.epochs) == (0.001, 0.0001, 8, 150)
    assert (cfg.mixup_alpha, cfg.cutmix_alpha, cfg.cutmix_minmax) == (0.8, 1.0, [0.5, 0.6])
    assert (cfg.mix_prob, cfg.switch_prob) == (1.0, 1.0)
    assert (cfg.layer, cfg.interaction) == (4, "cmsi+cmci")


def test_presets_listed_and_valid():
    assert {"paper", "cpu-tiny"} <= set(preset_names())
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
