"""Bootstrap intervals over queries, vectorised over the resamples.

A metric is a mean of per-query values. One bootstrap resample draws the N queries of a *group*
(in :mod:`dcinet.retrieval.result`: the queries of one modality) N times with replacement; it is
held as its multiplicities, a row of a (B, N) count matrix, so B resampled means are one matrix
product ``counts @ values / N``. Every direction whose queries are the same items (i2t, i2a and
i2all all query with the test images) uses the same rows, and an average over directions is
averaged inside each resample, so it is resampled consistently with its parts.

The count matrix of a group depends only on (seed, group name, N): two models evaluated on the same
test items see the same resamples, which makes a *paired* comparison of them (
:func:`paired_difference`) a matter of resampling their per-query differences.

The interval is the percentile interval: the (1 - level) / 2 and (1 + level) / 2 quantiles of the B
resampled values (numpy's linear interpolation).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
from numba import njit, prange

from dcinet.errors import DcinetError

RESAMPLES = 1000
"""Default number of bootstrap resamples B."""

LEVEL = 0.95
"""Default coverage of the percentile interval."""


def check_resamples(resamples: int) -> int:
    """``resamples`` if it is a valid number of resamples (0 = no bootstrap), else DcinetError."""
    if resamples < 0:
        raise DcinetError(f"--bootstrap must be >= 0 resamples (0 = no intervals), got {resamples}")
    return resamples


class QueryBootstrap:
    """B seeded resamples of each group of queries, and the intervals they give.

    Args:
        resamples: B (>= 1).
        seed: the seed; with the group's name it fixes every resample.
        level: coverage of the percentile interval, in (0, 1).
    """

    def __init__(self, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> None:
        if check_resamples(resamples) < 1:
            raise DcinetError(f"bootstrap resamples must be >= 1, got {resamples}")
        if not 0 < level < 1:
            raise DcinetError(f"the interval level must lie in (0, 1), got {level}")
        self.resamples, self.seed, self.level = resamples, seed, level
        self._counts: dict[tuple[str, int], np.ndarray] = {}

    def counts(self, group: str, n: int) -> np.ndarray:
        """(B, n) float64: how often each of the ``n`` items of ``group`` is drawn in each
        resample (each row sums to n). The same for every call with this seed, group and n."""
        key = (group, n)
        if key not in self._counts:
            rng = np.random.default_rng([self.seed, zlib.crc32(group.encode())])
            draws = rng.integers(0, max(n, 1), size=(self.resamples, n), dtype=np.int32)
            counts = np.empty((self.resamples, n))
            for row, drawn in zip(counts, draws, strict=True):  # resample b counts in row b
                row[:] = np.bincount(drawn, minlength=n)
            self._counts[key] = counts
        return self._counts[key]

    def means(self, group: str, values: np.ndarray) -> np.ndarray:
        """Resampled means of per-query values.

        Args:
            values: (N,) or (N, K) float per-query values of the queries of ``group``.

        Returns:
            (B,) or (B, K) float64: the mean over each resample's queries (NaN when N == 0).
        """
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        if n == 0:
            return np.full((self.resamples, *values.shape[1:]), np.nan)
        return self.counts(group, n) @ values / n

    def class_means(self, group: str, values: np.ndarray, labels: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Resampled means of per-query values within each class.

        Args:
            values: (N,) or (N, K) float per-query values; labels: (N,) their queries' class ids.

        Returns:
            (C,) the classes (sorted, as ``np.unique``); (B, C) or (B, C, K) float64 mean of each
            class's queries in each resample, NaN where a resample drew none of them (left out
            of :meth:`interval`).
        """
        values, labels = np.asarray(values, dtype=np.float64), np.asarray(labels)
        classes, class_of = np.unique(labels, return_inverse=True)
        drawn, sums = _class_sums(self.counts(group, len(values)), class_of.reshape(-1),
                                  np.ascontiguousarray(values.reshape(len(values), -1)),
                                  len(classes))
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(drawn[..., None] > 0, sums / drawn[..., None], np.nan)
        return classes, means.reshape(*drawn.shape, *values.shape[1:])

    def interval(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of resampled values.

        Args:
            samples: (B, ...) resampled values; NaN entries are left out.

        Returns:
            (lo, hi), each of shape ``samples.shape[1:]`` (NaN where every sample is NaN).
        """
        quantiles = [50 * (1 - self.level), 50 * (1 + self.level)]
        samples = np.asarray(samples, dtype=np.float64)
        if not np.isnan(samples).any():
            lo, hi = np.percentile(samples, quantiles, axis=0)
            return lo, hi
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column gives NaN
            lo, hi = np.nanpercentile(samples, quantiles, axis=0)
        return lo, hi


@njit(parallel=True, cache=True, nogil=True)
def _class_sums(counts, class_of, values, n_classes):
    """Per resample and class, the queries drawn and the sums of their values, in one pass.

    Args:
        counts: (B, N) float64 multiplicities; class_of: (N,) int64 class index of each query;
        values: (N, K) float64; n_classes: C.

    Returns:
        (B, C) float64 draws of each class's queries; (B, C, K) float64 sums of their values
        (added in query order).
    """
    n_resamples, n = counts.shape
    drawn = np.zeros((n_resamples, n_classes))
    sums = np.zeros((n_resamples, n_classes, values.shape[1]))
    for b in prange(n_resamples):
        for i in range(n):
            weight = counts[b, i]
            if weight:
                drawn[b, class_of[i]] += weight
                for k in range(values.shape[1]):
                    sums[b, class_of[i], k] += weight * values[i, k]
    return drawn, sums


def paired_difference(base: Sequence[Mapping[str, np.ndarray]],
                      other: Sequence[Mapping[str, np.ndarray]], groups: Mapping[str, str],
                      boot: QueryBootstrap) -> tuple[float, float, float]:
    """``other`` minus ``base`` on the average over directions of a per-query metric, with a
    paired two-level bootstrap interval.

    The statistic of one model and seed is the plain mean over the directions of ``groups`` of
    the mean per-query value; the difference is averaged over the seeds. Pairing: seed ``s`` of
    ``other`` is compared with seed ``s`` of ``base``, query ``i`` with query ``i``. Each
    resample draws the seeds with replacement (first level) and the queries of every group with
    replacement (second level; one draw for all seeds and both models: the queries are the same
    test items), so the interval carries both the test-set and the seed-to-seed variation; with
    one seed it is the query bootstrap alone.

    Args:
        base, other: one mapping per seed (same number), direction -> (N_group,) per-query values
            of the same queries in the same order.
        groups: direction -> its group of queries (the query modality); the directions averaged.
        boot: the resamples (group ``"seeds"`` draws the seeds).

    Returns:
        (difference, interval low, interval high).

    Raises:
        DcinetError: different numbers of seeds, a missing direction, or per-query arrays of
            different lengths.
    """
    if len(base) != len(other) or not base:
        raise DcinetError(f"a paired comparison needs the same seeds on both sides, got "
                          f"{len(base)} and {len(other)} runs")
    if not groups:
        raise DcinetError("a paired comparison needs at least one direction")
    seeds = len(base)
    point = np.empty(seeds)
    per_seed = np.empty((boot.resamples, seeds))
    for s, (b, o) in enumerate(zip(base, other, strict=True)):
        diffs = {}
        for direction in groups:
            if direction not in b or direction not in o or len(b[direction]) != len(o[direction]):
                raise DcinetError(f"direction {direction}: the two runs do not hold the same "
                                  f"queries")
            diffs[direction] = np.asarray(o[direction], np.float64) - np.asarray(b[direction])
        point[s] = np.mean([d.mean() for d in diffs.values()])
        per_seed[:, s] = np.mean([boot.means(groups[d], diffs[d]) for d in groups], axis=0)
    samples = (boot.counts("seeds", seeds) * per_seed).sum(axis=1) / seeds
    lo, hi = boot.interval(samples)
    return float(point.mean()), float(lo), float(hi)
