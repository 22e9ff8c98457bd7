"""The paper's ablation grids (Tables 1-4) as runs of ``fit`` + ``evaluate_run``.

Each grid is a list of named config overrides; every entry is trained once per seed into
``OUT/<entry>-s<seed>/`` (:func:`run_folder`; a finished run is reused, an interrupted one resumed;
a finished run of another configuration is refused), evaluated, and
summarised as one Markdown table (mean ± std over seeds for every direction) plus one PNG with each
model's total-loss curve (the paper's Fig. 6).

Each run's per-query values go to ``OUT/<entry>-s<seed>/eval_per_query.npz``
(:meth:`~dcinet.retrieval.result.RetrievalResult.save_per_query`; the grid's JSON stays small). The
table compares every row with the first (the baseline) on the average bimodal mAP (the average
multimodal one without bimodal directions): the difference, averaged over the seeds, with a paired
two-level bootstrap interval (:func:`~dcinet.retrieval.bootstrap.paired_difference`: seed ``s``
against seed ``s``, each resample draws the seeds and then the queries, the same queries for both
models), marked ``*`` when the interval excludes 0.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import replace
from pathlib import Path

from dcinet.config import ABLATION_GRIDS, Config
from dcinet.data.dataset import train_modalities
from dcinet.data.readers import read_configured
from dcinet.errors import DcinetError
from dcinet.models.pretrained import timm_request
from dcinet.retrieval.bootstrap import RESAMPLES, QueryBootstrap, paired_difference
from dcinet.retrieval.evaluate import evaluate_run
from dcinet.retrieval.features import Inference
from dcinet.retrieval.result import RetrievalResult, short
from dcinet.train.loop import train_or_resume
from dcinet.train.parallel import check_jobs, train_runs
from dcinet.train.plots import plot_curves

PER_QUERY_FILE = "eval_per_query.npz"

# Table 4: the paper preset's ResNet-50 (BiT ResNetV2-50x1, see configs/paper.yaml), VGG16 / 19, ViT.
PAPER_BACKBONES = ("resnetv2_50x1_bit", "vgg16", "vgg19", "vit_base_patch16_224")

# The method variants of issues 14 and 27 (config keys cmci_mode, label_smoothing, cmsi_box,
# cmsi_pairs): per grid, the settings tried beside the config's own; `variants` tries them all. A
# CutMix box of 30-80 % of each side varies lambda as the Beta box does, within bounds (sides 4..10
# px on a 14 x 14 map). cmsi_pairs: §4.2's flipped shuffle against eqs. 2-5's cross-modal pairs.
VARIANT_GRIDS: dict[str, list[dict]] = {
    "cmci_modes": [{"cmci_mode": "paper"}, {"cmci_mode": "symmetric"}],
    "cmsi_smoothing": [{"label_smoothing": 0.0}, {"label_smoothing": 0.1}],
    "cmsi_boxes": [{"cmsi_box": "minmax", "cutmix_minmax": [0.5, 0.6]}, {"cmsi_box": "beta"},
                   {"cmsi_box": "minmax", "cutmix_minmax": [0.3, 0.8]}],
    "cmsi_pairs": [{"cmsi_pairs": "flip"}, {"cmsi_pairs": "cross"}],
}
VARIANT_GRIDS["variants"] = [v for grid in VARIANT_GRIDS.values() for v in grid]
# The frozen-encoder baseline's row: the probe's only parameters are its heads, so the config's
# lr * new_layer_lr_mult is their one learning rate; a multiplier above 1 is meant for new layers
# beside a backbone that trains at lr. With cpu-pretrained's x10 (heads at 0.1) the image head's
# training loss rose (4.9 -> 8.7 over epochs 1-2 on the cub image + text set); at x1 it fell
# steadily (docs/method-extensions.md), so the row trains its heads at lr.
PROBE_ROW = ("probe", {"method": "probe", "new_layer_lr_mult": 1.0})
VARIANT_KEYS = ("cmci_mode", "label_smoothing", "cmsi_box", "cutmix_minmax", "cmsi_pairs")


def grid_entries(grid: str, cfg: Config, backbones: list[str] | None = None) -> list[tuple[str, dict]]:
    """(row name, overrides) for a grid: components (Tables 1-2), layers (3), backbones (4),
    methods: DCINet against the FGCrossNet baseline, same backbone, data, schedule and evaluator,
    and, with ``cfg.pretrained`` set, the frozen-encoder baseline ``probe``
    (:class:`~dcinet.models.probe.Probe`: the same pretrained backbone, frozen, and MiniLM for
    texts, with one linear head per modality); and the method variants (:func:`variant_entries`).

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
        rows = [("FGCrossNet", {"method": "fgcrossnet"}),
                ("DCINet", {"method": "dcinet", "interaction": "cmsi+cmci"})]
        if cfg.pretrained:  # the frozen-encoder baseline needs pretrained encoders
            rows.append(PROBE_ROW)
        return rows
    if grid == "baselines":
        return baseline_entries(cfg)
    if grid in VARIANT_GRIDS:
        return variant_entries(grid, cfg)
    raise DcinetError(f"unknown grid '{grid}' (choose {', '.join(ABLATION_GRIDS)})")


