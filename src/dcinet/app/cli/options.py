"""Command-line options shared by the verbs that run a model: where, and how many at once."""

from __future__ import annotations

import argparse

from dcinet.config import DEVICE_CHOICES  # not dcinet.distributed: the parser loads no torch


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda|cuda:N`` (default auto: CUDA when present)."""
    p.add_argument("--device", default="auto",
                   help=f"{DEVICE_CHOICES} (default auto: CUDA when present; under torchrun each "
                        "process takes GPU LOCAL_RANK)")


def add_checkpoint(p: argparse.ArgumentParser) -> None:
    """``--checkpoint best|last|FILE``: which weights of a run directory (default last)."""
    p.add_argument("--checkpoint", default="last", metavar="best|last|FILE",
                   help="of a run directory: last (its latest checkpoint, default), best (its best "
                        "validation score) or a weights file")


def add_inference(p: argparse.ArgumentParser) -> None:
    """:func:`add_device` plus the inference batch size, decoding workers and AMP switch."""
    add_device(p)
    p.add_argument("--batch-size", type=int, default=64, help="items per forward pass (default 64)")
    p.add_argument("--workers", type=int, default=0,
                   help="DataLoader processes decoding the items (default 0: in this process)")
    p.add_argument("--no-amp", action="store_true",
                   help="no float16 autocast on CUDA (the CPU never uses it)")


def inference_from_args(args: argparse.Namespace):
    """The :class:`~dcinet.retrieval.features.Inference` of :func:`add_inference`'s options,
    joining ``torchrun``'s process group when there is one (its ranks share the items)."""
    from dcinet.distributed import init_distributed
    from dcinet.retrieval.features import Inference

    dist = init_distributed(args.device)
    return Inference(dist.device, args.batch_size, args.workers, not args.no_amp, dist)


def add_bootstrap(p: argparse.ArgumentParser) -> None:
    """``--bootstrap B`` (resamples of the intervals, 0 = none) and ``--bootstrap-seed``."""
    # 1000 = dcinet.retrieval.bootstrap.RESAMPLES (not imported: the parser stays numpy-free)
    p.add_argument("--bootstrap", type=int, default=1000, metavar="B",
                   help="bootstrap resamples of the queries for the 95%% intervals (default 1000; "
                        "0 = no intervals)")
    p.add_argument("--bootstrap-seed", type=int, default=0, metavar="S",
                   help="seed of the resamples (default 0)")
