"""Loss-curve figures (the paper's Fig. 5 per run and Fig. 6 across the ablation's models)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(curves: dict[str, list[tuple[int, float]]], path: Path, title: str,
                ylabel: str = "loss") -> None:
    """Write a PNG with one line per named curve.

    Args:
        curves: name -> list of (epoch, value) points.
        path: output PNG file.
        title: figure title.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for name, points in curves.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