def baseline_entries(cfg: Config) -> list[tuple[str, dict]]:
    """Issue 27's comparison: the plain network (the baseline), DCINet as ``cfg`` sets it, DCINet
    with the other ``cmsi_pairs``, and, with ``cfg.pretrained`` set, the frozen-encoder ``probe``.
    Rows are named as in the variant grids, so they share runs with them under the same ``--out``;
    ``text_embedding`` comes from ``cfg`` (run once per setting; the probe ignores it)."""
    rows = variant_entries("cmsi_pairs", cfg)
    if cfg.pretrained:
        rows.append(PROBE_ROW)
    return rows


def variant_entries(grid: str, cfg: Config) -> list[tuple[str, dict]]:
    """The rows of a variant grid (``cmci_modes``, ``cmsi_smoothing``, ``cmsi_boxes``,
    ``cmsi_pairs``, ``variants``): the plain network (``<backbone>``, ``interaction: none``, the baseline every
    row is compared with), DCINet as ``cfg`` sets it (``<backbone>+CMSI+CMCI``, the components
    grid's row), then one DCINet row per setting of :data:`VARIANT_GRIDS` that differs from
    ``cfg``'s, named by what it changes (``<backbone>+CMSI+CMCI cmci_mode=symmetric``).

    So with the paper's values ``cmsi_smoothing`` compares label smoothing 0 (the DCINet row)
    with 0.1, and with ``label_smoothing=0.1`` it compares 0.1 with 0; rows of the same name in
    different grids are the same run, and share their folder when the grids share ``--out``.
    """
    base = cfg.backbone
    dcinet = f"{base}+CMSI+CMCI"
    rows = [(base, {"interaction": "none"}), (dcinet, {"interaction": "cmsi+cmci"})]
    for setting in VARIANT_GRIDS[grid]:
        changed = {k: v for k, v in setting.items() if getattr(cfg, k) != v}
        name = f"{dcinet} " + " ".join(f"{k}={_value(v)}" for k, v in changed.items())
        if changed and name not in dict(rows):
            rows.append((name, {"interaction": "cmsi+cmci", **changed}))
    return rows


def pick_rows(entries: list[tuple[str, dict]], names: list[str] | None) -> list[tuple[str, dict]]:
    """The baseline (first entry) and the entries named in ``names``, in the grid's order; every
    entry when ``names`` is empty or None.

    Raises:
        DcinetError: a name that is not one of the grid's rows.
    """
    if not names:
        return entries
    known = [name for name, _ in entries]
    for name in names:
        if name not in known:
            raise DcinetError(f"--row {name!r} is not a row of this grid (its rows: {', '.join(known)})")
    return [entry for i, entry in enumerate(entries) if i == 0 or entry[0] in names]


