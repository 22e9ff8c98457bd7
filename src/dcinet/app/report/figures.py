"""The report's PNG figures (matplotlib, Agg): per-class AP bars, confused pairs, training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dcinet.app.report.confusion import Confusion  # noqa: E402
from dcinet.retrieval.result import RetrievalResult  # noqa: E402
from dcinet.rundir import read_metrics  # noqa: E402
from dcinet.train.plots import plot_curves  # noqa: E402

NOT_LOSSES = {"epoch", "lr", "seconds"}


def worst_classes(result: RetrievalResult, direction: str, limit: int) -> list[str]:
    """The ``limit`` classes of lowest AP in ``direction``, worst first (ties: label order)."""
    per_class = result.per_class[direction]
    return sorted(per_class, key=per_class.__getitem__)[:limit]


def class_ap_figure(result: RetrievalResult, direction: str, path: Path, limit: int) -> Path:
    """Horizontal bars of the AP of the ``limit`` worst classes of ``direction`` (worst on top),
    with their bootstrap intervals as error bars when there are some; returns ``path``."""
    names = worst_classes(result, direction, limit)
    values = [result.per_class[direction][c] for c in names]
    intervals = result.per_class_intervals.get(direction, {})
    errors = None
    if intervals:
        errors = [[v - intervals[c][0] for c, v in zip(names, values, strict=True)],
                  [intervals[c][1] - v for c, v in zip(names, values, strict=True)]]
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.22 * len(names)), dpi=100)
    ax.barh(range(len(names)), values, xerr=errors, color="#4c72b0", ecolor="#333", capsize=2)
    ax.set_yticks(range(len(names)), [c.replace("_", " ") for c in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("AP (mean over the class's queries)")
    shown = f"worst {len(names)} of {len(result.per_class[direction])}"
    ax.set_title(f"{direction}: AP per class ({shown})", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def confusion_figure(pairs: list[tuple[str, str, float]], direction: str, path: Path) -> Path:
    """Horizontal bars of the most confused (query class -> intruding class) pairs by their share
    of the top-R windows (largest on top); returns ``path``."""
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.22 * max(len(pairs), 1)), dpi=100)
    ax.barh(range(len(pairs)), [s for _, _, s in pairs], color="#c44e52")
    ax.set_yticks(range(len(pairs)), [f"{a} → {b}".replace("_", " ") for a, b, _ in pairs],
                  fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of the query class's top-R windows")
    ax.set_title(f"{direction}: most confused pairs", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def named_pairs(confusion: Confusion, result: RetrievalResult, top: int
                ) -> list[tuple[str, str, float]]:
    """:meth:`Confusion.pairs` with class names."""
    return [(result.class_name(a), result.class_name(b), s) for a, b, s in confusion.pairs(top)]


def curve_figures(run_dir: Path, out_dir: Path) -> dict[str, Path]:
    """The run's training curves from its ``metrics.csv``: ``losses`` (the total and each part)
    and, where the run has ``val_*`` columns, ``validation``; {} without a metrics file."""
    history = read_metrics(run_dir)
    keys = list(dict.fromkeys(k for row in history for k in row))
    groups = {"losses": ([k for k in keys if k not in NOT_LOSSES and not k.startswith("val_")],
                         "loss"),
              "validation": ([k for k in keys if k.startswith("val_")], "validation score")}
    out = {}
    for name, (columns, ylabel) in groups.items():
        if columns:
            out[name] = out_dir / f"{name}.png"
            plot_curves({k: [(r["epoch"], r[k]) for r in history if k in r] for k in columns},
                        out[name], f"{name} per epoch", ylabel)
    return out


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
