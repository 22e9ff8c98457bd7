"""``dcinet search``: ranked gallery items for an image, audio or text query."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dcinet.app.cli.options import add_device
from dcinet.data.records import MODALITIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search an index with an image, an audio clip or text")
    p.add_argument("index", type=Path, metavar="INDEX_DIR")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", type=Path, metavar="FILE")
    query.add_argument("--audio", type=Path, metavar="FILE")
    query.add_argument("--text", metavar="TEXT")
    p.add_argument("--modality", default="all", choices=(*MODALITIES, "all"),
                   help="gallery modality to search (default: all)")
    p.add_argument("--class", dest="class_name", metavar="NAME",
                   help="only items of this class (as listed in the index)")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--run", type=Path, help="the run the index was built from, if it was moved")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.data.audio import is_picture
    from dcinet.retrieval.search import Searcher

    modality = "image" if args.image else "audio" if args.audio else "text"
    query = args.image or args.audio or args.text
    if args.audio and is_picture(args.audio):
        print(f"note: {args.audio} is a picture: read as a ready-made spectrogram", file=sys.stderr)
    searcher = Searcher(args.index, args.run, args.device)
    hits = searcher.search(query, modality, args.k, args.modality, class_name=args.class_name)
    if args.json:
        print(json.dumps({"query": {"modality": modality, "value": str(query)},
                          "results": [h.to_dict() for h in hits]}, indent=1))
        return 0
    print(f"{'rank':>4}  {'score':>7}  {'id':<12}  {'class':<28}  source")
    for h in hits:
        source = h.path if h.path is not None else ""
        if h.text is not None:
            source = f'"{h.text[:60]}{"…" if len(h.text) > 60 else ""}"'
            source += f"  {h.path}" if h.path is not None else ""
        print(f"{h.rank:>4}  {h.score:>7.4f}  {h.id:<12}  {h.class_name or '-':<28}  {source}")
    return 0
