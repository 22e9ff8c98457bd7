"""``dcinet index``: FAISS indexes (flat or ivf) over an ``embed`` folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcinet.data.records import MODALITIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build a FAISS index over embeddings from `dcinet embed`")
    p.add_argument("embeddings", type=Path, metavar="EMB_DIR")
    p.add_argument("--out", type=Path, required=True, metavar="INDEX_DIR")
    p.add_argument("--kind", choices=("flat", "ivf"), default="flat",
                   help="flat: exact cosine (default); ivf: approximate, for large galleries")
    p.add_argument("--modalities", nargs="+", choices=MODALITIES,
                   help="gallery modalities to index (default: all embedded)")
    p.add_argument("--nlist", type=int, help="ivf cells (default: about 4 sqrt(N))")
    p.add_argument("--nprobe", type=int, default=8, help="ivf cells visited per query")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.retrieval.index import build_index

    info = build_index(args.embeddings, args.out, args.kind, args.modalities, args.nlist,
                       args.nprobe)
    counts = ", ".join(f"{m} {n}" for m, n in info["counts"].items())
    print(f"{args.out}: {info['kind']} index of {info['dim']}-d {info['feature']} vectors ({counts})")
    return 0
