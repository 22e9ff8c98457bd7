"""``dcinet embed``: a run's features of any folder, as .npy + JSONL (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcinet.app.cli.options import add_checkpoint, add_inference, inference_from_args
from dcinet.data.records import MODALITIES, SPLITS

# = dcinet.data.any_folder.GALLERY_FORMATS, LABEL_MODES and dcinet.retrieval.embed.GALLERY_FEATURES
# (not imported: the parser loads no torch)
FOLDER_FORMATS = ("folder", "fgxmedia", "cub", "files")
LABEL_MODES = ("none", "folder")
GALLERY_FEATURES = ("logits", "embedding", "softmax+embedding")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed", help="write a trained run's embeddings of any folder (labelled or not)",
        description="Embed every item of a folder: a dataset (ROOT/<modality>/<split>/<class>/"
                    "<file>, or fgxmedia / cub) with any modalities and any classes, including "
                    "classes the run never saw, or a flat or nested folder of loose image, audio "
                    "and .txt files (their modality from the extension, else the content).")
    p.add_argument("run", type=Path, metavar="RUN_DIR_OR_CHECKPOINT",
                   help="a run directory of dcinet train, or one of its weights files")
    p.add_argument("--data", type=Path,
                   help="the folder to embed (default: the dataset the run was trained on)")
    p.add_argument("--format", choices=FOLDER_FORMATS,
                   help="layout of --data (default: folder when it holds <modality>/<split>/ "
                        "folders, else files: loose files)")
    p.add_argument("--split", default="all", choices=(*SPLITS, "all"),
                   help="a dataset's split to embed (default all; loose files have none)")
    p.add_argument("--modalities", nargs="+", choices=MODALITIES, metavar="M",
                   help="embed only these modalities (the others found are left out and counted)")
    p.add_argument("--labels", default="none", choices=LABEL_MODES,
                   help="loose files: none (unlabelled, default) or folder (each file's class is "
                        "the name of the folder it is in)")
    p.add_argument("--skip-unknown", action="store_true",
                   help="loose files: leave out (and count) files that are neither images, audio "
                        "nor .txt texts, instead of refusing the folder")
    add_checkpoint(p)
    p.add_argument("--out", type=Path, required=True, metavar="EMB_DIR")
    p.add_argument("--feature", choices=GALLERY_FEATURES,
                   help="logits (default: the best compromise measured), embedding (best for "
                        "classes the run never saw) or softmax+embedding (best for the classes "
                        "it was trained on; ties broken by the embedding)")
    add_inference(p)
    p.add_argument("--chunk-size", type=int, default=1024,
                   help="rows per resumable chunk (rounded up to a multiple of the batch size)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dcinet.retrieval.embed import embed_run

    inference = inference_from_args(args)
    manifest = embed_run(args.run, args.data, args.out, args.split, args.feature, args.format,
                         args.chunk_size, inference, checkpoint=args.checkpoint,
                         modalities=args.modalities, labels=args.labels,
                         skip_unknown=args.skip_unknown)
    if not inference.dist.is_main:
        return 0
    shapes = ", ".join(f"{m} {v['count']} x {v['dim']}" for m, v in manifest["modalities"].items())
    print(f"{args.out}: {manifest['feature']} features of {manifest['data_root']} "
          f"({manifest['format']}, split {manifest['split']}; {shapes})")
    return 0
