"""The result of an evaluation: per-query values of every metric and direction, what follows from
them (means, averages over directions, per-class AP, bootstrap intervals), and its reports.

Everything is derived from the per-query values (:meth:`~dcinet.retrieval.metrics.RankStats.
per_query`) and the queries' labels, so a result saved with :meth:`RetrievalResult.save_per_query`
and read back with :func:`load_per_query` reports the same numbers.

* metric of a direction = mean over its queries (each metric of :mod:`dcinet.retrieval.metrics`);
* ``average_bimodal`` / ``average_multimodal`` = plain mean over those directions (the paper's
  "Average" columns), for every metric;
* per-class AP of a direction = mean AP of its queries of that class (classes with no query in
  the direction do not appear);
* intervals (:mod:`dcinet.retrieval.bootstrap`): the queries of each modality are resampled (B
  times, with replacement, seeded); each direction uses its query modality's resamples, an
  average over directions is taken inside each resample; per-class intervals use the same
  resamples, restricted to the class's queries (a resample that drew none of them is left out).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from dcinet.errors import DcinetError
from dcinet.retrieval.bootstrap import LEVEL, RESAMPLES, QueryBootstrap
from dcinet.retrieval.metrics import definitions

PROTOCOL = ("cosine similarity; every metric over the whole ranked gallery (ties by gallery "
            "index); X2all gallery = all modalities' test items, query included; X2X (one "
            "modality only) gallery = the other test items, query removed")

KINDS = ("unimodal", "bimodal", "multimodal")
Table = tuple[str, list[str], list[list[str]]]
"""(title, header cells, rows of cells)."""
AVERAGES = {"bimodal": "average_bimodal", "multimodal": "average_multimodal"}


@dataclass
class RetrievalResult:
    """Every metric of every direction, from the per-query values.

    Attributes:
        per_query: direction -> metric name -> (Nq,) float64 per-query values, directions in
            table order: unimodal (only with a single modality; query removed from its gallery),
            then bimodal, then multimodal.
        query_of: direction -> its query modality; query_labels: modality -> (N,) class ids.
        bimodal, multimodal, unimodal: the direction names of each kind.
        counts: test items per modality; queries / galleries: each direction's sizes.
        unmatched: direction -> its queries without any item of their class in the gallery
            (they score 0 on every metric, as the protocol counts them); 0s left out.
        class_names: ``class_names[label]`` names a class (None: the label itself).
        resamples, seed, level: the bootstrap (``resamples == 0``: no intervals).
    """

    per_query: dict[str, dict[str, np.ndarray]]
    query_of: dict[str, str]
    query_labels: dict[str, np.ndarray]
    bimodal: list[str]
    multimodal: list[str]
    counts: dict[str, int]
    queries: dict[str, int] = field(default_factory=dict)
    galleries: dict[str, int] = field(default_factory=dict)
    unimodal: list[str] = field(default_factory=list)
    class_names: list[str] | None = None
    unmatched: dict[str, int] = field(default_factory=dict)
    resamples: int = RESAMPLES
    seed: int = 0
    level: float = LEVEL

    # ---- the numbers -------------------------------------------------------------------------

    @property
    def metric_names(self) -> list[str]:
        """The metrics held, in report order (``mAP`` first)."""
        return list(next(iter(self.per_query.values())))

    @cached_property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Direction -> metric -> mean over its queries."""
        return {d: {m: float(v.mean()) if len(v) else 0.0 for m, v in values.items()}
                for d, values in self.per_query.items()}

    @property
    def directions(self) -> dict[str, float]:
        """Direction -> mAP (the paper's tables)."""
        return {d: values["mAP"] for d, values in self.metrics.items()}

    @cached_property
    def averages(self) -> dict[str, dict[str, float]]:
        """``average_bimodal`` / ``average_multimodal`` (where there are such directions) ->
        metric -> plain mean over the directions."""
        return {name: {m: float(np.mean([self.metrics[d][m] for d in names]))
                       for m in self.metric_names}
                for name, names in self._averaged().items()}

    @property
    def average_bimodal(self) -> float | None:
        """Plain mean of the bimodal mAPs (Table 1's "Average"); None without bimodal directions."""
        return self.averages.get("average_bimodal", {}).get("mAP")

    @property
    def average_multimodal(self) -> float | None:
        """Plain mean of the X->all mAPs (Table 2's "Average")."""
        return self.averages.get("average_multimodal", {}).get("mAP")

    @cached_property
    def per_class(self) -> dict[str, dict[str, float]]:
        """Direction -> class name -> mean AP of the direction's queries of that class, classes
        in label order."""
        out = {}
        for d, values in self.per_query.items():
            labels = self.query_labels[self.query_of[d]]
            classes, inverse = np.unique(labels, return_inverse=True)
            sums = np.bincount(inverse.reshape(-1), weights=values["mAP"], minlength=len(classes))
            sizes = np.bincount(inverse.reshape(-1), minlength=len(classes))
            out[d] = {self.class_name(c): float(s / n) for c, s, n in zip(classes, sums, sizes,
                                                                            strict=True)}
        return out

    def class_name(self, label: object) -> str:
        """The name of class ``label``."""
        return self.class_names[int(label)] if self.class_names is not None else str(label)

    @property
    def intervals(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Direction or average name -> metric -> (low, high) bootstrap interval; {} without a
        bootstrap."""
        return self._bootstrap[0]

    @property
    def per_class_intervals(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Direction -> class name -> (low, high) bootstrap interval of its per-class AP."""
        return self._bootstrap[1]

    def _averaged(self) -> dict[str, list[str]]:
        kinds = {"bimodal": self.bimodal, "multimodal": self.multimodal}
        return {AVERAGES[k]: names for k, names in kinds.items() if names}

    @cached_property
    def _bootstrap(self) -> tuple[dict, dict]:
        if not self.resamples:
            return {}, {}
        boot = QueryBootstrap(self.resamples, self.seed, self.level)
        names = self.metric_names
        samples = {d: boot.means(self.query_of[d], np.stack([v[m] for m in names], axis=1))
                   for d, v in self.per_query.items()}
        for average, directions in self._averaged().items():
            samples[average] = np.mean([samples[d] for d in directions], axis=0)
        intervals = {}
        for key, sample in samples.items():
            lo, hi = boot.interval(sample)
            intervals[key] = {m: (float(a), float(b)) for m, a, b in zip(names, lo, hi,
                                                                          strict=True)}
        per_class = {}
        for modality, labels in self.query_labels.items():  # its directions in one pass
            directions = [d for d, m in self.query_of.items() if m == modality]
            classes, means = boot.class_means(
                modality, np.stack([self.per_query[d]["mAP"] for d in directions], axis=1), labels)
            lo, hi = boot.interval(means)
            for i, d in enumerate(directions):
                per_class[d] = {self.class_name(c): (float(a), float(b))
                                for c, a, b in zip(classes, lo[:, i], hi[:, i], strict=True)}
        return intervals, {d: per_class[d] for d in self.per_query}

    # ---- reports -----------------------------------------------------------------------------

    def to_dict(self, per_class: bool = True) -> dict:
        """JSON-ready: ``directions`` (mAP) and the two mAP averages as before, then every metric,
        the intervals, per-class AP (unless ``per_class`` is False), sizes and the protocol."""
        out = {
            "directions": dict(self.directions),
            "average_bimodal": self.average_bimodal,
            "average_multimodal": self.average_multimodal,
            "metrics": {**self.metrics, **self.averages},
            "intervals": {k: {m: list(v) for m, v in ci.items()} for k, ci in self.intervals.items()},
            "unimodal": list(self.unimodal),
            "bimodal": list(self.bimodal),
            "multimodal": list(self.multimodal),
            "counts": dict(self.counts),
            "queries": dict(self.queries),
            "galleries": dict(self.galleries),
            "unmatched": dict(self.unmatched),
            "bootstrap": ({"resamples": self.resamples, "seed": self.seed, "level": self.level,
                           "unit": "the queries of each modality, drawn with replacement; "
                                   "directions with the same query modality share the draws"}
                          if self.resamples else None),
            "protocol": PROTOCOL,
            "definitions": definitions(self.metric_names),
        }
        if per_class:
            out["per_class"] = self.per_class
            out["per_class_intervals"] = {d: {c: list(v) for c, v in ci.items()}
                                          for d, ci in self.per_class_intervals.items()}
        return out

    def tables(self, model: str = "this run", per_class: bool = False) -> list[Table]:
        """The report's tables as (title, header, rows): the paper's Tables 1 (bimodal) and 2
        (multimodal), 3 decimals (with a single modality first the unimodal table), then one
        table of every other metric per kind of direction, and with ``per_class`` the AP of
        every class (worst first). With a bootstrap every number carries its interval,
        ``.242 [.231, .253]``."""
        kinds = dict(zip(KINDS, (self.unimodal, self.bimodal, self.multimodal), strict=True))
        titles = {"unimodal": "Unimodal retrieval (mAP, query removed from its gallery)",
                  "bimodal": "Bimodal retrieval (mAP, cf. Table 1)",
                  "multimodal": "Multimodal retrieval (mAP, cf. Table 2)"}
        tables = []
        for kind, names in kinds.items():
            if names:
                columns = [*names, *([AVERAGES[kind]] if kind in AVERAGES else [])]
                header = ["Models", *names] + (["Average"] if kind in AVERAGES else [])
                tables.append((titles[kind], header,
                               [[model, *(self.cell(c, "mAP") for c in columns)]]))
        for kind, names in kinds.items():
            if names:
                columns = [*names, *([AVERAGES[kind]] if kind in AVERAGES else [])]
                header = ["Metric", *names] + (["Average"] if kind in AVERAGES else [])
                rows = [[m, *(self.cell(c, m) for c in columns)] for m in self.metric_names[1:]]
                tables.append((f"Every metric, {kind} directions ({model})", header, rows))
        if per_class:
            tables.append(self._per_class_table())
        return tables

    def notes(self) -> str:
        """The sentence under the tables: test items per modality and the bootstrap."""
        counts = ", ".join(f"{m} {n}" for m, n in self.counts.items())
        notes = [f"Test items: {counts}."]
        if self.multimodal:
            notes.append("X2all galleries hold the query itself, usually its first result: "
                         "R@K and P@K count it, as the mAP does.")
        if self.unmatched:
            which = ", ".join(f"{d} {n} of {self.queries[d]}" + (" (none can match)"
                                                                  if n == self.queries[d] else "")
                              for d, n in self.unmatched.items())
            notes.append(f"Queries whose class has no item in the gallery score 0 and count in "
                         f"the means: {which}.")
        if self.resamples:
            notes.append(f"[low, high]: {self.level:.0%} percentile bootstrap interval over the "
                         f"queries ({self.resamples} resamples, seed {self.seed}).")
        return " ".join(notes)

    def to_markdown(self, model: str = "this run", per_class: bool = False) -> str:
        """:meth:`tables` as Markdown, then :meth:`notes`."""
        blocks = ["\n".join([f"**{title}**", "", "| " + " | ".join(header) + " |",
                             "|" + "---|" * len(header),
                             *("| " + " | ".join(row) + " |" for row in rows)])
                  for title, header, rows in self.tables(model, per_class)]
        return "\n\n".join([*blocks, self.notes()]) + "\n"

    def cell(self, key: str, metric: str) -> str:
        """A table cell: ``metric`` of a direction or average ``key``, 3 decimals, with its
        interval when there is one (``.242 [.231, .253]``)."""
        value = {**self.metrics, **self.averages}[key][metric]
        if key not in self.intervals:
            return short(value)
        lo, hi = self.intervals[key][metric]
        return f"{short(value)} [{short(lo)}, {short(hi)}]"

    def _per_class_table(self) -> Table:
        names = list(self.per_query)
        classes = sorted(self.per_class[names[0]],
                         key=lambda c: np.mean([self.per_class[d].get(c, 0.0) for d in names]))
        rows = [[c, *(short(self.per_class[d][c]) if c in self.per_class[d] else ""
                      for d in names)] for c in classes]
        return ("AP per class (mean AP of the class's queries; worst first)", ["Class", *names],
                rows)

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON; returns the path."""
        path = _writable(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def to_csv(self, path: str | Path) -> Path:
        """One row per direction (then the averages): direction, kind, sizes, then per metric
        its value and interval (``map``, ``map_lo``, ``map_hi``, ``map@r``, ... ``p@10_hi``;
        empty bounds without a bootstrap)."""
        path = _writable(path)
        names = self.metric_names
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["direction", "kind", "queries", "gallery",
                             *(f"{m.lower()}{s}" for m in names for s in ("", "_lo", "_hi"))])
            rows = [(d, kind, self.queries.get(d, ""), self.galleries.get(d, ""))
                    for kind, ds in zip(KINDS, (self.unimodal, self.bimodal, self.multimodal),
                                        strict=True) for d in ds]
            rows += [(a, "average", "", "") for a in self.averages]
            values = {**self.metrics, **self.averages}
            for row in rows:
                ci = self.intervals.get(row[0], {})
                writer.writerow([*row, *(x for m in names for x in (
                    repr(values[row[0]][m]), *(map(repr, ci[m]) if m in ci else ("", ""))))])
        return path

    def save_per_query(self, path: str | Path) -> Path:
        """Write the per-query values and labels (``<direction>/<metric>``,
        ``labels/<modality>``) and the rest (``meta``, JSON) to an ``.npz``; returns the path."""
        path = _writable(path)
        meta = {"query_of": self.query_of, "bimodal": self.bimodal,
                "multimodal": self.multimodal, "unimodal": self.unimodal, "counts": self.counts,
                "queries": self.queries, "galleries": self.galleries,
                "unmatched": self.unmatched, "class_names": self.class_names,
                "resamples": self.resamples, "seed": self.seed,
                "level": self.level, "directions": list(self.per_query),
                "metric_names": self.metric_names}
        arrays = {f"{d}/{m}": v for d, values in self.per_query.items() for m, v in values.items()}
        arrays.update({f"labels/{m}": v for m, v in self.query_labels.items()})
        with path.open("wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        return path


def load_per_query(path: str | Path) -> RetrievalResult:
    """Read a result written by :meth:`RetrievalResult.save_per_query`.

    Raises:
        DcinetError: the file is missing or not such a file.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            per_query = {d: {m: data[f"{d}/{m}"] for m in meta["metric_names"]}
                         for d in meta["directions"]}
            labels = {m: data[f"labels/{m}"] for m in set(meta["query_of"].values())}
    except (OSError, KeyError, ValueError) as e:
        raise DcinetError(f"{path} is not a per-query results file ({e})") from None
    return RetrievalResult(
        per_query=per_query, query_of=meta["query_of"], query_labels=labels,
        bimodal=meta["bimodal"], multimodal=meta["multimodal"], counts=meta["counts"],
        queries=meta["queries"], galleries=meta["galleries"], unimodal=meta["unimodal"],
        class_names=meta["class_names"], unmatched=meta.get("unmatched", {}),
        resamples=meta["resamples"], seed=meta["seed"],
        level=meta["level"])


def short(value: float, signed: bool = False) -> str:
    """3 decimals without the leading zero: ``.242``, ``1.000``, ``-.013`` (``+.012`` when
    ``signed``)."""
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    return text.replace("0.", ".", 1) if text.lstrip("+-").startswith("0.") else text


def _writable(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DcinetError(f"cannot create {path.parent}: {e}") from e
    return path
