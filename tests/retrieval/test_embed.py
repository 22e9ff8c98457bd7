"""``embed``: the same features as ``evaluate``, metadata per row, resumable chunks, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import dcinet.retrieval.embed as embed_module
from dcinet.app.cli import main
from dcinet.errors import DcinetError
from dcinet.retrieval.embed import embed_run, load_embeddings, read_manifest
from dcinet.retrieval.evaluate import evaluate_run
from dcinet.retrieval.features import Inference

BATCH_4 = Inference(batch_size=4)


def test_embeddings_equal_the_features_evaluate_ranks(tiny_run, tiny_builtin, tiny_embeddings,
                                                      tmp_path):
    evaluate_run(tiny_run, tiny_builtin, feature="logits", save_features_dir=tmp_path / "eval",
                 inference=BATCH_4)
    manifest = read_manifest(tiny_embeddings)
    assert manifest["feature"] == "logits" and manifest["split"] == "test"
    assert set(manifest["modalities"]) == {"image", "audio", "text"}
    for modality in manifest["modalities"]:
        vectors, metadata = load_embeddings(tiny_embeddings, modality)
        expected = np.load(tmp_path / "eval" / f"{modality}_features.npy")
        assert vectors.dtype == np.float32 and vectors.shape == expected.shape
        assert vectors.shape == (8, 4)  # logits of the 4 classes
        np.testing.assert_array_equal(vectors, expected)  # bit-identical, chunked at 4 rows
        labels = np.load(tmp_path / "eval" / f"{modality}_labels.npy")
        assert [m["label"] for m in metadata] == labels.tolist()
        assert [m["row"] for m in metadata] == list(range(8))
        for m in metadata:
            assert m["modality"] == modality
            assert manifest["classes"][m["label"]] == m["class_name"]
            assert Path(m["path"]).is_file() and f"/{m['class_name']}/" in m["path"]
            if modality == "text":
                assert m["text"] == " ".join(Path(m["path"]).read_text().split())
            else:
                assert m["text"] is None


def test_interrupted_embedding_resumes_where_it_stopped(tiny_run, tiny_builtin, tiny_embeddings,
                                                        tmp_path, monkeypatch):
    real = embed_module.extract_features
    calls = []

    def failing_after_three(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_module, "extract_features", failing_after_three)
    out = tmp_path / "emb"
    with pytest.raises(KeyboardInterrupt):
        embed_run(tiny_run, tiny_builtin, out, "test", chunk_size=4, inference=BATCH_4,
                  progress=False)
    assert len(list((out / "chunks").glob("*.npy"))) == 3  # image 0-3, 4-7, audio 0-3
    with pytest.raises(DcinetError, match="incomplete"):
        read_manifest(out)

    calls.clear()
    monkeypatch.setattr(embed_module, "extract_features", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    embed_run(tiny_run, tiny_builtin, out, "test", chunk_size=4, inference=BATCH_4,
                  progress=False)
    # 6 chunks in all (3 modalities x 2); the 3 finished ones are not recomputed
    assert [s[0].modality for s in calls] == ["audio", "text", "text"]
    assert not (out / "chunks").exists()
    for modality in ("image", "audio", "text"):
        np.testing.assert_array_equal(load_embeddings(out, modality)[0],
                                      load_embeddings(tiny_embeddings, modality)[0])

    calls.clear()  # a complete folder: nothing to do
    embed_run(tiny_run, tiny_builtin, out, "test", chunk_size=4, inference=BATCH_4,
                  progress=False)
    assert calls == []


def test_resume_refuses_other_settings_and_foreign_folders(tiny_run, tiny_builtin, tiny_embeddings,
                                                           tmp_path):
    with pytest.raises(DcinetError, match="feature"):
        embed_run(tiny_run, tiny_builtin, tiny_embeddings, "test", feature="embedding", chunk_size=4,
                  inference=BATCH_4, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DcinetError, match="not an embeddings folder"):
        embed_run(tiny_run, tiny_builtin, foreign, progress=False)
    with pytest.raises(DcinetError, match="no embeddings"):
        read_manifest(tmp_path)


def test_embed_cli_writes_embedding_features_in_whole_batch_chunks(tiny_run, tiny_builtin, tmp_path, capsys):
    out = tmp_path / "emb"
    assert main(["embed", str(tiny_run), "--data", str(tiny_builtin), "--out", str(out),
                 "--feature", "embedding", "--batch-size", "4", "--chunk-size", "5"]) == 0
    manifest = json.loads((out / "embed.json").read_text())
    assert manifest["feature"] == "embedding"
    assert manifest["job"]["chunk_size"] == 8  # rounded up to whole batches
    assert manifest["modalities"]["image"] == {"count": 32, "dim": 512}  # every split; pooled width
    assert "split all; image 32 x 512" in capsys.readouterr().out
    assert main(["embed", str(tiny_run), "--data", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "x")]) == 2
