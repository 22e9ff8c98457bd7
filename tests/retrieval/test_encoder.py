"""``dcinet.load(RUN)``: encode_image / encode_audio / encode_text give, for a file, the row that
``embed`` writes for it (L2-normalised), whatever form the input takes; Searcher(model=) reuses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import dcinet
from dcinet.errors import DcinetError
from dcinet.retrieval.embed import load_embeddings

ATOL = 1e-6  # float32: one item alone against a row of a batch of 4 (kernels may round apart)


@pytest.fixture(scope="module")
def model(tiny_run: Path):
    return dcinet.load(tiny_run)


def _rows(emb: Path, modality: str) -> tuple[np.ndarray, list[dict]]:
    vectors, metadata = load_embeddings(emb, modality)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), metadata


def test_files_encode_to_their_embed_rows(model, tiny_embeddings):
    for modality, encode in (("image", model.encode_image), ("audio", model.encode_audio),
                             ("text", model.encode_text_files)):
        rows, metadata = _rows(tiny_embeddings, modality)
        out = encode([m["path"] for m in metadata[:5]])
        assert out.dtype == torch.float32 and out.shape == (5, rows.shape[1])
        np.testing.assert_allclose(out.norm(dim=1).numpy(), 1, atol=1e-6)
        np.testing.assert_allclose(out.numpy(), rows[:5], atol=ATOL)


def test_every_input_form_gives_the_same_vector(model, tiny_embeddings):
    rows, metadata = _rows(tiny_embeddings, "image")
    path = Path(metadata[2]["path"])
    pixels = torch.from_numpy(np.array(Image.open(path).convert("RGB")))
    forms = [str(path), path, Image.open(path), pixels, pixels.permute(2, 0, 1)]
    for form in forms:
        np.testing.assert_allclose(model.encode_image(form)[0].numpy(), rows[2], atol=ATOL)
    ready = model.decoder.decode(path, "image")  # a model-ready (3, S, S) float tensor
    assert torch.equal(model.encode_image(ready), model.encode_image(path))
    batch = model.encode_image(ready[None].repeat(2, 1, 1, 1))  # (N, 3, S, S): N images
    assert batch.shape[0] == 2
    np.testing.assert_allclose(batch[1].numpy(), model.encode_image(path)[0].numpy(), atol=ATOL)

    rows, metadata = _rows(tiny_embeddings, "audio")
    wave, rate = sf.read(metadata[1]["path"], dtype="float32")
    np.testing.assert_allclose(model.encode_audio((wave, rate))[0].numpy(), rows[1], atol=ATOL)
    np.testing.assert_allclose(model.encode_audio([(torch.from_numpy(wave), rate)])[0].numpy(),
                               rows[1], atol=ATOL)

    rows, metadata = _rows(tiny_embeddings, "text")
    np.testing.assert_allclose(model.encode_text(metadata[3]["text"])[0].numpy(), rows[3],
                               atol=ATOL)


def test_a_string_is_always_a_text(model, tiny_embeddings):
    _, metadata = _rows(tiny_embeddings, "text")
    path = metadata[0]["path"]
    as_text = model.encode_text(path)  # the path's characters, as documented
    from_file = model.encode_text_files(path)
    assert not torch.allclose(as_text, from_file)


def test_a_searcher_shares_the_loaded_model(model, tiny_index, tiny_embeddings, tiny_run):
    searcher = dcinet.Searcher(tiny_index, model=model)
    assert searcher.encoder is model
    _, metadata = _rows(tiny_embeddings, "image")
    vector = model.encode_image(metadata[4]["path"])[0]
    hits = searcher.search_vector(vector, k=3, target="image")
    assert hits[0].path == metadata[4]["path"] and hits[0].score == pytest.approx(1, abs=1e-5)
    other = dcinet.load(tiny_run, feature="embedding")
    with pytest.raises(DcinetError, match="gives embedding vectors but .* holds logits vectors"):
        dcinet.Searcher(tiny_index, model=other)


@pytest.mark.parametrize("call, message", [
    (lambda m: m.encode_text(""), "a text is empty"),
    (lambda m: m.encode_text([b"bytes"]), "takes strings"),
    (lambda m: m.encode_image([]), "no inputs given"),
    (lambda m: m.encode_image(torch.zeros(3, 5, 5)), "must be uint8 pixels"),
    (lambda m: m.encode_image("/no/such.jpg"), "image file not found"),
    (lambda m: m.encode_audio((np.zeros(100), 0)), "positive integer sample rate"),
    (lambda m: m.encode_audio((np.zeros((2, 2, 2)), 8000)), r"\(T,\) or \(T, C\)"),
    (lambda m: m.encode_image(3.5), "expected str / Path"),
])
def test_bad_inputs_are_one_line_errors(model, call, message):
    with pytest.raises(DcinetError, match=message):
        call(model)


def test_load_refuses_softmax_and_missing_runs(tiny_run, tmp_path):
    with pytest.raises(DcinetError, match="softmax is evaluate's"):
        dcinet.load(tiny_run, feature="softmax")
    with pytest.raises(DcinetError, match="no such run"):
        dcinet.load(tmp_path / "none")
