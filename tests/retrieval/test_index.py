"""Indexes: FAISS flat search equals brute-force cosine ranking; ivf, ivfpq; memory-mapped loading;
a gallery of either backend ranks as brute force."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from dcinet.app.cli import main
from dcinet.errors import DcinetError
from dcinet.retrieval.backends.faiss import build_faiss
from dcinet.retrieval.embed import load_embeddings
from dcinet.retrieval.gallery import default_nlist, normalized
from dcinet.retrieval.index import NpyRows, build_index, open_gallery


def brute_force(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine (float64 numpy): ``(scores, ids)`` best first."""
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    scores = q.astype(np.float64) @ g.astype(np.float64).T
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, ids, axis=1), ids


def test_normalized_rows_have_unit_norm_and_zero_rows_stay_zero():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(normalized(x), [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]], atol=1e-7)


def test_flat_search_equals_brute_force_cosine_ranking():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(500, 32)).astype(np.float32) * rng.uniform(0.1, 5, (500, 1)).astype(np.float32)
    query = rng.normal(size=(20, 32)).astype(np.float32)
    index = build_faiss(gallery, "flat")
    scores, ids = index.search(normalized(query), 10)
    want_scores, want_ids = brute_force(query, gallery, 10)
    np.testing.assert_array_equal(ids, want_ids)  # gaussian data: no near-ties
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_ivf_probing_every_cell_is_exact_and_few_cells_lose_little():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(16, 24))
    gallery = (centres[rng.integers(0, 16, 4000)] + 0.3 * rng.normal(size=(4000, 24))).astype(np.float32)
    query = gallery[rng.integers(0, 4000, 50)] + 0.05 * rng.normal(size=(50, 24)).astype(np.float32)
    _, want = brute_force(query, gallery, 10)
    index = build_faiss(gallery, "ivf", nlist=32, nprobe=32)
    assert index.nlist == 32 and index.ntotal == 4000
    np.testing.assert_array_equal(index.search(normalized(query), 10)[1], want)
    index.nprobe = 1
    got = index.search(normalized(query), 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
    assert 0.5 < recall <= 1.0


def test_default_nlist_keeps_39_training_vectors_per_cell():
    assert default_nlist(10) == 1
    assert default_nlist(1_000_000) == 4000
    assert all(39 * default_nlist(n) <= n for n in range(39, 20000, 997))


def test_index_of_embeddings_matches_brute_force_per_modality(tiny_embeddings, backend_index):
    loaded = open_gallery(backend_index)
    assert loaded.info["kind"] == "flat" and loaded.info["counts"] == {"image": 8, "audio": 8, "text": 8}
    queries, _ = load_embeddings(tiny_embeddings, "image")
    for modality in loaded.info["counts"]:
        gallery, metadata = load_embeddings(tiny_embeddings, modality)
        assert [loaded.item(modality, row) for row in range(8)] == metadata
        for q in queries:
            hits = loaded.lookup(normalized(q[None])[0], 5, [modality])
            want_scores, _ = brute_force(q[None], np.asarray(gallery), 5)
            # softmax features of a 1-epoch model nearly tie: compare scores, and each id's score
            np.testing.assert_allclose([s for s, _ in hits], want_scores[0], atol=1e-5)
            exact = brute_force(q[None], np.asarray(gallery), 8)
            by_id = dict(zip(exact[1][0].tolist(), exact[0][0].tolist(), strict=True))
            for score, item in hits:
                assert item["modality"] == modality
                assert score == pytest.approx(by_id[item["row"]], abs=1e-5)


def test_index_files_are_memory_mapped_and_record_their_run(tiny_index):
    info = json.loads((tiny_index / "index.json").read_text())
    assert info["feature"] == "logits" and len(info["weights_sha256"]) == 64
    assert info["run_dir"].endswith("run") and info["dim"] == 4  # logits of the 4 classes
    mapped = faiss.read_index(str(tiny_index / "image.faiss"), faiss.IO_FLAG_MMAP)
    assert mapped.ntotal == 8


def test_ivf_index_cli_records_cells_and_nprobe_override(tiny_embeddings, tmp_path, capsys):
    out = tmp_path / "ivf"
    assert main(["index", str(tiny_embeddings), "--out", str(out), "--kind", "ivf",
                 "--nlist", "2", "--nprobe", "1", "--modalities", "image", "text"]) == 0
    assert "ivf index" in capsys.readouterr().out
    loaded = open_gallery(out)
    assert list(loaded.info["counts"]) == ["image", "text"]
    assert loaded.info["ivf"]["image"] == {"nlist": 2, "nprobe": 1}
    gallery, _ = load_embeddings(tiny_embeddings, "image")
    all_cells = loaded.lookup(normalized(gallery[:1])[0], 8, ["image"], nprobe=2)
    assert sorted(it["row"] for _, it in all_cells) == list(range(8))  # every cell probed: all rows


def test_index_refusals(tiny_embeddings, tmp_path):
    with pytest.raises(DcinetError, match="no video embeddings"):
        build_index(tiny_embeddings, tmp_path / "a", modalities=["video"])
    with pytest.raises(DcinetError, match="kind"):
        build_faiss(np.ones((4, 2), np.float32), "hnsw")
    with pytest.raises(DcinetError, match="nlist"):
        build_faiss(np.ones((4, 2), np.float32), "ivf", nlist=5)
    with pytest.raises(DcinetError, match="not a dcinet index"):
        open_gallery(tmp_path)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    with pytest.raises(DcinetError, match="not an index folder"):
        build_index(tiny_embeddings, tmp_path / "b")


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_rows_reads_slices_and_scattered_rows_without_mapping_the_file(tmp_path, version):
    array = np.random.default_rng(0).standard_normal((1000, 24)).astype(np.float32)
    path = tmp_path / "image.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array(fh, array, version=version)
    rows = NpyRows(path)
    assert (len(rows), rows.shape, rows.dtype) == (1000, (1000, 24), np.float32)
    assert np.array_equal(rows[0:0], array[0:0]) and np.array_equal(rows[10:400], array[10:400])
    assert np.array_equal(rows[990:5000], array[990:])  # a slice past the end stops at the end
    scattered = np.array([999, 0, 517, 517, 3])
    assert np.array_equal(rows[scattered], array[scattered])
    assert str(path) not in Path("/proc/self/maps").read_text()  # read, never memory-mapped


def test_npy_rows_names_a_cut_file(tmp_path):
    path = tmp_path / "image.npy"
    np.save(path, np.zeros((10, 4), np.float32))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DcinetError, match="image.npy ends at byte"):
        NpyRows(path)[0:10]
