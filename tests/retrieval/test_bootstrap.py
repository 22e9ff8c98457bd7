"""The query bootstrap: its resamples, means, intervals and the paired two-level comparison,
each against a loop over explicit resamples."""

from __future__ import annotations

import numpy as np
import pytest

from dcinet.errors import DcinetError
from dcinet.retrieval.bootstrap import QueryBootstrap, paired_difference


def _drawn(counts_row: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The resample a count row stands for, written out: item i repeated counts_row[i] times."""
    return np.repeat(values, counts_row.astype(int), axis=0)


def test_counts_are_resamples_of_size_n_seeded_per_group():
    boot = QueryBootstrap(resamples=200, seed=3)
    counts = boot.counts("image", 50)
    assert counts.shape == (200, 50) and (counts.sum(axis=1) == 50).all()
    assert (counts >= 0).all() and np.array_equal(counts, counts.round())
    # the same for another instance with the same seed; another group or seed draws otherwise
    assert np.array_equal(QueryBootstrap(200, seed=3).counts("image", 50), counts)
    assert not np.array_equal(boot.counts("text", 50), counts)
    assert not np.array_equal(QueryBootstrap(200, seed=4).counts("image", 50), counts)
    # each item is drawn once per resample on average
    assert counts.mean() == pytest.approx(1.0)


def test_means_equal_the_means_of_the_written_out_resamples():
    rng = np.random.default_rng(0)
    values = rng.random((40, 3))
    boot = QueryBootstrap(resamples=30, seed=1)
    means = boot.means("audio", values)
    counts = boot.counts("audio", 40)
    expected = np.stack([_drawn(row, values).mean(axis=0) for row in counts])
    np.testing.assert_allclose(means, expected, rtol=0, atol=1e-12)
    assert boot.means("audio", values[:, 0]).shape == (30,)


def test_class_means_leave_out_resamples_without_the_class():
    rng = np.random.default_rng(1)
    values, labels = rng.random(12), np.array([5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 9, 9])
    boot = QueryBootstrap(resamples=300, seed=2)
    classes, means = boot.class_means("text", values, labels)
    assert classes.tolist() == [5, 9] and means.shape == (300, 2)
    counts = boot.counts("text", 12)
    for b in range(300):
        for c, cls in enumerate(classes):
            mine = labels == cls
            inside = _drawn(counts[b][mine], values[mine])
            if len(inside):
                assert means[b, c] == pytest.approx(inside.mean(), abs=1e-12)
            else:
                assert np.isnan(means[b, c])
    assert np.isnan(means[:, 1]).any()  # 2 of 12 items: some resamples miss class 9
    lo, hi = boot.interval(means)
    assert np.isfinite(lo).all() and (lo <= hi).all()


def test_interval_is_the_percentile_interval():
    boot = QueryBootstrap(resamples=1000, seed=0, level=0.9)
    samples = np.arange(1001, dtype=float)[:1000]  # 0 .. 999
    lo, hi = boot.interval(samples)
    assert lo == pytest.approx(np.percentile(samples, 5)) and hi == pytest.approx(
        np.percentile(samples, 95))
    lo, hi = boot.interval(np.full((1000, 2), 0.25))
    assert lo.tolist() == hi.tolist() == [0.25, 0.25]


def test_interval_width_of_a_proportion():
    # 400 queries, 30% hits: the 95% interval is about +- 1.96 * sqrt(p (1 - p) / n) = +- 0.045
    values = (np.arange(400) % 10 < 3).astype(float)
    boot = QueryBootstrap(resamples=2000, seed=5)
    lo, hi = boot.interval(boot.means("image", values))
    assert lo < 0.3 < hi
    assert hi - lo == pytest.approx(2 * 1.96 * np.sqrt(0.3 * 0.7 / 400), rel=0.1)


def test_user_errors():
    with pytest.raises(DcinetError, match="resamples"):
        QueryBootstrap(resamples=0)
    with pytest.raises(DcinetError, match="level"):
        QueryBootstrap(level=1.0)


# ---- the paired comparison ----------------------------------------------------------------

GROUPS = {"i2t": "image", "t2i": "text"}


def _run(rng, offset=0.0):
    return {"i2t": np.clip(rng.random(30) + offset, 0, 1), "t2i": np.clip(rng.random(20) + offset,
                                                                           0, 1)}


def test_a_model_against_itself_differs_by_nothing():
    rng = np.random.default_rng(0)
    runs = [_run(rng), _run(rng)]
    assert paired_difference(runs, runs, GROUPS, QueryBootstrap(200)) == (0.0, 0.0, 0.0)


def test_a_constant_shift_is_found_exactly():
    base = {"i2t": np.full(30, 0.2), "t2i": np.full(20, 0.4)}
    other = {"i2t": np.full(30, 0.3), "t2i": np.full(20, 0.5)}
    diff, lo, hi = paired_difference([base], [other], GROUPS, QueryBootstrap(200))
    assert diff == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)


def test_one_seed_is_the_query_bootstrap_of_the_differences():
    rng = np.random.default_rng(1)
    base, other = _run(rng), _run(rng, 0.05)
    boot = QueryBootstrap(500, seed=7)
    diff, lo, hi = paired_difference([base], [other], GROUPS, boot)
    counts = {g: boot.counts(g, len(base[d])) for d, g in GROUPS.items()}
    samples = [np.mean([(_drawn(counts[g][b], other[d] - base[d])).mean()
                        for d, g in GROUPS.items()]) for b in range(500)]
    assert diff == pytest.approx(np.mean([(other[d] - base[d]).mean() for d in GROUPS]))
    assert (lo, hi) == pytest.approx(tuple(np.percentile(samples, [2.5, 97.5])), abs=1e-12)


def test_seeds_are_a_second_level():
    # the same per-query differences on every seed but different offsets per seed: resampling
    # the seeds widens the interval beyond the queries' own spread
    rng = np.random.default_rng(2)
    base = _run(rng)
    noise = {d: rng.normal(0, 0.01, len(v)) for d, v in base.items()}
    others = [{d: base[d] + noise[d] + shift for d in base} for shift in (0.0, 0.1, 0.2)]
    boot = QueryBootstrap(1000, seed=0)
    diff, lo, hi = paired_difference([base] * 3, others, GROUPS, boot)
    _, lo1, hi1 = paired_difference([base], others[1:2], GROUPS, boot)
    assert diff == pytest.approx(0.1 + np.mean([noise[d].mean() for d in GROUPS]))
    assert hi - lo > 10 * (hi1 - lo1)
    assert lo < 0.1 < hi


def test_paired_comparison_refuses_unpaired_runs():
    rng = np.random.default_rng(3)
    a, b = _run(rng), _run(rng)
    with pytest.raises(DcinetError, match="same seeds"):
        paired_difference([a], [a, b], GROUPS, QueryBootstrap(10))
    with pytest.raises(DcinetError, match="same queries"):
        paired_difference([a], [{"i2t": a["i2t"][:5], "t2i": a["t2i"]}], GROUPS,
                          QueryBootstrap(10))
