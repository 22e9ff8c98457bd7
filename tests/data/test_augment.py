"""Training augmentation: what each modality's transform does, its per-draw seeding, and that it
reaches the training batches only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dcinet.config import Config, load_config
from dcinet.data.augment import TrainAugment, augment_sentences, split_sentences
from dcinet.data.dataset import build_train_loader
from dcinet.data.decode import SampleDecoder
from dcinet.data.image import normalize
from dcinet.data.readers import read_collection
from dcinet.data.sampler import MultiModalBatchSampler, TrainKey
from dcinet.data.text import normalize_text

S = 32
AUDIO_MASKS = {"aug_time_masks": 2, "aug_time_mask_max": 0.25, "aug_freq_masks": 1,
               "aug_freq_mask_max": 0.25}
EVERYTHING = {"aug_crop_scale": 0.4, "aug_flip": 0.5, "aug_color_jitter": 0.3, **AUDIO_MASKS,
              "aug_sentence_drop": 0.3, "aug_sentence_shuffle": 0.5}


def augment(**keys) -> TrainAugment:
    return TrainAugment(replace(Config(img_size=S, resize=S), **keys).validate(), S)


def picture(seed: int = 0) -> torch.Tensor:
    return normalize(torch.from_numpy(np.random.default_rng(seed).random((3, S, S), dtype=np.float32)))


def test_sentences_split_at_lines_and_sentence_ends():
    text = "A small bird. It sings!\nthis bird has a red crown\n\nwhat a call? yes"
    assert split_sentences(text) == ["A small bird.", "It sings!", "this bird has a red crown",
                                     "what a call?", "yes"]
    assert split_sentences("Dr.Who 3.5 cm") == ["Dr.Who 3.5 cm"]  # no whitespace after the dots


def test_sentence_drop_and_shuffle():
    text = "one. two. three. four. five."
    rng = np.random.default_rng(0)
    assert normalize_text(augment_sentences(text, rng, 0.0, 0.0)) == normalize_text(text)
    assert augment_sentences("only one sentence here.", rng, 1.0, 1.0) == "only one sentence here."
    for _ in range(20):
        assert len(split_sentences(augment_sentences(text, rng, 1.0, 0.0))) == 1  # one stays
        shuffled = split_sentences(augment_sentences(text, rng, 0.0, 1.0))
        assert sorted(shuffled) == sorted(split_sentences(text))
    orders = {tuple(split_sentences(augment_sentences(text, rng, 0.0, 1.0))) for _ in range(20)}
    kept = [len(split_sentences(augment_sentences(text, rng, 0.5, 0.0))) for _ in range(200)]
    assert len(orders) > 5 and 2.0 < np.mean(kept) < 3.3  # 5 x 0.5 = 2.5 on average


def test_nothing_to_do_is_no_augmentation():
    assert TrainAugment.from_config(Config()) is None
    assert TrainAugment.from_config(load_config("paper")) is None
    assert TrainAugment.from_config(load_config("cpu-tiny")) is None
    assert TrainAugment.from_config(load_config("cpu-pretrained")) is not None
    only_text = TrainAugment.from_config(replace(Config(), aug_sentence_shuffle=0.5))
    assert [only_text.changes(m) for m in ("image", "video", "audio", "text")] == [False, False,
                                                                                False, True]
    x = picture()
    assert only_text(x, "image", (0, 0, 0)) is x


def test_a_flip_alone_mirrors_the_picture():
    x = picture()
    assert torch.allclose(augment(aug_flip=1.0)(x, "image", (0, 0, 0)), x.flip(-1), atol=1e-5)


def test_crop_and_jitter_change_pictures_per_draw_and_repeat_per_key():
    aug = augment(aug_crop_scale=0.3, aug_color_jitter=0.4)
    x = picture()
    a = aug(x, "image", (0, 3, 5))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, aug(x, "image", (0, 3, 5)))
    others = [aug(x, "image", key) for key in ((0, 3, 6), (0, 4, 5), (1, 3, 5))]
    assert all(not torch.allclose(a, b) for b in others)
    assert torch.equal(aug(x, "video", (0, 3, 5)), a)  # video frames are pictures too


def test_spectrogram_masks_fill_whole_rows_and_columns_with_the_mean_level():
    aug = augment(**AUDIO_MASKS)
    grey = torch.rand(S, S)
    x = normalize(grey.expand(3, -1, -1).contiguous())
    seen_time = seen_freq = 0
    for draw in range(30):
        y = aug(x, "audio", (0, 0, draw))
        changed = ~torch.isclose(y, x, atol=1e-5)
        assert torch.equal(changed[0], changed[1]) and torch.equal(changed[0], changed[2])
        columns = changed[0].all(dim=0)  # time frames masked over every frequency
        rows = changed[0].all(dim=1)
        assert columns.sum() <= 2 * int(0.25 * S) and rows.sum() <= int(0.25 * S)
        fill = normalize(torch.full((3, 1, 1), float(grey.mean())))
        assert torch.allclose(y[:, :, columns], fill.expand(3, S, int(columns.sum())), atol=1e-5)
        seen_time += bool(columns.any())
        seen_freq += bool(rows.any())
        kept = ~changed[0]
        assert torch.allclose(y[0][kept], x[0][kept], atol=1e-5)
    assert seen_time > 20 and seen_freq > 15


def test_augmenting_leaves_the_global_random_streams_alone():
    aug = augment(**EVERYTHING)
    before = torch.get_rng_state()
    aug(picture(), "image", (0, 1, 2))
    aug(picture(), "audio", (0, 1, 2))
    assert torch.equal(torch.get_rng_state(), before)


def test_the_sampler_numbers_every_draw_of_an_epoch_once():
    from types import SimpleNamespace

    samples = [SimpleNamespace(modality=m, label=i % 3) for m in ("image", "audio")
               for i in range(5)]
    ranks = [MultiModalBatchSampler(samples, 2, seed=1, class_aware=True, samples_per_class=1,
                                    rank=r, world_size=2) for r in range(2)]
    single = MultiModalBatchSampler(samples, 2, seed=1, class_aware=True, samples_per_class=1)
    steps = list(single)
    assert [[d.index for d in step] for step in steps] == single.steps(0)
    assert all(isinstance(d, TrainKey) for step in steps for d in step)
    numbers = [d.draw for r in ranks for step in r for d in step]
    assert sorted(numbers) == list(range(len(numbers)))  # unique across ranks
    assert len({d.index for step in steps for d in step}) < sum(map(len, steps))  # repeats occur


@pytest.fixture
def aug_cfg(tiny_overrides):
    return load_config("cpu-tiny", [*tiny_overrides, *(f"{k}={v}" for k, v in EVERYTHING.items()),
                                    "sampler=random"])


def _epoch(loader, epoch: int) -> list[dict]:
    loader.batch_sampler.set_epoch(epoch)
    loader.generator.manual_seed(epoch)
    return list(loader)


def test_training_batches_are_augmented_per_draw_and_repeat_exactly(tiny_builtin: Path, aug_cfg,
                                                                    tmp_path):
    collection = read_collection(tiny_builtin)
    loader, _ = build_train_loader(collection, aug_cfg, cache_dir=tmp_path)
    again, _ = build_train_loader(collection, replace(aug_cfg, decoded_cache_mb=0, num_workers=1),
                                  cache_dir=tmp_path)
    first = _epoch(loader, 0)
    assert loader.dataset.decoded  # kept in memory, augmented on top
    decoder = SampleDecoder(aug_cfg, cache_dir=tmp_path)
    samples = loader.dataset.samples
    for batch, other in zip(first, _epoch(again, 0), strict=True):  # cached or not, worker or not
        for m in batch["inputs"]:
            assert torch.equal(batch["inputs"][m], other["inputs"][m]), m
    changed = {m: 0 for m in first[0]["inputs"]}
    for batch in first:
        for m, x in batch["inputs"].items():
            plain = torch.stack([decoder.load(samples[i]) for i in batch["index"][m].tolist()])
            changed[m] += sum(not torch.equal(a, b) for a, b in zip(x, plain, strict=True))
    assert all(n > 0 for n in changed.values()), changed
    second = _epoch(loader, 1)
    assert not torch.equal(first[0]["inputs"]["image"], second[0]["inputs"]["image"])


def test_evaluation_inputs_ignore_the_augmentation(tiny_builtin: Path, aug_cfg, tmp_path,
                                                   monkeypatch):
    from dcinet.models.factory import TrainedModel
    from dcinet.retrieval.features import extract_features

    monkeypatch.setenv("DCINET_CACHE", str(tmp_path))  # extract_features' spectrogram cache
    plain_cfg = load_config("cpu-tiny", ["img_size=64", "resize=72", "text_len=48"])
    collection = read_collection(tiny_builtin)
    test = [s for s in collection.samples if s.split == "test"]
    plain = SampleDecoder(plain_cfg, cache_dir=tmp_path)
    for s in test:
        assert torch.equal(SampleDecoder(aug_cfg, cache_dir=tmp_path).load(s), plain.load(s))

    class Recorder(torch.nn.Module):
        seen: dict = {}

        def encode(self, x, modality, feature="softmax"):
            self.seen.setdefault(modality, []).append(x.clone())
            return x.reshape(len(x), -1)[:, :3].float()

    recorder = Recorder()
    trained = TrainedModel(recorder, aug_cfg, collection.classes, ["image", "audio", "text"],
                           None, None, {})
    extract_features(trained, test)
    for m, batches in recorder.seen.items():
        expected = torch.stack([plain.load(s) for s in test if s.modality == m])
        assert torch.equal(torch.cat(batches), expected), m
