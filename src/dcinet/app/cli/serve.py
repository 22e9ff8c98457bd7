"""``dcinet serve``: the search page and JSON API over an index."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcinet.app.cli.options import add_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a search page and JSON API over an index")
    p.add_argument("index", type=Path, metavar="INDEX_DIR")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=20.0,
                   help="largest accepted upload in MB (default 20)")
    p.add_argument("--run", type=Path, help="the run the index was built from, if it was moved")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.app.serve.app import serve

    serve(args.index, args.host, args.port, args.max_upload_mb, args.run, args.device)
    return 0
