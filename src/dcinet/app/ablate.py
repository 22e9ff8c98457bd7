"""The paper's ablation grids (Tables 1-4) as runs of ``fit`` + ``evaluate_run``.

Each grid is a list of named config overrides; every entry is trained once per seed into
``OUT/<entry>-s<seed>/`` (a finished run is reused, an interrupted one resumed), evaluated, and
summarised as one Markdown table (mean ± std over seeds for every direction) plus one PNG with each
model's total-loss curve (the paper's Fig. 6).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

from dcinet.config import ABLATION_GRIDS, Config
from dcinet.errors import DcinetError
from dcinet.models.pretrained import timm_request
from dcinet.retrieval.evaluate import evaluate_run
from dcinet.train.loop import train_or_resume
from dcinet.train.plots import plot_curves

# Table 4: the paper preset's ResNet-50 (BiT ResNetV2-50x1, see configs/paper.yaml), VGG16 / 19, ViT.
PAPER_BACKBONES = ("resnetv2_50x1_bit", "vgg16", "vgg19", "vit_base_patch16_224")


def grid_entries(grid: str, cfg: Config, backbones: list[str] | None = None) -> list[tuple[str, dict]]:
    """(row name, overrides) for a grid: components (Tables 1-2), layers (3), backbones (4), and
    methods: DCINet against the FGCrossNet baseline, same backbone, data, schedule and evaluator.

    Backbones and ``cfg.pretrained``: ``timm`` gives each backbone its own default timm weights;
    ``timm:<model>.<tag>`` goes to the backbone ``<model>``, the others get their defaults
    (``timm``); a file or packaged name (one architecture) is refused for several backbones.
    """
    if grid == "components":
        base = cfg.backbone
        return [(base, {"interaction": "none"}), (f"{base}+CMCI", {"interaction": "cmci"}),
                (f"{base}+CMSI", {"interaction": "cmsi"}),
                (f"{base}+CMSI+CMCI", {"interaction": "cmsi+cmci"})]
    if grid == "layers":
        return [(f"layer{k}", {"interaction": "cmsi+cmci", "layer": k}) for k in (1, 2, 3, 4)]
    if grid == "backbones":
        names = list(backbones or PAPER_BACKBONES)
        return [(b, {"interaction": "cmsi+cmci", "backbone": b, **weights})
                for b, weights in zip(names, _backbone_weights(cfg.pretrained, names), strict=True)]
    if grid == "methods":
        return [("FGCrossNet", {"method": "fgcrossnet"}),
                ("DCINet", {"method": "dcinet", "interaction": "cmsi+cmci"})]
    raise DcinetError(f"unknown grid '{grid}' (choose {', '.join(ABLATION_GRIDS)})")


def _backbone_weights(spec: str | None, names: list[str]) -> list[dict]:
    """Per backbone, the ``pretrained`` override that gives it weights of its own architecture."""
    request = timm_request(spec) if spec else None
    if not spec or request == "" or len(set(names)) == 1:
        return [{} for _ in names]
    if request is None:
        raise DcinetError(f"--grid backbones trains {len(set(names))} architectures but pretrained "
                          f"'{spec}' holds one: use pretrained=timm (each backbone's own timm "
                          f"weights) or timm:<model.tag>")
    model = request.partition(".")[0]
    if model not in names:
        raise DcinetError(f"pretrained '{spec}' is for backbone {model}, which is not in the grid "
                          f"({', '.join(names)}); use pretrained=timm")
    return [{} if b == model else {"pretrained": "timm"} for b in names]


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def run_grid(grid: str, cfg: Config, data: Path, out: Path, seeds: int = 1,
             backbones: list[str] | None = None, progress: bool = True) -> Path:
    """Train and evaluate every entry of ``grid`` for ``seeds`` seeds; returns the table path."""
    if seeds < 1:
        raise DcinetError("--seeds must be >= 1")
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {}
    curves: dict[str, list[tuple[int, float]]] = {}
    for name, overrides in grid_entries(grid, cfg, backbones):
        for seed in range(cfg.seed, cfg.seed + seeds):
            run_cfg = replace(cfg, **overrides, seed=seed).validate()
            run_dir = out / f"{name.replace('+', '_')}-s{seed}"
            if progress:
                weights = f", pretrained={run_cfg.pretrained}" if run_cfg.pretrained else ""
                print(f"== {grid}: {name}{weights}, seed {seed} -> {run_dir}", flush=True)
            history = train_or_resume(run_cfg, data, run_dir, progress)
            result = evaluate_run(run_dir, data, run_cfg.format)
            rows.setdefault(name, []).append(result.to_dict())
            if seed == cfg.seed:
                curves[name] = [(r["epoch"], r["loss"]) for r in history]
    (out / f"{grid}.json").write_text(json.dumps(rows, indent=1))
    table = format_grid_table(grid, rows)
    path = out / f"{grid}.md"
    path.write_text(table)
    plot_curves(curves, out / f"{grid}_loss.png", f"total loss per model ({grid})", "L_sum")
    return path


def format_grid_table(grid: str, rows: dict[str, list[dict]]) -> str:
    """Markdown: one row per model, every direction's mAP (mean ± std over seeds) and averages."""
    first = next(iter(rows.values()))[0]
    columns = list(first["directions"])
    averages = [k for k in ("average_bimodal", "average_multimodal") if first.get(k) is not None]
    header = ["model", *columns, *averages]
    lines = [f"### Ablation: {grid}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for name, results in rows.items():
        cells = [_mean_std([r["directions"][c] for r in results]) for c in columns]
        cells += [_mean_std([r[k] for r in results]) for k in averages]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    seeds = len(first and next(iter(rows.values())))
    lines += ["", f"mAP on the test split, {seeds} seed(s) per model (mean ± std when > 1)."]
    return "\n".join(lines) + "\n"
