"""``dcinet demo``: the main job on the built-in dataset (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate the built-in dataset, train cpu-tiny, evaluate, "
                                    "show example queries")
    p.add_argument("--data", type=Path, default=Path("data/builtin"),
                   help="where the built-in dataset is generated or reused")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run and results directory")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="cpu-tiny overrides, e.g. epochs=2")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.app.demo import run_demo

    run_demo(args.data, args.out, args.overrides)
    return 0