def one_modality_rows(entries: list[tuple[str, dict]],
                      modalities: list[str]) -> tuple[list[tuple[str, dict]], str]:
    """On data with one modality, the grid's rows as they can differ there, and the table's note
    saying so ('' and every entry unchanged otherwise).

    CMCI swaps channels between samples of different modalities, so with one it never fires
    (``interactions_fired`` counts 0) and CMSI+CMCI trains as CMSI bit for bit. So every row that
    uses CMCI trains CMSI alone (``interaction: cmsi``, ``+CMSI+CMCI`` renamed ``+CMSI``, a
    ``cmci_mode`` setting dropped), and a row that would then repeat an earlier one, or whose only
    interaction is CMCI (the plain network plus ``L_dual`` on unchanged maps), is left out. A row
    that sets ``cmsi_pairs`` is left out too: with one modality there is no other to pair with
    (``cross`` then draws any other map, a random pairing like ``flip``'s).
    """
    if len(modalities) != 1:
        return entries, ""
    kept: list[tuple[str, dict]] = []
    left_out, changed, pairs = [], [], []
    for name, overrides in entries:
        if "cmsi_pairs" in overrides:
            pairs.append(name)
            continue
        interaction = overrides.get("interaction", "")
        both = interaction == "cmsi+cmci"
        if both:
            overrides = {k: v for k, v in overrides.items() if k != "cmci_mode"} | {"interaction": "cmsi"}
        if interaction == "cmci" or overrides in [other for _, other in kept]:
            left_out.append(name)
            continue
        if both:
            name = " ".join(part for part in name.replace("+CMSI+CMCI", "+CMSI").split(" ")
                            if not part.startswith("cmci_mode="))
            changed.append(name)
        kept.append((name, overrides))
    if not left_out and not changed and not pairs:
        return entries, ""
    note = f"One modality ({modalities[0]}): CMCI swaps channels between modalities and never fires here"
    if left_out:
        note += f", so its rows ({', '.join(left_out)}) are left out"
    if changed:
        note += f"{' and' if left_out else ', so'} these rows train CMSI alone: {', '.join(changed)}"
    if pairs:
        note += (f"; CMSI has no other modality to pair a map with, so the cmsi_pairs rows "
                 f"({', '.join(pairs)}) are left out")
    return kept, note + ".\n"


def _value(v: object) -> str:
    return "[" + ",".join(map(str, v)) + "]" if isinstance(v, list) else str(v)


def grid_note(grid: str, cfg: Config, cmsi_only: bool = False) -> str:
    """The line a variant grid's table adds: the settings of its DCINet row; the methods grid's
    says when the probe row is left out ('' for the others).
    ``cmsi_only``: on one modality, where that row trains CMSI alone (:func:`one_modality_rows`)."""
    if grid in ("methods", "baselines") and not cfg.pretrained:
        return ("The frozen-encoder baseline (probe) is left out: it needs pretrained weights "
                "(pretrained=...).\n")
    if grid not in VARIANT_GRIDS:
        return ""
    keys = [k for k in VARIANT_KEYS if not (cmsi_only and k == "cmci_mode")]
    values = ", ".join(f"{k}={_value(getattr(cfg, k))}" for k in keys)
    row = f"{cfg.backbone}+CMSI" if cmsi_only else f"{cfg.backbone}+CMSI+CMCI"
    return f"{row}: {values}; each other DCINet row changes what its name says.\n"


