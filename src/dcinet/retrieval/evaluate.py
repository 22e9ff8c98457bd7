"""``evaluate``: test features of a trained run → the paper's mAP tables and every other metric."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from dcinet.data.check import check_collection
from dcinet.data.readers import read_configured
from dcinet.data.records import MODALITIES
from dcinet.data.splits import hold_out_validation
from dcinet.errors import DcinetError
from dcinet.models.factory import TrainedModel, load_trained
from dcinet.retrieval.bootstrap import RESAMPLES, check_resamples
from dcinet.retrieval.directions import evaluate_directions
from dcinet.retrieval.features import (
    Inference,
    ModalityFeatures,
    check_model_feature,
    extract_features,
)
from dcinet.retrieval.result import RetrievalResult

CLASSES_FILE = "classes.json"


def dataset_root(trained: TrainedModel, data_root: Path | None) -> Path:
    """``data_root``, or the root the run was trained on when None.

    Raises:
        DcinetError: the folder does not exist (or the run recorded none).
    """
    root = Path(data_root) if data_root else Path(trained.info.get("data_root") or "")
    if not str(root) or not root.exists():
        raise DcinetError(f"dataset root not found: {root} (pass --data)")
    return root


def split_samples(trained: TrainedModel, data_root: Path | None, fmt: str | None,
                 split: str = "test", feature: str = "softmax"):
    """The checked samples of ``split`` for the modalities the model knows, read from
    :func:`dataset_root`; ``train`` and ``val`` as the run divided them
    (:func:`~dcinet.data.splits.hold_out_validation`).

    The test split may hold any subset of the run's modalities, and classes missing from some
    modality (their queries find no match there: AP 0, as the protocol scores them).
    The dataset's classes may differ from the run's (retrieval of classes the run never saw, as
    deep-metric-learning papers evaluate CUB's class-disjoint split) when ``feature`` is not
    ``softmax``: probabilities over the training classes cannot tell unseen classes apart.

    Raises:
        DcinetError: no such root, the dataset's classes differ from the run's with ``softmax``
            (or, for ``train`` and ``val``, its validation items differ), or a file is bad.
    """
    root = dataset_root(trained, data_root)
    # the test split may hold any subset of the run's modalities; train and val are compared
    # with the run's records, made over all of them
    wanted = None if split == "test" else trained.modalities
    cfg = replace(trained.cfg, format=fmt or trained.cfg.format, modalities=wanted)
    collection, validation = hold_out_validation(read_configured(root, cfg), cfg)
    if split != "test" and validation != trained.info.get("validation"):
        raise DcinetError(f"the validation items of {root} differ from those the run recorded "
                          f"(run.json); use the data it was trained on")
    if collection.classes != trained.classes and feature == "softmax":
        raise DcinetError(
            f"the classes of {root} ({collection.num_classes}) differ from those the run was "
            f"trained on ({len(trained.classes)}): softmax probabilities over the training classes "
            f"cannot rank classes the run never saw; pass --feature embedding")
    samples = [s for s in collection.select(split=split) if s.modality in trained.modalities]
    if not samples:
        raise DcinetError(f"{root} has no '{split}' samples for {', '.join(trained.modalities)}")
    subset = type(collection)(collection.classes, samples, collection.root, collection.format)
    report = check_collection(subset, trained.cfg)
    # a class missing from a modality only leaves its queries without matches there (AP 0, as
    # the protocol scores them): the test split need not have every class in every modality
    report.problems = [p for p in report.problems if p.kind != "single_modality_class"]
    if not report.ok:
        raise DcinetError(f"{split} data has problems:\n{report.format_report()}")
    return samples


def save_features(features: dict[str, ModalityFeatures], out_dir: Path,
                  classes: list[str] | None = None) -> None:
    """Write ``<modality>_features.npy`` (float32 (N, D)) and ``<modality>_labels.npy`` (int64),
    and with ``classes`` the class names (``classes.json``, ``classes[label]``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for modality, f in features.items():
        np.save(out_dir / f"{modality}_features.npy", f.features)
        np.save(out_dir / f"{modality}_labels.npy", f.labels)
    if classes is not None:
        (out_dir / CLASSES_FILE).write_text(json.dumps(classes) + "\n")


def load_features(features_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                list[str] | None]:
    """Read what :func:`save_features` wrote.

    Returns:
        modality -> (N, D) features, modality -> (N,) labels (modalities in canonical order),
        and the class names (None when ``classes.json`` is absent).

    Raises:
        DcinetError: no features there, a labels file is missing or a file is unreadable.
    """
    features, labels = {}, {}
    for modality in MODALITIES:
        path = Path(features_dir) / f"{modality}_features.npy"
        if not path.exists():
            continue
        try:
            features[modality] = np.load(path, allow_pickle=False)
            labels[modality] = np.load(path.with_name(f"{modality}_labels.npy"), allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DcinetError(f"cannot read the saved {modality} features in {features_dir}: "
                              f"{e}") from None
    if not features:
        raise DcinetError(f"no <modality>_features.npy in {features_dir} (write them with "
                          f"dcinet evaluate --save-features DIR)")
    names = Path(features_dir) / CLASSES_FILE
    try:
        classes = json.loads(names.read_text()) if names.exists() else None
    except ValueError:
        raise DcinetError(f"{names} is corrupt") from None
    return features, labels, classes


def run_features(path: Path, data_root: Path | None = None, fmt: str | None = None,
                 feature: str | None = None, inference: Inference | None = None,
                 progress: bool = False, split: str = "test",
                 checkpoint: str = "last") -> tuple[TrainedModel, dict[str, ModalityFeatures]]:
    """The loaded run and its features of ``split`` (every rank of a process group gets all of
    them).

    Args: as :func:`evaluate_run`.
    """
    inference = inference or Inference()
    trained = load_trained(path, inference.device, checkpoint)
    feature = feature or trained.cfg.eval_feature
    check_model_feature(trained, feature)
    samples = split_samples(trained, data_root, fmt, split, feature)
    return trained, extract_features(trained, samples, feature, inference, progress=progress)


def class_names(features: dict[str, ModalityFeatures]) -> list[str]:
    """``names[label]`` for the labels of the samples behind ``features`` (the dataset's own
    classes, which may differ from the run's); ``""`` for a label no sample has."""
    named = {s.label: s.class_name for f in features.values() for s in f.samples}
    return [named.get(label, "") for label in range(max(named, default=-1) + 1)]


def evaluate_run(path: Path, data_root: Path | None = None, fmt: str | None = None,
                 feature: str | None = None, save_features_dir: Path | None = None,
                 inference: Inference | None = None, progress: bool = False,
                 resamples: int = RESAMPLES, seed: int = 0, split: str = "test",
                 checkpoint: str = "last") -> RetrievalResult | None:
    """Evaluate a run directory or checkpoint on the test split (or ``split``: ``val``, the
    items the run validated on) with the paper's protocol.

    Args:
        feature: ``softmax`` (default, the protocol behind the paper's numbers), ``logits`` or
            ``embedding`` (the pooled pre-logits vector); None = the run's ``eval_feature``.
        inference: device, batch size, workers, AMP, and the process group whose ranks share
            the items (default: one CPU process).
        resamples, seed: the bootstrap intervals (0 resamples: none).
        checkpoint: of a run directory, ``last``, ``best`` or a weights file
            (:func:`~dcinet.rundir.resolve_checkpoint`).
    Returns:
        The result; None on the ranks other than 0 of a process group (rank 0 computes the
        metrics and writes the features).
    """
    inference = inference or Inference()
    check_resamples(resamples)  # before the work
    trained, feats = run_features(path, data_root, fmt, feature, inference, progress, split,
                                  checkpoint)
    if not inference.dist.is_main:
        return None
    names = class_names(feats)
    if save_features_dir is not None:
        save_features(feats, Path(save_features_dir), names)
    return evaluate_directions({m: f.features for m, f in feats.items()},
                               {m: f.labels for m, f in feats.items()},
                               resamples=resamples, seed=seed, class_names=names)
