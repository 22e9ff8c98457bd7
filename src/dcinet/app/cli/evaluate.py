"""``dcinet evaluate``: mAP tables (paper Tables 1 and 2) for a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcinet.app.cli.options import add_inference, inference_from_args
from dcinet.config import FEATURES, FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="retrieval mAP of a trained run on the test split")
    p.add_argument("run", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--data", type=Path, help="dataset root (default: the one the run was trained on)")
    p.add_argument("--format", choices=FORMATS)
    p.add_argument("--feature", choices=FEATURES,
                   help="retrieval feature (default: the run's eval_feature, softmax)")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.add_argument("--csv", type=Path, help="write the results as CSV")
    p.add_argument("--save-features", type=Path, metavar="DIR",
                   help="write <modality>_features.npy and <modality>_labels.npy")
    add_inference(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.retrieval.evaluate import evaluate_run

    inference = inference_from_args(args)
    result = evaluate_run(args.run, args.data, args.format, args.feature, args.save_features,
                          inference, progress=True)
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    print(result.to_markdown())
    if args.json:
        result.to_json(args.json)
    if args.csv:
        result.to_csv(args.csv)
    return 0
