"""``dcinet embed``: a run's features of a dataset split, as .npy + JSONL (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcinet.app.cli.options import add_checkpoint, add_inference, inference_from_args
from dcinet.config import FEATURES, FORMATS
from dcinet.data.records import SPLITS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="write a trained run's embeddings of a dataset split")
    p.add_argument("run", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--data", type=Path, help="dataset root (default: the one the run was trained on)")
    p.add_argument("--format", choices=FORMATS)
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="default test; train and val as the run divided them (val_fraction)")
    add_checkpoint(p)
    p.add_argument("--out", type=Path, required=True, metavar="EMB_DIR")
    p.add_argument("--feature", choices=FEATURES,
                   help="default: the run's eval_feature (softmax), as evaluate uses")
    add_inference(p)
    p.add_argument("--chunk-size", type=int, default=1024,
                   help="rows per resumable chunk (rounded up to a multiple of the batch size)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.retrieval.embed import embed_run

    inference = inference_from_args(args)
    manifest = embed_run(args.run, args.data, args.out, args.split, args.feature, args.format,
                         args.chunk_size, inference, checkpoint=args.checkpoint)
    if not inference.dist.is_main:
        return 0
    shapes = ", ".join(f"{m} {v['count']} x {v['dim']}" for m, v in manifest["modalities"].items())
    print(f"{args.out}: {manifest['feature']} features of the {manifest['split']} split ({shapes})")
    return 0
