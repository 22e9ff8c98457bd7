"""``dcinet data check`` (counts and every problem of a dataset), ``dcinet data prepare-fgxmedia``
(a PKU FG-XMedia copy against its list files), ``dcinet data cache`` (spectrograms computed once,
before training) and ``dcinet data synth``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dcinet.config import FORMATS
from dcinet.errors import USER_ERROR_EXIT, DcinetError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` verb with its ``check``, ``prepare-fgxmedia``, ``cache`` and ``synth``
    sub-commands."""
    parser = subparsers.add_parser("data", help="check a dataset or generate the built-in one")
    sub = parser.add_subparsers(dest="data_verb", metavar="ACTION")
    sub.required = True

    check = sub.add_parser("check", help="list counts per modality / split / class and every problem",
                           description="Exit status: 0 when the dataset is clean, 2 when problems were found.")
    check.add_argument("root", type=Path, help="dataset root folder")
    check.add_argument("--format", default=None, choices=FORMATS,
                       help="layout: folder (ROOT/<modality>/<split>/<class>/<file>), fgxmedia (list "
                            "files), cub (CUB-200-2011 files); default folder")
    check.add_argument("--lists", type=Path, default=None, metavar="DIR",
                       help="fgxmedia: folder holding <modality>/{train,test}.txt (default ROOT/list)")
    check.add_argument("--num-classes", type=int, default=None, metavar="N",
                       help="fgxmedia: number of classes (default: largest label + 1)")
    check.add_argument("--train-flag", type=int, choices=(0, 1), default=None,
                       help="cub: the train_test_split.txt value that marks train images (default 1, "
                            "as in CUB-200-2011)")
    check.add_argument("--modalities", nargs="+", default=None, metavar="M",
                       help="check only these modalities (default: all found)")
    check.add_argument("--no-decode", action="store_true",
                       help="skip reading file contents (no decoding, no duplicate-content check)")
    check.add_argument("--config", metavar="PRESET_OR_YAML",
                       help="also report every refusal `dcinet train --config` would make on this "
                            "dataset (and the batch it would fit), before any training")
    check.add_argument("overrides", nargs="*", metavar="key=value",
                       help="config overrides, with --config")
    check.set_defaults(func=_check)

    prepare = sub.add_parser(
        "prepare-fgxmedia", help="compare a PKU FG-XMedia copy with its list files; render spectrograms",
        description="Report, per modality and class, the listed files that are missing and the files "
                    "present but not listed. Exit status: 0 when every listed file is present (extra "
                    "files are reported but allowed), 2 otherwise.")
    prepare.add_argument("root", type=Path, help="dataset root (list paths are relative to it)")
    prepare.add_argument("--lists", type=Path, default=None, metavar="DIR",
                         help="folder holding <modality>/{train,test}.txt (default ROOT/list)")
    prepare.add_argument("--convert-audio", action="store_true",
                         help="render missing listed spectrogram pictures from raw audio files with the "
                              "same stem (.wav/.flac/.ogg/.mp3 anywhere under ROOT/audio)")
    prepare.add_argument("--size", type=int, default=448, metavar="PX",
                         help="side of the rendered spectrogram pictures (default 448, the paper's input)")
    prepare.add_argument("--show", type=int, default=20, metavar="N",
                         help="paths listed per modality for missing and for extra files (default 20, 0 = all)")
    prepare.set_defaults(func=_prepare_fgxmedia)

    cache = sub.add_parser(
        "cache", help="compute every audio file's spectrogram into the cache before training",
        description="Fill the spectrogram cache ($DCINET_CACHE or ~/.cache/dcinet) with the "
                    "config's sample_rate / n_fft / hop_length, so that the first epoch does not "
                    "compute them.")
    cache.add_argument("root", type=Path, help="dataset root")
    cache.add_argument("--config", default="paper", help="preset or YAML file (default paper)")
    cache.add_argument("--format", choices=FORMATS)
    cache.add_argument("--workers", type=int, default=None,
                       help="processes (default: the usable cores)")
    cache.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    cache.set_defaults(func=_cache)

    synth = sub.add_parser("synth", help="generate the built-in fine-grained tri-modal dataset")
    synth.add_argument("--out", type=Path, required=True, help="output folder")
    synth.add_argument("--classes", type=int, default=20, help="number of classes (default 20)")
    synth.add_argument("--per-class", type=int, default=40, help="samples per class and modality (default 40)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.set_defaults(func=_synth)


def _check(args: argparse.Namespace) -> int:
    from dcinet.config import Config, load_config, parse_overrides
    from dcinet.data.check import check_root

    if args.overrides and not args.config:
        raise DcinetError("key=value overrides apply with --config")
    cfg = Config(modalities=args.modalities)
    if args.config:  # the config's own dataset keys, unless given here
        given = {"format": "format", "modalities": "modalities", "lists": "lists_dir",
                 "num_classes": "num_classes", "train_flag": "cub_train_flag"}
        overrides = {**parse_overrides(args.overrides),
                     **{key: getattr(args, opt) for opt, key in given.items()
                        if getattr(args, opt) is not None}}
        if "lists_dir" in overrides:
            overrides["lists_dir"] = str(overrides["lists_dir"])
        cfg = load_config(args.config, overrides)
        args.format, args.lists, args.num_classes = cfg.format, cfg.lists_dir, cfg.num_classes
        args.train_flag = cfg.cub_train_flag if cfg.format == "cub" else None
    options = {"lists_dir": args.lists, "num_classes": args.num_classes, "train_flag": args.train_flag}
    report = check_root(args.root, args.format or "folder", cfg, decode=not args.no_decode, progress=sys.stderr.isatty(),
                        **{key: value for key, value in options.items() if value is not None})
    print(report.format_report())
    if not args.config:
        return 0 if report.ok else USER_ERROR_EXIT
    from dcinet.train.preflight import train_refusals

    preflight = train_refusals(cfg, args.root)
    print(preflight.format())
    return 0 if report.ok and not preflight.refusals else USER_ERROR_EXIT


def _prepare_fgxmedia(args: argparse.Namespace) -> int:
    from dcinet.sources.fgxmedia_prepare import prepare_fgxmedia

    if args.size <= 0 or args.show < 0:
        raise DcinetError("--size must be positive and --show must not be negative")
    report = prepare_fgxmedia(args.root, args.lists, convert_audio=args.convert_audio, size=args.size,
                              progress=sys.stderr.isatty())
    print(report.format_report(show=args.show))
    return 0 if report.ok else USER_ERROR_EXIT


def _cache(args: argparse.Namespace) -> int:
    from dcinet.app.cli import usable_cores
    from dcinet.config import load_config, parse_overrides
    from dcinet.data.cache import fill_spectrogram_cache
    from dcinet.data.readers import read_configured

    overrides = parse_overrides(args.overrides)
    if args.format:
        overrides["format"] = args.format
    cfg = load_config(args.config, overrides)
    workers = usable_cores() if args.workers is None else args.workers
    if workers < 1:
        raise DcinetError("--workers must be >= 1")
    collection = read_configured(args.root, cfg)
    report = fill_spectrogram_cache(collection.samples, cfg, workers=workers,
                                    progress=sys.stderr.isatty())
    print(report.format())
    return 0


def _synth(args: argparse.Namespace) -> int:
    from dcinet.sources.synth import synthesize

    out = synthesize(args.out, classes=args.classes, per_class=args.per_class, seed=args.seed)
    print(f"wrote the synthetic dataset to {out}")
    return 0
