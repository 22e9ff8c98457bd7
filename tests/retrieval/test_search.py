"""``Searcher``: queries are embedded as the gallery was; results equal a brute-force ranking on
either backend; CLI output equals the Python API; errors are user errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dcinet.app.cli import main
from dcinet.errors import DcinetError
from dcinet.retrieval.embed import load_embeddings
from dcinet.retrieval.search import MAX_K, Searcher


@pytest.fixture(scope="module")
def searcher(backend_index: Path) -> Searcher:
    return Searcher(backend_index)


@pytest.mark.parametrize("modality", ["image", "audio", "text"])
def test_a_gallery_file_as_query_embeds_to_its_gallery_row(searcher, tiny_embeddings, modality):
    gallery, metadata = load_embeddings(tiny_embeddings, modality)
    for row in (0, 5):
        meta = metadata[row]
        query = meta["text"] if modality == "text" else Path(meta["path"]).read_bytes()
        vector = searcher.embed_query(query, modality)
        # one query alone against a row of a batch of 4: float32 kernels may round differently,
        # so the unit vectors (what the index compares) agree to float32 precision, not bits
        np.testing.assert_allclose(vector / np.linalg.norm(vector),
                                   gallery[row] / np.linalg.norm(gallery[row]), atol=1e-6)
        hits = searcher.search(query, modality, k=8, target=modality)
        mine = next(h for h in hits if h.row == row)
        assert mine.score == pytest.approx(1.0, abs=1e-5) and mine.score >= hits[0].score - 1e-5


def test_all_modalities_merge_by_score_as_brute_force(searcher, tiny_embeddings):
    query = Path(load_embeddings(tiny_embeddings, "image")[1][3]["path"])
    hits = searcher.search_image(query, k=24)
    vector = searcher.embed_query(query.read_bytes(), "image")
    unit = vector / np.linalg.norm(vector)
    scores = {}
    for modality in ("image", "audio", "text"):
        gallery = np.asarray(load_embeddings(tiny_embeddings, modality)[0], dtype=np.float64)
        for row, s in enumerate(gallery @ unit / np.linalg.norm(gallery, axis=1)):
            scores[modality, row] = s
    assert [h.rank for h in hits] == list(range(1, 25))
    assert {(h.modality, h.row) for h in hits} == set(scores)  # k = whole gallery
    got = [h.score for h in hits]
    assert got == sorted(got, reverse=True)
    for h in hits:
        assert h.score == pytest.approx(scores[h.modality, h.row], abs=1e-5)
        assert h.class_name == searcher.trained.classes[h.label]
    top3 = searcher.search_image(query, k=3)
    assert [(h.modality, h.row) for h in top3] == [(h.modality, h.row) for h in hits[:3]]
    assert {h.modality for h in searcher.search_text("a crimson bar", k=5, target="audio")} == {"audio"}


def test_a_class_filter_ranks_that_class_alone_as_brute_force(searcher, tiny_embeddings):
    text = load_embeddings(tiny_embeddings, "text")[1][1]["text"]
    vector = searcher.embed_query(text, "text").astype(np.float64)
    name = load_embeddings(tiny_embeddings, "audio")[1][0]["class_name"]
    want = {}
    for modality in ("image", "audio", "text"):
        gallery, metadata = load_embeddings(tiny_embeddings, modality)
        cosine = np.asarray(gallery, np.float64) @ vector
        cosine /= np.linalg.norm(gallery, axis=1) * np.linalg.norm(vector)
        want |= {(modality, m["row"]): cosine[m["row"]] for m in metadata
                 if m["class_name"] == name}
    hits = searcher.search_text(text, k=24, class_name=name)
    assert 0 < len(hits) < 24 and {(h.modality, h.row) for h in hits} == set(want)
    assert all(h.class_name == name and h.id == f"{h.modality}/{h.row}" for h in hits)
    for h in hits:
        assert h.score == pytest.approx(want[h.modality, h.row], abs=1e-5)
    audio = searcher.search_text(text, k=2, target="audio", class_name=name)
    assert [(h.modality, h.row) for h in audio] == [(h.modality, h.row) for h in hits
                                                    if h.modality == "audio"][:2]


def test_search_cli_json_equals_the_python_api(searcher, backend_index, tiny_embeddings, capsys):
    path = load_embeddings(tiny_embeddings, "audio")[1][2]["path"]
    name = load_embeddings(tiny_embeddings, "audio")[1][2]["class_name"]
    assert main(["search", str(backend_index), "--audio", path, "-k", "6", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["query"]["modality"] == "audio"
    assert printed["results"] == [h.to_dict() for h in searcher.search_audio(path, k=6)]
    assert main(["search", str(backend_index), "--text", "olive warbler", "-k", "2",
                 "--modality", "text"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["rank", "score", "id", "class", "source"]
    assert len(table) == 3 and table[1].split()[0] == "1" and '"' in table[1]
    assert table[1].split()[2].startswith("text/")
    assert main(["search", str(backend_index), "--text", "warbler", "--class", name]) == 0
    assert {line.split()[3] for line in capsys.readouterr().out.splitlines()[1:]} == {name}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"query": "   ", "modality": "text"}, "text query is empty"),
    ({"query": b"not an image", "modality": "image"}, "cannot decode image"),
    ({"query": b"RIFF....WAVEjunk", "modality": "audio"}, "cannot decode audio"),
    ({"query": b"", "modality": "audio"}, "empty"),
    ({"query": "/no/such/file.png", "modality": "image"}, "not found"),
    ({"query": "x", "modality": "video"}, "query modality"),
    ({"query": "x", "modality": "text", "k": 0}, "k must be"),
    ({"query": "x", "modality": "text", "k": MAX_K + 1}, "k must be"),
    ({"query": "x", "modality": "text", "k": 2.0}, "k must be"),
    ({"query": "x", "modality": "text", "target": "video"}, "target modality"),
    ({"query": "x", "modality": "text", "class_name": "no_such_bird"}, "no class 'no_such_bird'"),
])
def test_bad_queries_are_user_errors(searcher, kwargs, message):
    with pytest.raises(DcinetError, match=message):
        searcher.search(**kwargs)


def test_an_index_refuses_a_model_with_other_weights(tiny_index, tiny_run, tmp_path, capsys):
    copy = tmp_path / "index"
    shutil.copytree(tiny_index, copy)
    info = json.loads((copy / "index.json").read_text())
    info["weights_sha256"] = "0" * 64
    (copy / "index.json").write_text(json.dumps(info))
    with pytest.raises(DcinetError, match="weights differ"):
        Searcher(copy, run=tiny_run)
    assert main(["search", str(copy), "--text", "warbler"]) == 2
    assert "error: " in capsys.readouterr().err
