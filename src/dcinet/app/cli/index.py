"""``dcinet index``: build a gallery index over an ``embed`` folder (FAISS or Milvus), append
embeddings to one, or delete items from one."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcinet.data.records import MODALITIES
from dcinet.errors import DcinetError

BUILD_OPTIONS = ("kind", "backend", "uri", "modalities", "nlist", "nprobe", "pq_m")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build, extend or prune a gallery index over embeddings "
                                     "from `dcinet embed`")
    p.add_argument("folder", type=Path, metavar="DIR",
                   help="EMB_DIR to build from (with --out), or the INDEX_DIR to change "
                        "(with --append / --delete)")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, metavar="INDEX_DIR", help="build (or rebuild) here")
    action.add_argument("--append", type=Path, metavar="EMB_DIR",
                        help="add these embeddings (same model) to the index DIR")
    action.add_argument("--delete", metavar="ID[,ID...]",
                        help="remove items from the index DIR by id (MODALITY/ROW, e.g. image/3)")
    p.add_argument("--backend", choices=("faiss", "milvus"),
                   help="faiss: files in INDEX_DIR (default); milvus: Milvus Lite in INDEX_DIR, "
                        "or the server of --uri")
    p.add_argument("--uri", metavar="URI",
                   help="milvus: a Milvus server or cluster, e.g. http://HOST:19530 "
                        "(token from MILVUS_TOKEN)")
    p.add_argument("--kind", choices=("flat", "ivf", "ivfpq"),
                   help="flat: exact cosine (default); ivf: approximate, for large galleries; "
                        "ivfpq (faiss): compressed, for galleries larger than memory")
    p.add_argument("--modalities", nargs="+", choices=MODALITIES,
                   help="gallery modalities to index (default: all embedded)")
    p.add_argument("--nlist", type=int, help="ivf / ivfpq cells (default: about 4 sqrt(N))")
    p.add_argument("--nprobe", type=int, help="ivf / ivfpq cells visited per query (default 8)")
    p.add_argument("--pq-m", type=int, help="ivfpq: one-byte codes per vector (default dim / 8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.retrieval.gallery import parse_keys
    from dcinet.retrieval.index import append_index, build_index, delete_items

    if args.out is None:
        given = [f"--{o.replace('_', '-')}" for o in BUILD_OPTIONS if getattr(args, o) is not None]
        if given:
            raise DcinetError(f"{given[0]} applies to building an index (--out) only")
    if args.append is not None:
        info = append_index(args.folder, args.append)
        done = f"appended {args.append}"
    elif args.delete is not None:
        keys = parse_keys(args.delete)
        info = delete_items(args.folder, keys)
        done = f"deleted {len(keys)} item{'s' * (len(keys) != 1)}"
    else:
        info = build_index(args.folder, args.out, args.kind or "flat", args.modalities, args.nlist,
                           8 if args.nprobe is None else args.nprobe, args.backend or "faiss",
                           args.uri, args.pq_m)
        done = "built"
    counts = ", ".join(f"{m} {n}" for m, n in info["counts"].items())
    print(f"{args.out or args.folder}: {done}; {info['backend']} {info['kind']} index of "
          f"{info['dim']}-d {info['feature']} vectors ({counts})")
    return 0
