"""Compare finished ablate runs against any one of them: one table, paired intervals.

    python bench/compare_runs.py OUT [OUT ...] --baseline ROW [--label OUT=NAME ...] [--md FILE]

Reads every ``<row>-s<seed>/eval_per_query.npz`` that ``dcinet ablate`` wrote under each ``OUT``
(several grids, e.g. one per ``text_embedding``), and prints the grid table of
:func:`dcinet.app.ablate.format_grid_table`: every row's mAPs (mean ± std over seeds) and its
difference from ``--baseline`` on the average bimodal mAP with the paired two-level bootstrap
interval of ``dcinet ablate`` (seed s against seed s, the same test queries). ``ablate`` compares
every row with the grid's first (the plain network); this compares them with any row, e.g. the
frozen-encoder ``probe``. Rows are named ``<row folder>`` or, with ``--label OUT=NAME``,
``NAME <row folder>``. Only the seeds every row has are compared.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from dcinet.app.ablate import PER_QUERY_FILE, compare_to_baseline, format_grid_table
from dcinet.errors import DcinetError
from dcinet.retrieval.result import RetrievalResult, load_per_query


def collect(outs: list[Path], labels: dict[Path, str]) -> dict[str, dict[int, RetrievalResult]]:
    """{row name: {seed: result}} of every per-query file under the ``outs``."""
    rows: dict[str, dict[int, RetrievalResult]] = {}
    for out in outs:
        for path in sorted(out.glob(f"*-s*/{PER_QUERY_FILE}")):
            match = re.fullmatch(r"(.+)-s(\d+)", path.parent.name)
            if match:
                name = f"{labels[out]} {match[1]}" if out in labels else match[1]
                rows.setdefault(name, {})[int(match[2])] = load_per_query(path)
    return rows


def table(rows: dict[str, dict[int, RetrievalResult]], baseline: str) -> str:
    """The Markdown table, ``baseline`` first, over the seeds all rows share.

    Raises:
        DcinetError: no runs, an unknown baseline, or no seed that every row has.
    """
    if baseline not in rows:
        raise DcinetError(f"no row {baseline!r} (rows: {', '.join(rows) or 'none'})")
    seeds = sorted(set.intersection(*(set(r) for r in rows.values())))
    if not seeds:
        raise DcinetError("no seed is shared by every row")
    ordered = {baseline: rows[baseline], **{k: v for k, v in rows.items() if k != baseline}}
    results = {name: [by_seed[s] for s in seeds] for name, by_seed in ordered.items()}
    summary = {name: [r.to_dict(per_class=False) for r in rs] for name, rs in results.items()}
    return format_grid_table("comparison", summary, compare_to_baseline(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outs", nargs="+", type=Path, metavar="OUT")
    parser.add_argument("--baseline", required=True, metavar="ROW")
    parser.add_argument("--label", action="append", default=[], metavar="OUT=NAME")
    parser.add_argument("--md", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    try:
        labels = {}
        for item in args.label:
            out, sep, name = item.partition("=")
            if not sep or Path(out) not in args.outs:
                raise DcinetError(f"--label {item!r}: expected OUT=NAME with OUT one of the folders")
            labels[Path(out)] = name
        text = table(collect(args.outs, labels), args.baseline)
    except DcinetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.md:
        args.md.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
