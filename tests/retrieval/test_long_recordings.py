"""Test-time features of long recordings: the logits averaged over a recording's windows (then
softmax), as for a video's frames, whatever the batch size."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from dcinet.config import load_config
from dcinet.data.decode import SampleDecoder
from dcinet.data.records import Sample
from dcinet.errors import DcinetError
from dcinet.models.factory import TrainedModel, create_model
from dcinet.retrieval.features import Inference, encode_views, extract_features

TINY = ["img_size=32", "resize=36", "layer=3", "text_len=48", "audio_seconds=4.0",
        "audio_hop_seconds=2.0"]


def _trained(num_classes: int, *extra: str) -> TrainedModel:
    torch.manual_seed(0)
    cfg = load_config("cpu-tiny", [*TINY, *extra])
    model = create_model(cfg, num_classes, ["audio"]).eval()
    return TrainedModel(model, cfg, [f"c{i}" for i in range(num_classes)], ["audio"],
                        run_dir=None, weights=None, info={})


def test_features_of_field_recordings_are_the_mean_over_their_windows(birdsong: Path):
    with open(birdsong / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if 10 < float(r["kept_seconds"]) <= 20][:2]
    samples = [Sample("audio", "test", k, r["species"], birdsong / r["file"]) for k, r in enumerate(rows)]
    trained = _trained(len(samples))
    decoder = SampleDecoder(trained.cfg)
    views = [decoder.load_views(s) for s in samples]
    assert all(v.shape[0] > 3 for v in views)  # > 10 s at 4 s every 2 s
    with torch.no_grad():
        logits = [trained.model.encode(v, "audio", feature="logits") for v in views]
        pooled = [trained.model.encode(v, "audio", feature="embedding") for v in views]
    expected = {"softmax": torch.stack([z.mean(0) for z in logits]).softmax(1),
                "logits": torch.stack([z.mean(0) for z in logits]),
                "embedding": torch.stack([z.mean(0) for z in pooled])}
    for feature, batch_size in (("softmax", 1), ("softmax", 64), ("logits", 3), ("embedding", 2)):
        # batch_size: items per batch, and windows per forward pass
        got = extract_features(trained, samples, feature, Inference(batch_size=batch_size))
        np.testing.assert_allclose(got["audio"].features, expected[feature].numpy(), rtol=1e-4,
                                   atol=1e-6)
    whole = _trained(len(samples), "audio_seconds=0", "audio_hop_seconds=null")
    squeezed = extract_features(whole, samples, "logits")["audio"].features
    assert not np.allclose(squeezed, expected["logits"].numpy(), atol=1e-3)  # windows matter


def test_encode_views_of_one_view_is_the_model_feature_and_refuses_bad_input():
    trained = _trained(3, "audio_seconds=0", "audio_hop_seconds=null")
    x = torch.randn(5, 3, 32, 32)
    for feature in ("softmax", "logits", "embedding"):
        with torch.no_grad():
            want = trained.model.encode(x, "audio", feature=feature)
        got = encode_views(trained.model, list(x[:, None]), "audio", feature, Inference(batch_size=2))
        assert torch.equal(got, want) or torch.allclose(got, want, atol=1e-6)
    with pytest.raises(DcinetError, match="feature"):
        encode_views(trained.model, [x], "audio", "probs")
    with pytest.raises(DcinetError, match="at least one view"):
        encode_views(trained.model, [x[:0]], "audio", "logits")
