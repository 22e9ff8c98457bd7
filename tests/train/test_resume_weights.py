"""A resumed run restores every weight from its checkpoint: the pretrained source (a file, or
timm's hub) is not read again, so a resume works offline and after the file is gone."""

from __future__ import annotations

from pathlib import Path

import timm
from safetensors.torch import save_file

from dcinet.config import load_config
from dcinet.rundir import read_pointer
from dcinet.train.loop import fit


def test_resume_does_not_reload_the_pretrained_weights(tiny_builtin: Path, tmp_path: Path,
                                                       tiny_overrides):
    weights = tmp_path / "resnet18.safetensors"
    net = timm.create_model("resnet18", pretrained=False, num_classes=4)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    run = tmp_path / "run"
    cfg = load_config("cpu-tiny", [*tiny_overrides, f"pretrained={weights}"])
    fit(cfg, tiny_builtin, run, progress=False)
    weights.unlink()
    more = load_config("cpu-tiny", [*tiny_overrides, f"pretrained={weights}", "epochs=2"])
    fit(more, tiny_builtin, run, resume=True, progress=False)
    assert read_pointer(run)["epoch"] == 2
