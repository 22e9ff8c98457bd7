"""The text processing module (eq. 1)."""

from __future__ import annotations

import pytest
import torch

from dcinet.errors import DcinetError
from dcinet.models.text import TextToImage


@pytest.mark.parametrize("embedding", ["onehot", "embedding"])
@pytest.mark.parametrize("text_len,img_size", [(20, 32), (32, 32), (48, 40)])
def test_output_has_the_image_shape_and_gradients(embedding, text_len, img_size):
    torch.manual_seed(0)
    module = TextToImage(vocab_size=30, text_len=text_len, img_size=img_size, channels=8,
                         embedding=embedding)
    ids = torch.randint(0, 30, (3, text_len))
    out = module(ids)
    assert out.shape == (3, 3, img_size, img_size) and out.dtype == torch.float32
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_onehot_columns_and_padding_are_zero():
    module = TextToImage(vocab_size=6, text_len=4, img_size=8, channels=4)
    ids = torch.tensor([[3, 1, 0, 0]])
    onehot = module.encode_ids(ids)
    expected = torch.zeros(1, 6, 4)
    expected[0, 3, 0] = expected[0, 1, 1] = 1.0
    assert torch.equal(onehot, expected)


def test_embedding_padding_rows_are_zero():
    module = TextToImage(vocab_size=6, text_len=3, img_size=8, channels=4, embedding="embedding")
    emb = module.encode_ids(torch.tensor([[2, 0, 0]]))
    assert emb.shape == (1, 4, 3)
    assert torch.equal(emb[0, :, 1:], torch.zeros(4, 2)) and emb[0, :, 0].abs().sum() > 0


def test_first_conv_on_onehot_equals_a_naive_weight_lookup():
    torch.manual_seed(1)
    module = TextToImage(vocab_size=10, text_len=6, img_size=8, channels=5)
    ids = torch.tensor([[4, 7, 0, 2, 9, 0]])
    conv = module.conv1d_1(module.encode_ids(ids))[0]  # (channels, L)
    w, b = module.conv1d_1.weight, module.conv1d_1.bias  # (5, 10, 3), (5,)
    for t in range(6):
        naive = b.clone()
        for tap in range(3):
            pos = t + tap - 1
            if 0 <= pos < 6 and ids[0, pos] != 0:  # zero padding at the ends; pad ids are zeros
                naive = naive + w[:, ids[0, pos], tap]
        assert torch.allclose(conv[:, t], naive, atol=1e-6), t


def test_bad_inputs_are_rejected():
    module = TextToImage(vocab_size=6, text_len=5, img_size=8)
    with pytest.raises(DcinetError, match="text_len"):
        module(torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(DcinetError, match="text_embedding"):
        TextToImage(vocab_size=6, text_len=5, img_size=8, embedding="bag")
