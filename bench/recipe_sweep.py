"""What each of ``cpu-pretrained``'s recipe choices costs on real photos, one change at a time.

Every unit trains the plain shared network (``interaction=none``) of ``cpu-pretrained`` on
``../shared/data/cub100`` for 3 epochs (seed 0) with the recipe that preset had when this sweep
was written (:data:`BEFORE`: 128 px, strong augmentation), and changes one thing toward the
one-run fine-tune of ``bench/cub_pretrained.py``, or all of them (``finetune``). ``after`` is the
preset as it is now. Then it evaluates image->image retrieval (``i2i``: the query left out of its
own gallery; ``i2all`` keeps it) on ``--split``:

* ``test``: the test split, the figures the README reports;
* ``val``: ``val_fraction=0.2`` of each class's training photos held out, trained on the rest;
  for choosing between settings without looking at the test split.

``--epochs N`` trains N epochs instead of 3 (the preset's own schedule is 10), into
``OUT/<split>-<N>ep/<unit>`` (3 epochs: ``OUT/<split>/<unit>``). A unit whose run already finished
in its folder is reused (only evaluated), so a second call costs the evaluations only. ``--jobs N`` trains N units at a
time, each in its own process with 1/N of the threads (:func:`dcinet.train.parallel.train_runs`).

Run: ``python bench/recipe_sweep.py OUT [--split test|val] [--units no_aug,px144] [--epochs N]
[--jobs N] [--json F]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dcinet.config import Config, load_config
from dcinet.retrieval.evaluate import evaluate_run
from dcinet.rundir import read_metrics
from dcinet.train.loop import train_or_resume
from dcinet.train.parallel import train_runs

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cub100"
PRESET = "cpu-pretrained"
COMMON = {"format": "cub", "cub_train_flag": 0, "epochs": 3, "interaction": "none", "seed": 0}

# cpu-pretrained's recipe when the sweep was written (the keys it studies)
BEFORE = {"img_size": 128, "resize": 146, "aug_crop_scale": 0.35, "aug_flip": 0.5,
          "aug_color_jitter": 0.2, "ce_label_smoothing": 0.1, "ema_decay": 0.998,
          "new_layer_lr_mult": 10.0, "sampler": "class_aware", "batch_per_modality": 8,
          "grad_clip_norm": 5.0}
NO_AUG = {"aug_crop_scale": 1.0, "aug_flip": 0.0, "aug_color_jitter": 0.0}
PX144 = {"img_size": 144, "resize": 165}
# unit -> (what it changes, its changes to BEFORE); None: the preset as it is now
UNITS: dict[str, tuple[str, dict | None]] = {
    "before": ("nothing", {}),
    "no_aug": ("no augmentation", NO_AUG),
    "no_label_smoothing": ("ce_label_smoothing 0", {"ce_label_smoothing": 0.0}),
    "no_ema": ("no EMA", {"ema_decay": 0.0}),
    "lr_mult1": ("new_layer_lr_mult 1", {"new_layer_lr_mult": 1.0}),
    "random_b16": ("random sampler, b = 16", {"sampler": "random", "batch_per_modality": 16}),
    "px144": ("144 px (resize 165)", PX144),
    "finetune": ("all of the above, and no clipping",
                 {**NO_AUG, **PX144, "ce_label_smoothing": 0.0, "ema_decay": 0.0,
                  "new_layer_lr_mult": 1.0, "sampler": "random", "batch_per_modality": 16,
                  "grad_clip_norm": 0.0}),
    "mild144": ("144 px, crop scale 0.8, jitter 0.1", {**PX144, "aug_crop_scale": 0.8,
                                                       "aug_color_jitter": 0.1}),
    "flip144": ("144 px, flips only", {**PX144, **NO_AUG, "aug_flip": 0.5}),
    "none144": ("144 px, no augmentation", {**PX144, **NO_AUG}),
    "after": ("the preset now", None),
}


def unit_config(unit: str, split: str, epochs: int = COMMON["epochs"]) -> Config:
    """The validated config of a unit on ``split`` (``val`` holds 20 % of the training photos out)."""
    changes = UNITS[unit][1]
    recipe = {} if changes is None else {**BEFORE, **changes}
    val = {"val_fraction": 0.2} if split == "val" else {}
    return load_config(PRESET, {**COMMON, **recipe, **val, "epochs": epochs}).validate()


def unit_folder(out: Path, unit: str, split: str, epochs: int = COMMON["epochs"]) -> Path:
    """``OUT/<split>/<unit>`` for the sweep's 3 epochs, ``OUT/<split>-<N>ep/<unit>`` for N others."""
    return out / (split if epochs == COMMON["epochs"] else f"{split}-{epochs}ep") / unit


def run_unit(unit: str, split: str, data: Path, out: Path, epochs: int = COMMON["epochs"]) -> dict:
    """Train (or reuse) and evaluate one unit; its row of the table."""
    run_dir = unit_folder(out, unit, split, epochs)
    print(f"== {unit} -> {run_dir}", flush=True)
    train_or_resume(unit_config(unit, split, epochs), data, run_dir, True, "cpu")
    result = evaluate_run(run_dir, data, "cub", resamples=0, split=split)
    return {"unit": unit, "changes": UNITS[unit][0], **result.directions,
            "train_s": sum(row["seconds"] for row in read_metrics(run_dir))}


def table(rows: list[dict], split: str, epochs: int = COMMON["epochs"]) -> str:
    base = next((r["i2i"] for r in rows if r["unit"] == "before"), None)
    lines = ["| unit | changes | i2i | i2all | Δ i2i vs before | train time |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        delta = "" if base is None or r["unit"] == "before" else f"{r['i2i'] - base:+.3f}"
        lines.append(f"| {r['unit']} | {r['changes']} | {r['i2i']:.3f} | {r['i2all']:.3f} | "
                     f"{delta} | {r['train_s'] / 60:.1f} min |")
    lines += ["", f"cub100 ({split} split), cpu-pretrained's plain network, {epochs} epochs, seed 0, "
                  "efficientnet_lite0 from the ImageNet weights."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="work folder (runs go to OUT/<split>/<unit>)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--units", help=f"comma-separated, from: {', '.join(UNITS)} (default: all)")
    parser.add_argument("--epochs", type=int, default=COMMON["epochs"])
    parser.add_argument("--jobs", type=int, default=1, help="units trained at once (default 1)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    units = args.units.split(",") if args.units else list(UNITS)
    unknown = [u for u in units if u not in UNITS]
    if unknown:
        print(f"error: unknown unit(s) {', '.join(unknown)} (choose from {', '.join(UNITS)})",
              file=sys.stderr)
        return 2
    if args.epochs < 1 or args.jobs < 1:
        print("error: --epochs and --jobs must be >= 1", file=sys.stderr)
        return 2
    if not (args.data / "images.txt").is_file():
        print(f"error: {args.data} is not a CUB-layout dataset (no images.txt)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if args.jobs > 1:
        train_runs([(unit_config(u, args.split, args.epochs),
                     unit_folder(args.out, u, args.split, args.epochs)) for u in units],
                   args.data, args.jobs)
    rows = [run_unit(u, args.split, args.data, args.out, args.epochs) for u in units]
    print(table(rows, args.split, args.epochs))
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"split": args.split, "epochs": args.epochs, "rows": rows},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
