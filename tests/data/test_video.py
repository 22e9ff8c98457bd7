"""Video as frames: frame listing and choice, SampleDecoder.load / load_views, checking, training batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dcinet.config import Config
from dcinet.data.check import check_collection
from dcinet.data.dataset import build_train_loader
from dcinet.data.decode import SampleDecoder
from dcinet.data.image import load_image
from dcinet.data.problems import DecodeError
from dcinet.data.readers import read_folder
from dcinet.data.records import Collection, Sample
from dcinet.data.video import list_frames, spaced_frames
from dcinet.data.views import pick_view
from dcinet.errors import DcinetError

CFG = Config(img_size=8, resize=10, text_len=16, batch_per_modality=2, num_workers=0).validate()


def write_frame(path: Path, value: int) -> Path:
    """A solid 10 x 10 frame of grey level ``value``, so that frames are told apart by their pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 10, 3), value, dtype=np.uint8)).save(path)
    return path


def write_clip(folder: Path, n: int, start: int = 0) -> list[Path]:
    """``n`` frames named ``frame_<i>.png`` (unpadded numbers), grey levels ``start + 10 * i``."""
    return [write_frame(folder / f"frame_{i}.png", start + 10 * i) for i in range(n)]


def test_list_frames_natural_order_and_single_frame_file(tmp_path):
    frames = write_clip(tmp_path / "clip", 12)
    (tmp_path / "clip" / ".DS_Store").write_bytes(b"x")  # hidden: ignored
    assert list_frames(tmp_path / "clip") == frames  # frame_2 before frame_10
    assert list_frames(frames[3]) == [frames[3]]  # an FG-XMedia list line naming one frame


@pytest.mark.parametrize("make, kind, culprit", [
    (lambda d: d.mkdir(), "bad_video", "clip"),
    (lambda d: (d.parent / "clip.mp4").write_bytes(b"\x00" * 8), "bad_video", "clip.mp4"),
    (lambda d: None, "missing_file", "clip"),
])
def test_list_frames_errors_name_the_clip(tmp_path, make, kind, culprit):
    make(tmp_path / "clip")
    target = tmp_path / culprit
    with pytest.raises(DecodeError) as info:
        list_frames(target)
    assert info.value.kind == kind and info.value.name == str(target) and str(target) in str(info.value)


def test_strict_listing_names_a_stray_file(tmp_path):
    write_clip(tmp_path / "clip", 2)
    (tmp_path / "clip" / "notes.txt").write_text("hi")
    assert len(list_frames(tmp_path / "clip")) == 2
    with pytest.raises(DecodeError, match=r"notes\.txt: not a frame image"):
        list_frames(tmp_path / "clip", strict=True)


def test_spaced_frames_hand_cases():
    assert spaced_frames(10, 4) == [1, 3, 6, 8]  # centres of [0,2.5) [2.5,5) [5,7.5) [7.5,10)
    assert spaced_frames(3, 5) == [0, 1, 2]
    assert spaced_frames(7, 1) == [3]
    with pytest.raises(ValueError):
        spaced_frames(0, 3)


@settings(max_examples=60, deadline=None, database=None)
@given(n=st.integers(1, 500), f=st.integers(1, 64))
def test_spaced_frames_are_increasing_in_range_and_cover_the_clip(n, f):
    positions = spaced_frames(n, f)
    assert len(positions) == min(n, f)
    assert all(0 <= a < b < n for a, b in zip(positions, positions[1:], strict=False)) and positions[-1] < n
    assert positions[0] <= n // (2 * len(positions)) and positions[-1] >= n - 1 - n // (2 * len(positions))


def test_pick_view_is_reproducible_and_varies_with_the_key():
    assert pick_view(9, None) == 4 and pick_view(1, None) == 0 and pick_view(2, None) == 1
    picks = [pick_view(9, (0, epoch, 5)) for epoch in range(40)]
    assert picks == [pick_view(9, (0, epoch, 5)) for epoch in range(40)]
    assert all(0 <= p < 9 for p in picks) and len(set(picks)) >= 5
    # the draw of the frame-choice code it replaced: default_rng([*key, 7]), kept bit for bit
    assert picks == [int(np.random.default_rng([0, e, 5, 7]).integers(9)) for e in range(40)]
    with pytest.raises(ValueError):
        pick_view(0, None)


