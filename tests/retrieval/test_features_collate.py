"""Evaluation's inputs: collated in the DataLoader's workers into one tensor in the model's memory
format (pinned by the loader on CUDA), the same features as item-by-item encoding."""

from __future__ import annotations

import torch

from dcinet.config import load_config
from dcinet.data.dataset import SampleDataset
from dcinet.data.decode import SampleDecoder
from dcinet.data.readers import read_configured
from dcinet.models.factory import TrainedModel, create_model
from dcinet.retrieval import features as features_module
from dcinet.retrieval.features import Inference, collate_views, extract_features

TINY = ["img_size=32", "resize=36", "layer=3", "text_len=48"]


def test_collate_views_concatenates_in_the_asked_memory_format():
    items = [(torch.randn(2, 3, 4, 4), 0, 0), (torch.randn(1, 3, 4, 4), 1, 1)]
    stacked, counts = collate_views(items, channels_last=True)
    assert counts == [2, 1] and stacked.shape == (3, 3, 4, 4)
    assert stacked.is_contiguous(memory_format=torch.channels_last) and not stacked.is_contiguous()
    assert torch.equal(stacked, torch.cat([items[0][0], items[1][0]]))
    text, counts = collate_views([(torch.ones(1, 5, dtype=torch.int64), 0, 0)] * 2, True)
    assert text.shape == (2, 5) and counts == [1, 1]  # 2-d ids stay as they are
    assert collate_views(items)[0].is_contiguous()


def test_extract_features_feeds_a_channels_last_model_nhwc_batches(tiny_builtin, monkeypatch):
    torch.manual_seed(0)
    cfg = load_config("cpu-tiny", TINY)  # channels_last: true
    collection = read_configured(tiny_builtin, cfg)
    samples = [s for s in collection.samples if s.split == "test"]
    model = create_model(cfg, collection.num_classes, list(collection.modalities)).eval()
    trained = TrainedModel(model, cfg, collection.classes, list(collection.modalities),
                           run_dir=None, weights=None, info={})
    formats = []
    encode = model.encode

    def recording(x, modality, feature="softmax"):
        formats.append(x.is_contiguous(memory_format=torch.channels_last) if x.dim() == 4 else None)
        return encode(x, modality, feature=feature)

    monkeypatch.setattr(model, "encode", recording)
    got = extract_features(trained, samples, "softmax", Inference(batch_size=4, num_workers=1))
    assert formats and all(f in (True, None) for f in formats) and True in formats
    monkeypatch.undo()
    # the same features as each item encoded alone, in the contiguous format
    decoder = SampleDecoder(cfg)
    dataset = SampleDataset([s for s in samples if s.modality == "image"], decoder, views=True)
    with torch.no_grad():
        alone = torch.cat([model.encode(dataset[i][0].contiguous(), "image")
                           for i in range(len(dataset))])
    assert torch.allclose(torch.from_numpy(got["image"].features), alone, atol=1e-5)
    assert features_module._is_channels_last(model)
    assert not features_module._is_channels_last(model.to(memory_format=torch.contiguous_format))