def run_folder(name: str) -> str:
    """The folder of a grid row's runs: its name with every run of characters other than
    letters, digits, ``.``, ``-`` and ``_`` turned into one ``_`` (``resnet18+CMSI+CMCI
    cmci_mode=symmetric`` -> ``resnet18_CMSI_CMCI_cmci_mode_symmetric``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


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
             backbones: list[str] | None = None, progress: bool = True,
             inference: Inference | None = None, rows: list[str] | None = None,
             jobs: int = 1) -> Path:
    """Train and evaluate every entry of ``grid`` for ``seeds`` seeds; returns the table path.

    ``rows``: only these rows and the baseline (:func:`pick_rows`). On data with one modality
    the rows that use CMCI train CMSI alone, and those left the same as another are left out
    (:func:`one_modality_rows`).

    ``inference`` sets the device of training and evaluation, and the evaluation's batch size
    and workers (default: the CPU). Under ``torchrun`` the ranks train and evaluate together;
    rank 0 writes the table. ``jobs`` > 1 trains that many runs at once on the CPU
    (:func:`~dcinet.train.parallel.train_runs`), then evaluates them one by one.
    """
    inference = inference or Inference()
    # one process: its device; torchrun: each rank's own GPU (LOCAL_RANK)
    device = inference.device.type if inference.dist.enabled else str(inference.device)
    if seeds < 1:
        raise DcinetError("--seeds must be >= 1")
    check_jobs(jobs, inference.device, inference.dist.enabled)
    # refused settings leave no folder behind
    entries = pick_rows(grid_entries(grid, cfg, backbones), rows)
    modalities = train_modalities(read_configured(data, cfg), cfg)
    entries, one_modality = one_modality_rows(entries, modalities)
    note = grid_note(grid, cfg, cmsi_only=len(modalities) == 1) + one_modality
    if one_modality and progress:
        print(one_modality, end="", flush=True)
    runs = [(name, replace(cfg, **overrides, seed=seed).validate(),
             out / f"{run_folder(name)}-s{seed}")
            for name, overrides in entries for seed in range(cfg.seed, cfg.seed + seeds)]
    out.mkdir(parents=True, exist_ok=True)
    if jobs > 1:
        train_runs([(run_cfg, run_dir) for _, run_cfg, run_dir in runs], data, jobs,
                   progress=progress)
    results: dict[str, list[RetrievalResult]] = {}
    curves: dict[str, list[tuple[int, float]]] = {}
    for name, run_cfg, run_dir in runs:
        if progress:
            weights = f", pretrained={run_cfg.pretrained}" if run_cfg.pretrained else ""
            print(f"== {grid}: {name}{weights}, seed {run_cfg.seed} -> {run_dir}", flush=True)
        history = train_or_resume(run_cfg, data, run_dir, progress, device)
        result = evaluate_run(run_dir, data, run_cfg.format, inference=inference)
        if result is not None:
            results.setdefault(name, []).append(result)
            result.save_per_query(run_dir / PER_QUERY_FILE)
        if run_cfg.seed == cfg.seed:
            curves[name] = [(r["epoch"], r["loss"]) for r in history]
    path = out / f"{grid}.md"
    if not inference.dist.is_main:
        return path
    table = {name: [r.to_dict(per_class=False) for r in rs] for name, rs in results.items()}
    (out / f"{grid}.json").write_text(json.dumps(table, indent=1))
    path.write_text(format_grid_table(grid, table, compare_to_baseline(results)) + note)
    plot_curves(curves, out / f"{grid}_loss.png", f"total loss per model ({grid})", "L_sum")
    return path


def compare_to_baseline(results: dict[str, list[RetrievalResult]],
                        resamples: int = RESAMPLES, seed: int = 0
                        ) -> dict[str, tuple[float, float, float]]:
    """Every row but the first against the first: (difference, interval low, high) of the
    average bimodal mAP, paired over seeds and queries
    (:func:`~dcinet.retrieval.bootstrap.paired_difference`). Data with one modality has no
    bimodal direction: then the unimodal mAP (``a2a``: the query removed from its gallery, as
    validation scores such a run), not ``a2all``, whose gallery holds the query itself."""
    (_, base), *others = results.items()
    first = base[0]
    directions = first.bimodal or first.unimodal or first.multimodal
    groups = {d: first.query_of[d] for d in directions}
    boot = QueryBootstrap(resamples, seed)

    def per_query(runs: list[RetrievalResult]) -> list[dict]:
        return [{d: r.per_query[d]["mAP"] for d in directions} for r in runs]

    return {name: paired_difference(per_query(base), per_query(runs), groups, boot)
            for name, runs in others}


def format_grid_table(grid: str, rows: dict[str, list[dict]],
                      comparisons: dict[str, tuple[float, float, float]] | None = None) -> str:
    """Markdown: one row per model, every direction's mAP (mean ± std over seeds) and averages;
    with ``comparisons`` (:func:`compare_to_baseline`) a last column with each row's difference
    from the first, its interval and ``*`` when the interval excludes 0."""
    first = next(iter(rows.values()))[0]
    columns = list(first["directions"])
    averages = [k for k in ("average_bimodal", "average_multimodal") if first.get(k) is not None]
    header = ["model", *columns, *averages]
    baseline = next(iter(rows))
    if comparisons is not None:  # the summary compare_to_baseline takes
        compared = (averages[0] if first.get("average_bimodal") is not None or not first.get("unimodal")
                    else "+".join(first["unimodal"]))
        header.append(f"Δ {compared.replace('_', ' ')} mAP vs {baseline}")
    lines = [f"### Ablation: {grid}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for name, results in rows.items():
        cells = [_mean_std([r["directions"][c] for r in results]) for c in columns]
        cells += [_mean_std([r[k] for r in results]) for k in averages]
        if comparisons is not None:
            cells.append(_difference(*comparisons[name]) if name in comparisons else "baseline")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    seeds = len(first and next(iter(rows.values())))
    lines += ["", f"mAP on the test split, {seeds} seed(s) per model (mean ± std when > 1)."]
    if comparisons is not None:
        lines[-1] += (f" Δ: difference from {baseline} averaged over the seeds, with a 95% paired "
                      f"bootstrap interval (seeds, then the same test queries for both models, "
                      f"drawn with replacement); * = the interval excludes 0.")
    return "\n".join(lines) + "\n"


def _difference(diff: float, lo: float, hi: float) -> str:
    mark = " *" if lo > 0 or hi < 0 else ""
    return f"{short(diff, True)} [{short(lo, True)}, {short(hi, True)}]{mark}"
