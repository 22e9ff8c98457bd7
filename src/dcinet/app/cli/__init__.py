"""The ``dcinet`` command: argparse verbs that call into the library.

Each verb lives in a module of this package exposing ``register(subparsers)``; the handler it
installs receives the parsed arguments and returns an exit code. Errors a user can fix
(:class:`~dcinet.errors.DcinetError`) are printed as one line and exit with code 2.

Threads: before anything imports torch (the verbs import it lazily), :func:`main` sets the OpenMP
waits and ``OMP_NUM_THREADS`` (the number of usable cores: the CPU affinity mask, capped by a cgroup
v2 CPU quota), each unless the user set it (``MKL_NUM_THREADS`` counts as a thread setting,
``GOMP_SPINCOUNT`` and ``OMP_WAIT_POLICY`` as wait settings). The waits: ``GOMP_SPINCOUNT=1000``,
a short spin before sleeping for libgomp (the OpenMP runtime of the PyPI torch wheels for Linux),
and ``OMP_WAIT_POLICY=PASSIVE`` for any other runtime (libgomp takes an explicit spin count over the
policy). A waiting thread then spins about as long as the gap between two operators of a step and
sleeps beyond it, so two commands at once share the cores instead of stealing each other's time
slices. ``bench/bench_concurrent.py`` measures the settings: on a 2-core AMD EPYC, sleeping at once
(PASSIVE alone) made a cpu-tiny step ~20 % slower than spinning, and long spins
(``GOMP_SPINCOUNT=100000``, ``ACTIVE``) made two trainings at once 6-7x slower each. The count does
not depend on what else is running: a run's float bits depend on its thread count, and the same
command must compute the same bits alone or beside another.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

from dcinet.errors import USER_ERROR_EXIT, DcinetError

VERB_MODULES = ("data", "train", "evaluate", "ablate", "demo", "embed", "index", "search", "serve",
                "report")
"""Modules of ``dcinet.app.cli`` that register verbs, in the order shown by ``--help``."""


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
SPIN_COUNT = 1000
"""libgomp's busy-wait iterations before a waiting thread sleeps (its default is 300,000)."""


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 quota (``cpu.max``,
    rounded up)."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()) or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):  # no cgroup v2 (or no quota file): the mask alone
        pass
    return max(1, cores)


def configure_threads(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Set the OpenMP wait policy and thread count in ``environ`` where the user has not.

    Must run before torch loads its OpenMP runtime, which reads them once.

    Returns:
        The variables set, name -> value: ``GOMP_SPINCOUNT`` (:data:`SPIN_COUNT`) and
        ``OMP_WAIT_POLICY`` (``PASSIVE``) unless either is set, ``OMP_NUM_THREADS``
        (:func:`usable_cores`) unless ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set.
    """
    chosen = {}
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        chosen.update(GOMP_SPINCOUNT=str(SPIN_COUNT), OMP_WAIT_POLICY="PASSIVE")
    if "OMP_NUM_THREADS" not in environ and "MKL_NUM_THREADS" not in environ:
        chosen["OMP_NUM_THREADS"] = str(usable_cores())
    environ.update(chosen)
    return chosen


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
    if "torch" not in sys.modules:  # once loaded, its OpenMP runtime has read the environment
        configure_threads(os.environ)
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
