"""A real fine-grained image + text set: cub100's photos and cub-text's descriptions of 66 species.

    python bench/cub_text_set.py OUT [--cub ../shared/data/cub100] [--texts ../shared/data/cub-text]

Writes the generic folder layout as symbolic links: ``OUT/image/{train,test}/<species>/`` with the
photos of the 66 species that have descriptions, split as cub100's own ``train_test_split.txt``
says, and ``OUT/text/{train,test}/<species>/`` with their descriptions split by file, the first 4
(by name) for training and the last 2 for testing. The texts are class-level (six per species,
the species' name masked), so a test text is never a training text, and its class is the only
thing it shares with the photos.

Train on it like any folder dataset, e.g. ``dcinet train --config cpu-pretrained --data OUT``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRAIN_TEXTS = 4
"""Descriptions per species for training (the others are test items)."""


def _table(path: Path) -> dict[int, str]:
    """``<id>, <value>`` lines (cub100's comma-separated CUB files) -> {id: value}."""
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, value = (part.strip() for part in line.split(",", 1))
            rows[int(key)] = value
    return rows


def build(cub: Path, texts: Path, out: Path) -> dict[str, dict[str, int]]:
    """Write the links; returns the number of items per modality and split.

    Raises:
        ValueError: a species with descriptions that is not a cub100 class, or with fewer than
            ``TRAIN_TEXTS + 1`` descriptions.
    """
    classes = _table(cub / "classes.txt")
    species = sorted(p.name for p in texts.iterdir() if p.is_dir())
    unknown = sorted(set(species) - set(classes.values()))
    if unknown:
        raise ValueError(f"cub-text species not in cub100: {', '.join(unknown)}")
    described = {name: sorted((texts / name).glob("*.txt")) for name in species}
    for name, files in described.items():  # every check before anything is written
        if len(files) <= TRAIN_TEXTS:
            raise ValueError(f"{texts / name}: {len(files)} descriptions, need more than {TRAIN_TEXTS}")
    counts = {m: {"train": 0, "test": 0} for m in ("image", "text")}
    for name, files in described.items():
        for split, part in (("train", files[:TRAIN_TEXTS]), ("test", files[TRAIN_TEXTS:])):
            _link(part, out / "text" / split / name)
            counts["text"][split] += len(part)
    wanted = {k for k, v in classes.items() if v in set(species)}
    images, labels = _table(cub / "images.txt"), _table(cub / "image_class_labels.txt")
    splits = _table(cub / "train_test_split.txt")
    for image_id, relative in sorted(images.items()):
        label = int(labels[image_id])
        if label in wanted:
            split = "train" if int(splits[image_id]) == 1 else "test"
            _link([cub / "images" / relative], out / "image" / split / classes[label])
            counts["image"][split] += 1
    return counts


def _link(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f.name).symlink_to(f.resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--cub", type=Path, default=SHARED / "cub100")
    parser.add_argument("--texts", type=Path, default=SHARED / "cub-text")
    args = parser.parse_args(argv)
    for folder, what in ((args.cub / "images", "cub100 photos"), (args.texts, "cub-text descriptions")):
        if not folder.is_dir():
            print(f"error: no {what} at {folder}", file=sys.stderr)
            return 2
    if args.out.exists():
        print(f"error: {args.out} exists; choose a new folder", file=sys.stderr)
        return 2
    try:
        counts = build(args.cub, args.texts, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: " + "; ".join(f"{m} {c['train']} train / {c['test']} test"
                                       for m, c in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
