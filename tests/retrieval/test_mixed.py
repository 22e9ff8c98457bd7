"""The softmax beside the embedding: its cosine is the stated mix, it keeps the softmax's order
and breaks its ties by the embedding; ``bench/search_feature.py`` runs end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dcinet.retrieval.mixed import candidate_features, mixed, softmax_rows, unit_rows
from dcinet.retrieval.scores import cosine_scores

RNG = np.random.default_rng(3)


def test_the_cosine_of_the_mix_is_the_weighted_mean_of_the_two_cosines():
    s, e = softmax_rows(RNG.normal(size=(6, 5)) * 4), RNG.normal(size=(6, 9))
    for w in (0.1, 0.5, 2.0):
        got = np.asarray(cosine_scores(mixed(s, e, w), mixed(s, e, w)))
        want = (unit_rows(s) @ unit_rows(s).T + w**2 * unit_rows(e) @ unit_rows(e).T) / (1 + w**2)
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_saturated_softmax_ties_are_ordered_by_the_embedding():
    s = softmax_rows(np.array([[40.0, 0, 0]] * 4 + [[0, 40.0, 0]]))  # four identical one-hots
    e = np.array([[1.0, 0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0], [1.0, 0.0]])
    scores = np.asarray(cosine_scores(mixed(s, e, 0.1)[:1], mixed(s, e, 0.1)))[0]
    assert np.asarray(cosine_scores(s[:1], s))[0][:4] == pytest.approx([1, 1, 1, 1])
    assert list(np.argsort(-scores)) == [0, 1, 2, 3, 4]  # ties by the embedding, then class
    assert len(set(np.round(scores[:4], 4))) == 4


def test_candidate_features():
    e, logits = RNG.normal(size=(3, 7)), RNG.normal(size=(3, 4))
    found = candidate_features(e, logits, (0.1, 1.0))
    assert list(found) == ["embedding", "logits", "softmax", "softmax+0.1emb", "softmax+1.0emb"]
    np.testing.assert_allclose(found["softmax"].sum(1), 1, rtol=1e-6)
    assert found["softmax+1.0emb"].shape == (3, 11) and found["softmax+1.0emb"].dtype == np.float32


def test_the_search_feature_bench_runs(tmp_path: Path):
    path = Path(__file__).resolve().parents[2] / "bench" / "search_feature.py"
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # as python bench/x.py
    spec = importlib.util.spec_from_file_location("dcinet_bench_search_feature", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    args = bench.parse_args([str(tmp_path / "out"), "--seeds", "1", "--classes", "4",
                             "--per-class", "8", "--json", str(tmp_path / "r.json"), "epochs=1",
                             "img_size=32", "resize=36", "layer=3", "text_len=48",
                             "batch_per_modality=4", "samples_per_class=2"])
    assert bench.run(args) == 0
    table = json.loads((tmp_path / "r.json").read_text())["table"]
    assert set(table) == {"embedding", "logits", "softmax",
                          *(f"softmax+{w}emb" for w in bench.MIX_WEIGHTS)}
    assert all(0 <= v[0] <= 1 for row in table.values() for v in row.values())


def test_encode_views_mixes_the_view_averaged_softmax_and_embedding():
    """``softmax+embedding`` of items with several views (a long recording's windows) is the mix
    of the two features ``encode_views`` gives alone: one pass, the same averaging."""
    import torch

    from dcinet.config import load_config
    from dcinet.models.factory import create_model
    from dcinet.retrieval.features import encode_views
    from dcinet.retrieval.mixed import MIX_WEIGHT

    cfg = load_config("cpu-tiny", ["img_size=32", "resize=36", "layer=3", "text_len=48"])
    model = create_model(cfg, 4, ["image", "audio"]).eval()
    views = [torch.randn(1, 3, 32, 32), torch.randn(3, 3, 32, 32), torch.randn(2, 3, 32, 32)]
    both = encode_views(model, views, "audio", "softmax+embedding")
    alone = [encode_views(model, views, "audio", f).numpy() for f in ("softmax", "embedding")]
    np.testing.assert_allclose(both.numpy(), mixed(*alone, MIX_WEIGHT), atol=1e-6)
    assert both.shape == (3, 4 + alone[1].shape[1])
