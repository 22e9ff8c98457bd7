"""``dcinet report``: an HTML page with figures about a run's retrieval (or saved features)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcinet.app.cli.options import add_bootstrap, add_inference, inference_from_args
from dcinet.config import FORMATS, RETRIEVAL_FEATURES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML report: tables with intervals, per-class AP, "
                                      "confusions, curves, example queries")
    p.add_argument("run", type=Path, nargs="?", metavar="RUN_DIR_OR_CHECKPOINT",
                   help="the run to evaluate (its directory also gives the training curves)")
    p.add_argument("--out", required=True, type=Path, help="report folder (index.html inside)")
    p.add_argument("--data", type=Path, help="dataset root (default: the one the run was trained on)")
    p.add_argument("--format", choices=FORMATS)
    p.add_argument("--feature", choices=RETRIEVAL_FEATURES,
                   help="retrieval feature (default: the run's eval_feature, softmax)")
    p.add_argument("--features", type=Path, metavar="DIR",
                   help="report on the features of dcinet evaluate --save-features DIR instead "
                        "(no example queries)")
    p.add_argument("-k", type=int, default=5, help="results per example query (default 5)")
    p.add_argument("--classes", type=int, default=30,
                   help="classes per per-class AP figure, the worst (default 30)")
    p.add_argument("--pairs", type=int, default=10,
                   help="confused pairs per direction (default 10)")
    add_bootstrap(p)
    add_inference(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.app.report.build import build_report

    path = build_report(args.out, args.run, args.data, args.features, args.format, args.feature,
                        None if args.features else inference_from_args(args),
                        args.bootstrap, args.bootstrap_seed, args.k, args.classes, args.pairs,
                        progress=True)
    if path is not None:
        print(f"report: {path}")
    return 0
