"""The naive reference itself, on rankings small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from dcinet.retrieval.naive import average_precision_naive, ranked_average_precision


@pytest.mark.parametrize(("ranking", "expected"), [
    ([True], 1.0),
    ([False, True], 1 / 2),
    ([True, False, True], (1 + 2 / 3) / 2),
    ([False, False, False, True, True], (1 / 4 + 2 / 5) / 2),
    ([False, False], 0.0),
    ([], 0.0),
])
def test_ranked_average_precision(ranking, expected):
    labels = np.where(ranking, "wren", "finch")  # the query is a wren
    assert ranked_average_precision(np.arange(len(ranking)), labels, "wren") == pytest.approx(
        expected, abs=1e-15)
    # the order decides, not the gallery layout
    reverse = np.arange(len(ranking))[::-1]
    assert ranked_average_precision(reverse, labels[::-1], "wren") == pytest.approx(
        expected, abs=1e-15)


def test_ranks_by_descending_cosine_with_ties_by_index():
    query = np.array([[1.0, 0.0]])
    # scores 0.6, 1.0, 1.0, 0.0 -> ranking 1, 2, 0, 3 (the tie keeps index order)
    gallery = np.array([[3.0, 4.0], [2.0, 0.0], [5.0, 0.0], [0.0, 1.0]])
    ap = average_precision_naive(query, [1], gallery, np.array([1, 0, 1, 0]))
    assert ap[0] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-15)
