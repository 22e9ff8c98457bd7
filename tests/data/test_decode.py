"""SampleDecoder: one sample -> the tensor of its modality, with the config's sizes."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from dcinet.config import Config
from dcinet.data.audio import load_audio
from dcinet.data.decode import SampleDecoder
from dcinet.data.image import load_image
from dcinet.data.records import Sample
from dcinet.data.text import encode_text
from dcinet.errors import DcinetError

CFG = Config(img_size=20, resize=24, text_len=32, n_fft=128, hop_length=32)


def test_each_modality_uses_the_config_sizes(folder_tree, tmp_path):
    loader = SampleDecoder(CFG, cache_dir=tmp_path / "cache")
    image = folder_tree / "image/train/crow/0.png"
    audio = folder_tree / "audio/train/crow/0.wav"
    text = folder_tree / "text/train/crow/0.txt"
    x = loader.load(Sample("image", "train", 0, "crow", image))
    assert torch.equal(x, load_image(image, 20, 24))
    y = loader.load(Sample("audio", "train", 0, "crow", audio))
    assert torch.equal(y, load_audio(audio, 20, 16000, 128, 32, cache_dir=tmp_path / "other"))
    z = loader.load(Sample("text", "train", 0, "crow", text))
    assert z.dtype == torch.int64 and torch.equal(z, encode_text(text.read_text(), 32))
    assert list((tmp_path / "cache" / "spectrograms").glob("*.npy"))


def test_inline_text_and_unknown_modality(tmp_path):
    loader = SampleDecoder(CFG, cache_dir=tmp_path)
    inline = loader.load(Sample("text", "test", 0, "crow", path=None, text="A red Crown"))
    assert torch.equal(inline, encode_text("a red crown", 32))
    with pytest.raises(DcinetError, match="unknown modality 'smell'"):
        loader.load(Sample("smell", "train", 0, "crow", tmp_path / "x"))


def test_decode_error_names_file_and_list_line(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    sample = Sample("image", "train", 0, "crow", bad, source="list/image/train.txt:7")
    with pytest.raises(DcinetError, match=r"bad\.png.*list/image/train\.txt:7"):
        SampleDecoder(CFG, cache_dir=tmp_path).load(sample)


def test_loader_is_picklable_for_worker_processes(tmp_path):
    loader = pickle.loads(pickle.dumps(SampleDecoder(CFG, cache_dir=tmp_path)))
    assert (loader.img_size, loader.text_len, loader.cache_dir) == (20, 32, Path(tmp_path))
