"""SampleDataset, collate_by_modality and build_train_loader (check first, refuse or skip bad data)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from dcinet.config import Config
from dcinet.data.dataset import (
    SampleDataset,
    build_train_loader,
    collate_by_modality,
    train_modalities,
)
from dcinet.data.decode import SampleDecoder
from dcinet.data.readers import read_folder
from dcinet.errors import DcinetError


def tiny_cfg(**overrides) -> Config:
    values = dict(img_size=16, resize=20, text_len=24, n_fft=128, hop_length=64, batch_per_modality=2,
                  num_workers=0, sampler="random")
    values.update(overrides)
    return Config(**values).validate()


def _item(modality: str, label: int, index: int):
    x = torch.zeros(24, dtype=torch.int64) if modality == "text" else torch.full((3, 16, 16), float(index))
    return x, label, index


def test_collate_splits_modality_blocks_in_canonical_order():
    items = [_item("text", 0, 10), _item("text", 1, 11), _item("image", 2, 0), _item("image", 3, 1)]
    batch = collate_by_modality(items, ["text", "image"])
    assert list(batch["inputs"]) == ["image", "text"]
    assert batch["inputs"]["image"].shape == (2, 3, 16, 16) and batch["inputs"]["image"].dtype == torch.float32
    assert batch["inputs"]["text"].shape == (2, 24) and batch["inputs"]["text"].dtype == torch.int64
    assert batch["labels"]["text"].tolist() == [0, 1] and batch["labels"]["image"].tolist() == [2, 3]
    assert batch["index"]["image"].tolist() == [0, 1] and batch["index"]["text"].tolist() == [10, 11]
    with pytest.raises(ValueError, match="equal"):
        collate_by_modality(items[:3], ["text", "image"])
    with pytest.raises(ValueError, match="image block has dtype torch.int64"):
        collate_by_modality(items, ["image", "text"])  # blocks in the wrong order


def test_dataset_items(folder_tree, tmp_path):
    coll = read_folder(folder_tree)
    dataset = SampleDataset(coll.samples, SampleDecoder(tiny_cfg(), cache_dir=tmp_path))
    x, label, index = dataset[len(dataset) - 1]
    assert len(dataset) == 36 and index == 35 and label == coll.samples[35].label
    assert x.shape == (24,) and x.dtype == torch.int64  # the last sample is a text


def test_train_loader_batches(folder_tree, tmp_path):
    coll = read_folder(folder_tree)
    loader, skipped = build_train_loader(coll, tiny_cfg(), cache_dir=tmp_path)
    assert skipped == [] and len(loader) == 3  # 6 train samples per modality, b = 2
    loader.batch_sampler.set_epoch(0)
    batches = list(loader)
    assert len(batches) == 3
    seen = set()
    for batch in batches:
        assert batch["inputs"]["image"].shape == batch["inputs"]["audio"].shape == (2, 3, 16, 16)
        assert batch["inputs"]["text"].shape == (2, 24)
        for modality in ("image", "audio", "text"):
            for i, label in zip(batch["index"][modality].tolist(), batch["labels"][modality].tolist(), strict=True):
                sample = loader.dataset.samples[i]
                assert (sample.modality, sample.split, sample.label) == (modality, "train", label)
                seen.add(i)
    assert len(seen) == 18  # every train sample once


def test_class_aware_loader_with_a_worker_process(folder_tree, tmp_path):
    cfg = tiny_cfg(sampler="class_aware", samples_per_class=2, num_workers=1)
    loader, _ = build_train_loader(read_folder(folder_tree), cfg, cache_dir=tmp_path)
    batch = next(iter(loader))
    labels = batch["labels"]
    assert labels["image"].tolist() == labels["audio"].tolist() == labels["text"].tolist()


def test_bad_data_is_refused_or_skipped_and_returned(folder_tree, tmp_path):
    (folder_tree / "text/train/wren/0.txt").write_bytes(b"\xff\xfe")
    (folder_tree / "image/test/crow/0.png").write_bytes(b"")  # test split: not checked for training
    coll = read_folder(folder_tree)
    with pytest.raises(DcinetError, match=r"(?s)--skip-bad.*1 problem.*text/train/wren/0\.txt: text is not UTF-8"):
        build_train_loader(coll, tiny_cfg(), cache_dir=tmp_path)
    loader, skipped = build_train_loader(coll, tiny_cfg(), skip_bad=True, cache_dir=tmp_path)
    assert [(p.kind, p.path) for p in skipped] == [("bad_text", folder_tree / "text/train/wren/0.txt")]
    assert len(loader.dataset) == 17
    assert all(s.path != folder_tree / "text/train/wren/0.txt" for s in loader.dataset.samples)


def test_train_modalities(folder_tree, media):
    media.png(folder_tree / "video/train/crow/clip/0.png")
    coll = read_folder(folder_tree)
    assert train_modalities(coll, tiny_cfg()) == ["image", "audio", "text", "video"]
    assert train_modalities(coll, tiny_cfg(modalities=["text", "image"])) == ["image", "text"]
    assert train_modalities(coll, tiny_cfg(modalities=["video", "image"])) == ["image", "video"]
    with pytest.raises(DcinetError, match="'smell' cannot be loaded"):
        train_modalities(coll, tiny_cfg(modalities=["smell"]))
    with pytest.raises(DcinetError, match="no 'audio' samples"):
        train_modalities(read_folder(folder_tree, modalities=["image", "text"]), tiny_cfg(modalities=["audio"]))


def _epochs(loader, epochs: int = 2) -> list[dict]:
    batches = []
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        batches += list(loader)
    return batches


@pytest.mark.parametrize("workers", [0, 1])
def test_decoded_tensors_kept_in_memory_give_the_same_batches(folder_tree, tmp_path, workers):
    coll = read_folder(folder_tree)
    cfg = tiny_cfg(sampler="class_aware", num_workers=workers)
    decoding, _ = build_train_loader(coll, replace(cfg, decoded_cache_mb=0), cache_dir=tmp_path)
    keeping, _ = build_train_loader(coll, cfg, cache_dir=tmp_path)
    assert decoding.dataset.decoded == {} and len(keeping.dataset.decoded) == 18
    expected = _epochs(decoding)
    for sample in coll.samples:
        sample.path.unlink()  # what is kept needs no file any more
    got = _epochs(keeping)
    assert len(got) == len(expected) == 6
    for a, b in zip(got, expected, strict=True):
        for part in ("inputs", "labels", "index"):
            assert all(torch.equal(a[part][m], b[part][m]) for m in ("image", "audio", "text"))


def test_decoded_tensors_kept_only_when_all_fit_and_never_video_frames(folder_tree, media, tmp_path):
    media.png(folder_tree / "video/train/crow/clip/0.png")
    samples = [s for s in read_folder(folder_tree).samples if s.split == "train"]
    decoder = SampleDecoder(tiny_cfg(), cache_dir=tmp_path)
    dataset = SampleDataset(samples, decoder)
    size = sum(decoder.tensor_bytes(s.modality) for s in samples if s.modality != "video")
    assert not dataset.keep_decoded((size - 1) / 2**20) and dataset.decoded == {}
    assert dataset.keep_decoded(size / 2**20)
    assert sorted(dataset.decoded) == [i for i, s in enumerate(samples) if s.modality != "video"]
    assert all(torch.equal(dataset.decoded[i], decoder.load(samples[i])) for i in dataset.decoded)
    assert all(dataset.decoded[i].nbytes == decoder.tensor_bytes(samples[i].modality)
               for i in dataset.decoded)
    assert len(samples) == 19 and samples[-1].modality == "video"
