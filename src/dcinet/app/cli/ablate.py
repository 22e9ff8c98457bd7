"""``dcinet ablate``: the paper's ablation grids (Tables 1-4) and the method variants in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcinet.app.cli.options import add_inference, inference_from_args
from dcinet.config import ABLATION_GRIDS, FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="train and evaluate an ablation grid (paper Tables 1-4, "
                                      "method variants)")
    p.add_argument("--grid", required=True, choices=ABLATION_GRIDS,
                   help="components = Tables 1-2, layers = Table 3, backbones = Table 4, "
                        "methods = DCINet vs the FGCrossNet baseline (and the frozen-encoder "
                        "probe, with pretrained weights), baselines = the plain network vs DCINet "
                        "with both cmsi_pairs and the probe; against the plain network and "
                        "DCINet: cmci_modes = CMCI paper vs symmetric triples, cmsi_smoothing = "
                        "CMSI label smoothing 0 vs 0.1, cmsi_boxes = CutMix box [0.5, 0.6] vs "
                        "Beta vs [0.3, 0.8], cmsi_pairs = CMSI boxes from the flipped shuffle vs "
                        "from another modality, variants = all of them")
    p.add_argument("--config", default="paper", help="preset or YAML file for every run")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--format", choices=FORMATS)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seeds", type=int, default=1, help="seeds per model (mean ± std)")
    p.add_argument("--backbones", help="comma-separated timm names for --grid backbones "
                                       "(default: resnetv2_50x1_bit,vgg16,vgg19,vit_base_patch16_224)")
    p.add_argument("--row", action="append", dest="rows", metavar="NAME",
                   help="run only this row of the grid (its name in the table, e.g. "
                        "resnet10t+CMSI+CMCI) and the baseline, its first row; repeatable")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="train N runs at once on the CPU, each in its own process with 1/N of the "
                        "threads, then evaluate them (default 1)")
    p.add_argument("--quiet", action="store_true")
    add_inference(p)
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.app.ablate import run_grid
    from dcinet.config import load_config, parse_overrides

    overrides = parse_overrides(args.overrides)
    if args.format:
        overrides["format"] = args.format
    cfg = load_config(args.config, overrides)
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()] if args.backbones else None
    inference = inference_from_args(args)
    path = run_grid(args.grid, cfg, args.data, args.out, args.seeds, backbones, not args.quiet,
                    inference, args.rows, args.jobs)
    if not inference.dist.is_main:
        return 0
    print(path.read_text())
    print(f"table: {path}\nloss curves: {path.with_name(args.grid + '_loss.png')}")
    return 0
