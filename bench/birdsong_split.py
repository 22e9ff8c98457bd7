"""The ``birdsong`` recordings split by recording, for audio→audio retrieval.

    python bench/birdsong_split.py OUT [--source ../shared/data/birdsong]

Writes ``OUT/audio/{train,test}/<species>/`` as symbolic links to the recordings (the generic
layout): for a species with 3 or more recordings the first (by its number) trains and the others
are test items; a species with 2 trains only (its test queries would have no other recording of
their class); a species with one is left out. No recording is in both splits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "birdsong"


def split(source: Path, out: Path) -> dict[str, int]:
    """Write the links; returns the number of recordings per split."""
    counts = {"train": 0, "test": 0}
    for species in sorted(p for p in (source / "audio").iterdir() if p.is_dir()):
        recordings = sorted(species.glob("*.ogg"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        if len(recordings) < 2:
            continue
        parts = ({"train": recordings[:1], "test": recordings[1:]} if len(recordings) >= 3
                 else {"train": recordings})
        for name, files in parts.items():
            folder = out / "audio" / name / species.name
            folder.mkdir(parents=True, exist_ok=True)
            for f in files:
                (folder / f.name).symlink_to(f.resolve())
            counts[name] += len(files)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args(argv)
    if not (args.source / "audio").is_dir():
        print(f"error: no birdsong recordings at {args.source / 'audio'}", file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"error: {args.out} exists; choose a new folder", file=sys.stderr)
        return 2
    counts = split(args.source, args.out)
    print(f"{counts['train']} training and {counts['test']} test recordings in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
