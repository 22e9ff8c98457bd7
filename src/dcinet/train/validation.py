"""Validation during training: the retrieval mAP of the model on the run's validation items
(:mod:`dcinet.data.splits`), with the test-time evaluator, and the score that picks the best
checkpoint.

The features are :func:`~dcinet.retrieval.features.extract_features`'s (the CCRN in eval mode,
the run's ``eval_feature``, batches of 64, as ``dcinet evaluate`` computes them), ranked by
:func:`~dcinet.retrieval.directions.evaluate_directions`. The score is the average bimodal mAP
(Table 1's "Average"); on data with one modality, which has no bimodal direction, it is the
unimodal mAP (``i2i``: the query removed from its gallery; its X->all keeps the self-match).
Validation leaves every RNG stream as it found it, so that a run that validates trains exactly
as one that does not, and resumes bit-identically.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from dcinet.config import Config
from dcinet.data.check import check_collection
from dcinet.data.problems import Problem, format_problems
from dcinet.data.records import Collection, Sample
from dcinet.distributed import DistInfo
from dcinet.errors import DcinetError
from dcinet.models.factory import TrainedModel
from dcinet.retrieval.directions import evaluate_directions
from dcinet.retrieval.features import Inference, extract_features
from dcinet.rundir import BEST_WEIGHTS
from dcinet.train.checkpoint import rng_state, set_rng_state

SCORE = "val_score"
"""The metrics.csv column of the score that selects the best checkpoint."""


def checked_val_samples(collection: Collection, modalities: list[str],
                        skip_bad: bool) -> tuple[list[Sample], list[Problem]]:
    """The collection's ``val`` samples of ``modalities``, checked by decoding every file.

    Returns:
        ``(samples, problems)``: with ``skip_bad`` the samples the problems disqualify are left
        out and the problems returned for the caller to record.
    Raises:
        DcinetError: a problem (without ``skip_bad``), or no usable val sample.
    """
    subset = Collection(collection.classes, [s for s in collection.select(split="val")
                                             if s.modality in modalities],
                        collection.root, collection.format)
    report = check_collection(subset, decode=True)
    if report.problems and not skip_bad:
        raise DcinetError(f"val data in {collection.root} has problems; fix them or skip the bad "
                          f"samples with --skip-bad\n{format_problems(report.problems)}")
    kept = [s for i, s in enumerate(subset.samples) if i not in report.bad_samples]
    if not kept:
        raise DcinetError(f"no usable val samples in {collection.root}")
    return kept, report.problems


def validation_due(cfg: Config, epoch: int) -> bool:
    """Whether epoch ``epoch`` (0-based) ends with a validation: every ``cfg.val_every``
    epochs and after the last one (never with ``val_every=0``)."""
    return cfg.val_every > 0 and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs)


def validate(model: torch.nn.Module, cfg: Config, classes: list[str], modalities: list[str],
             samples: list[Sample], dist: DistInfo) -> dict[str, float]:
    """Score ``model`` on ``samples``; it is back in the mode it was in and the RNG streams
    untouched afterwards. Under ``torchrun`` every rank takes part (the batches are shared) and gets the
    same scores.

    Returns:
        ``{"val_average_bimodal", "val_average_multimodal", "val_score"}`` (an average the data
        has no direction for is left out), mAPs in [0, 1].
    """
    trained = TrainedModel(model, cfg, classes, modalities, run_dir=None, weights=None, info={})
    was_training = model.training  # an EMA's copy stays in eval mode
    with _rng_kept():
        try:
            features = extract_features(trained, samples, cfg.eval_feature,
                                        Inference(dist.device, amp=cfg.amp, dist=dist))
        finally:
            model.train(was_training)
    result = evaluate_directions({m: f.features for m, f in features.items()},
                                 {m: f.labels for m, f in features.items()})
    scores = {"val_average_bimodal": result.average_bimodal,
              "val_average_multimodal": result.average_multimodal}
    unimodal = [result.directions[d] for d in result.unimodal]
    scores[SCORE] = result.average_bimodal if result.bimodal else np.mean(unimodal)
    return {k: float(v) for k, v in scores.items() if v is not None}


def improved_best(best: dict | None, scores: dict[str, float], epoch: int) -> dict | None:
    """The new best record (``best.json``) when ``scores`` of epoch ``epoch`` (1-based) beat
    ``best`` (strictly; the first validation always does), else None."""
    if best is not None and not scores[SCORE] > best["score"]:
        return None
    return {"epoch": epoch, "score": scores[SCORE], "metric": SCORE, "weights": BEST_WEIGHTS,
            **scores}


@contextlib.contextmanager
def _rng_kept() -> Iterator[None]:
    """Restore the Python, NumPy, torch and CUDA RNG states on exit (a DataLoader draws its base
    seed from torch's)."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
