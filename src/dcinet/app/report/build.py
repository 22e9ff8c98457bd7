"""What ``dcinet report`` runs: evaluate (a run on its test split, or saved features), compute the
confusions, draw the figures, write the page.

From a run, everything is on the page. From saved features (``dcinet evaluate --save-features``)
everything that needs no media is (tables, intervals, per-class AP, confusions; the training curves
too when the run directory is given as well); the example queries are left out and the page says
why.
"""

from __future__ import annotations

from pathlib import Path

from dcinet.app.report.confusion import direction_confusions
from dcinet.app.report.examples import MediaWriter, example_queries
from dcinet.app.report.figures import (
    class_ap_figure,
    confusion_figure,
    curve_figures,
    named_pairs,
)
from dcinet.app.report.page import Page, render
from dcinet.errors import DcinetError
from dcinet.retrieval.bootstrap import RESAMPLES, check_resamples
from dcinet.retrieval.directions import evaluate_directions
from dcinet.retrieval.evaluate import class_names, load_features, run_features
from dcinet.retrieval.features import Inference

PAGE = "index.html"
FIGURES = "figures"
MEDIA = "media"


def build_report(out: Path, run: Path | None = None, data: Path | None = None,
                 features_dir: Path | None = None, fmt: str | None = None,
                 feature: str | None = None, inference: Inference | None = None,
                 resamples: int = RESAMPLES, seed: int = 0, k: int = 5, classes_shown: int = 30,
                 pairs_shown: int = 10, progress: bool = False) -> Path | None:
    """Write ``out/index.html`` (with ``figures/``, ``media/`` and ``results.json``).

    Args:
        out: the report folder (created).
        run: a run directory or checkpoint: evaluated on its test split unless ``features_dir``
            is given; a run directory also gives the training curves (``metrics.csv``).
        data, fmt, feature, inference: as :func:`dcinet.retrieval.evaluate.evaluate_run`.
        features_dir: saved features to report on instead of evaluating (no example queries).
        resamples, seed: the bootstrap intervals (0: none).
        k: results per example query; classes_shown: classes per per-class AP figure (the
            worst); pairs_shown: confused pairs per direction.

    Returns:
        The page's path; None on the ranks other than 0 of a process group.

    Raises:
        DcinetError: neither ``run`` nor ``features_dir``, bad counts, or what evaluation raises.
    """
    check_resamples(resamples)
    if run is None and features_dir is None:
        raise DcinetError("report needs a RUN (directory or checkpoint) or --features DIR")
    if min(k, classes_shown, pairs_shown) < 1:
        raise DcinetError("-k, --classes and --pairs must be >= 1")
    inference = inference or Inference()
    if features_dir is not None:
        features, labels, classes = load_features(features_dir)
        evaluated, cfg = None, None
        source = f"Saved features {features_dir}" + (f" of the run {run}" if run else "")
    else:
        trained, evaluated = run_features(run, data, fmt, feature, inference, progress)
        if not inference.dist.is_main:
            return None
        features = {m: f.features for m, f in evaluated.items()}
        labels = {m: f.labels for m, f in evaluated.items()}
        classes, cfg = class_names(evaluated), trained.cfg
        source = (f"Run {run}, {feature or cfg.eval_feature} features of the test split of "
                  f"{data or trained.info.get('data_root')}")
    result = evaluate_directions(features, labels, resamples=resamples, seed=seed,
                                 class_names=classes)
    figures = out / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    confused = {d: named_pairs(c, result, pairs_shown)
                for d, c in direction_confusions(features, labels).items()}
    page = Page(
        title=f"dcinet report: {Path(run or features_dir).name}", source=source, result=result,
        class_figures={d: _relative(class_ap_figure(result, d, figures / f"class_ap_{d}.png",
                                                    classes_shown), out)
                       for d in result.per_query},
        confusion_figures={d: _relative(confusion_figure(p, d, figures / f"confused_{d}.png"),
                                        out) for d, p in confused.items()},
        confused=confused)
    run_dir = Path(run) if run is not None and Path(run).is_dir() else None
    if run_dir is not None:
        page.curves = {n: _relative(p, out) for n, p in curve_figures(run_dir, figures).items()}
    if not page.curves:
        page.curves_note = ("No training curves: no run directory with a metrics.csv was given."
                            if run_dir is None else f"No training curves: {run_dir} has no "
                                                    "metrics.csv rows.")
    elif "validation" not in page.curves:
        page.curves_note = "No validation curve: the run's metrics.csv has no val_* columns."
    if evaluated is None:
        page.examples_note = ("Example queries are left out: saved features hold no media. "
                              "Build the report from the run (dcinet report RUN --data ROOT) to "
                              "see them.")
    else:
        page.examples = example_queries(evaluated, result, k)
        writer = MediaWriter(out / MEDIA, cfg)
        page.media = {s: writer.media(s) for ex in page.examples
                      for s in (ex.query, *(h.sample for h in ex.hits))}
    result.to_json(out / "results.json")
    path = out / PAGE
    path.write_text(render(page), encoding="utf-8")
    return path


def _relative(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()