def test_loader_one_frame_and_all_frames(tmp_path):
    frames = write_clip(tmp_path / "clip", 7)
    loader = SampleDecoder(CFG)
    sample = Sample("video", "test", 0, "crow", tmp_path / "clip", source="list/video/test.txt:3")
    assert torch.equal(loader.load(sample), load_image(frames[3], 8, 10))  # middle frame
    key = (0, 2, 11)
    assert torch.equal(loader.load(sample, view_key=key), load_image(frames[pick_view(7, key)], 8, 10))
    three = SampleDecoder(Config(img_size=8, resize=10, video_frames=3))
    stack = three.load_views(sample)
    assert stack.shape == (3, 3, 8, 8) and stack.dtype == torch.float32
    for got, position in zip(stack, [1, 3, 5], strict=True):
        assert torch.equal(got, load_image(frames[position], 8, 10))
    assert SampleDecoder(Config(img_size=8, resize=10, video_frames=50)).load_views(sample).shape == (7, 3, 8, 8)
    single = Sample("video", "test", 0, "crow", frames[0])
    assert torch.equal(loader.load_views(single), load_image(frames[0], 8, 10)[None])
    image = Sample("image", "test", 0, "crow", frames[0])  # one view, the decoded image
    assert torch.equal(loader.load_views(image), loader.load(image)[None])
    (tmp_path / "clip" / "frame_5.png").write_bytes(b"broken")
    with pytest.raises(DcinetError, match=r"frame_5\.png.*list/video/test\.txt:3"):
        three.load_views(sample)


def test_check_names_empty_clips_unreadable_frames_and_stray_files(tmp_path):
    root = tmp_path / "ds"
    write_clip(root / "video/train/crow/good", 3)
    (root / "video/train/crow/empty").mkdir(parents=True)
    write_clip(root / "video/train/crow/broken", 3)
    (root / "video/train/crow/broken/frame_1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_clip(root / "video/train/crow/stray", 2)
    (root / "video/train/crow/stray/thumbs.db").write_bytes(b"x")
    report = check_collection(read_folder(root))
    found = sorted((p.kind, p.path.relative_to(root).as_posix(), p.message.split(":")[0]) for p in report.problems)
    assert found == [
        ("bad_video", "video/train/crow/broken/frame_1.png", "unreadable frame"),
        ("bad_video", "video/train/crow/empty", "clip folder holds no frame images"),
        ("bad_video", "video/train/crow/stray/thumbs.db", "not a frame image (jpg/jpeg/png) inside a clip folder"),
    ]
    assert len(report.bad_samples) == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_training_batches_draw_a_frame_per_seed_epoch_and_index(tmp_path, workers):
    root = tmp_path / "ds"
    for c, cls in enumerate(("crow", "finch")):
        for k in range(2):
            write_frame(root / f"image/train/{cls}/{k}.png", 200 + 20 * c + k)
            write_clip(root / f"video/train/{cls}/clip{k}", 6, start=c * 100 + k * 3)
    coll = read_folder(root)
    cfg = Config(img_size=8, resize=10, batch_per_modality=2, num_workers=workers, seed=3).validate()
    loader, skipped = build_train_loader(coll, cfg)
    assert skipped == [] and loader.persistent_workers == (workers > 0)
    chosen_per_epoch, iterators = [], set()
    for epoch in (0, 1, 2):
        loader.batch_sampler.set_epoch(epoch)
        batches = iter(loader)
        iterators.add(id(batches))
        chosen = {}
        for batch in batches:  # persistent workers copied the dataset at epoch 0: keys carry the epoch
            for x, i in zip(batch["inputs"]["video"], batch["index"]["video"].tolist(), strict=True):
                sample = loader.dataset.samples[i]
                frames = list_frames(sample.path)
                expected = frames[pick_view(len(frames), (3, epoch, i))]
                assert torch.equal(x, load_image(expected, 8, 10))
                chosen[i] = expected.name
        chosen_per_epoch.append(chosen)
    assert len({tuple(sorted(c.items())) for c in chosen_per_epoch}) > 1  # frames change across epochs
    if workers:
        assert len(iterators) == 1  # the same worker processes served all three epochs


def test_single_frame_samples_from_a_collection(tmp_path):
    frames = write_clip(tmp_path / "video/crow/clip", 2)
    coll = Collection(["crow"], [Sample("video", "train", 0, "crow", f) for f in frames], tmp_path, "fgxmedia")
    assert check_collection(coll).ok
    assert torch.equal(SampleDecoder(CFG).load(coll.samples[1]), load_image(frames[1], 8, 10))
