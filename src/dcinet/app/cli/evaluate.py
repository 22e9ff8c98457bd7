"""``dcinet evaluate``: mAP tables (paper Tables 1 and 2) and every other metric for a trained run,
with bootstrap intervals."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcinet.app.cli.options import add_bootstrap, add_checkpoint, add_inference, inference_from_args
from dcinet.config import FORMATS, RETRIEVAL_FEATURES
from dcinet.data.records import SPLITS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="retrieval mAP (and mAP@R, R@K, P@K, per-class AP) of a "
                                        "trained run on the test split")
    p.add_argument("run", type=Path, metavar="RUN_DIR_OR_CHECKPOINT",
                   help="a run directory of dcinet train, or one of its weights files")
    p.add_argument("--data", type=Path, help="dataset root (default: the one the run was trained on)")
    p.add_argument("--format", choices=FORMATS)
    add_checkpoint(p)
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="default test; train and val as the run divided them (val: the items "
                        "it validated on)")
    p.add_argument("--feature", choices=RETRIEVAL_FEATURES,
                   help="retrieval feature (default: the run's eval_feature, softmax, the paper's); "
                        "embedding (or logits) for a dataset of classes the run never saw")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.add_argument("--csv", type=Path, help="write the results as CSV")
    p.add_argument("--save-features", type=Path, metavar="DIR",
                   help="write <modality>_features.npy, <modality>_labels.npy and classes.json")
    p.add_argument("--per-class", action="store_true",
                   help="also print the AP of every class (worst first)")
    add_bootstrap(p)
    add_inference(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.retrieval.evaluate import evaluate_run

    inference = inference_from_args(args)
    result = evaluate_run(args.run, args.data, args.format, args.feature, args.save_features,
                          inference, progress=True, resamples=args.bootstrap,
                          seed=args.bootstrap_seed, split=args.split,
                          checkpoint=args.checkpoint)
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    print(result.to_markdown(per_class=args.per_class))
    if args.json:
        result.to_json(args.json)
    if args.csv:
        result.to_csv(args.csv)
    return 0
