"""The ``dcinet`` command: argparse verbs that call into the library.

Each verb lives in a module of this package exposing ``register(subparsers)``; the handler it
installs receives the parsed arguments and returns an exit code. Errors a user can fix
(:class:`~dcinet.errors.DcinetError`) are printed as one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dcinet.errors import USER_ERROR_EXIT, DcinetError

VERB_MODULES = ("data", "train", "evaluate", "ablate", "demo", "embed", "index", "search", "serve")
"""Modules of ``dcinet.app.cli`` that register verbs, in the order shown by ``--help``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcinet",
        description="Fine-grained cross-modal retrieval (image, audio, text) with DCINet.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name in VERB_MODULES:
        importlib.import_module(f"dcinet.app.cli.{name}").register(sub)
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line; ``key=value`` overrides may stand before, between or after flags.

    argparse fills a ``nargs="*"`` positional from one run of arguments only, so the overrides
    after a flag come back unrecognised: they are appended, in order, to the verb's overrides.
    Anything else unrecognised is an error (exit 2 with argparse's usage message).
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra
             if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 user error)."""
    args = parse(argv)
    try:
        return int(args.func(args) or 0)
    except DcinetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
