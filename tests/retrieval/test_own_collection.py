"""A practitioner's own collection after training: an unlabelled nested folder, a folder of one
modality holding a species the run never saw, appended to an index of labelled data; search shows
each result's file, class when known, and text; evaluate ranks unseen classes by the embedding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dcinet.app.cli import main
from dcinet.errors import DcinetError
from dcinet.retrieval.embed import embed_run, embed_samples, gallery_samples, load_embeddings
from dcinet.retrieval.evaluate import evaluate_run
from dcinet.retrieval.features import Inference
from dcinet.retrieval.index import append_index, build_index
from dcinet.retrieval.search import Searcher

BATCH_4 = Inference(batch_size=4)


def _test_files(builtin: Path, modality: str) -> list[Path]:
    return sorted((builtin / modality / "test").rglob("*.*"))


@pytest.fixture(scope="module")
def unlabelled(tiny_builtin: Path, tmp_path_factory) -> Path:
    """A user's folder: the built-in test files of two modalities under dated folders, renamed,
    no labels (and no extension on one recording: it is sniffed)."""
    root = tmp_path_factory.mktemp("mine") / "field-trips"
    for month in ("2024-05", "2024-06"):
        (root / month).mkdir(parents=True)
    for i, path in enumerate(_test_files(tiny_builtin, "image")[:6]):
        shutil.copy(path, root / f"2024-0{i % 2 + 5}" / f"IMG_{i:04d}{path.suffix}")
    for i, path in enumerate(_test_files(tiny_builtin, "audio")[:3]):
        shutil.copy(path, root / f"2024-05/rec{i}")
    return root


@pytest.fixture(scope="module")
def new_species(tiny_builtin: Path, tmp_path_factory) -> Path:
    """The dataset layout, image only, one class the run never saw."""
    root = tmp_path_factory.mktemp("newcls") / "data"
    folder = root / "image" / "test" / "Never_Seen_Warbler"
    folder.mkdir(parents=True)
    for i, path in enumerate(_test_files(tiny_builtin, "image")[:4]):
        shutil.copy(path, folder / f"{i}{path.suffix}")
    return root


def test_an_unlabelled_folder_is_embedded_indexed_and_searched(tiny_run, unlabelled, tmp_path,
                                                              capsys):
    emb = tmp_path / "emb"
    manifest = embed_run(tiny_run, unlabelled, emb, inference=BATCH_4, progress=False)
    assert manifest["format"] == "files" and manifest["classes"] == []
    assert manifest["feature"] == "logits"
    assert {m: v["count"] for m, v in manifest["modalities"].items()} == {"image": 6, "audio": 3}
    _, metadata = load_embeddings(emb, "audio")
    assert [Path(m["path"]).name for m in metadata] == ["rec0", "rec1", "rec2"]
    assert all(m["label"] is None and m["class_name"] is None for m in metadata)
    build_index(emb, tmp_path / "index")
    query = unlabelled / "2024-05" / "IMG_0002.png"
    hits = Searcher(tmp_path / "index").search(query, "image", k=3, target="image")
    assert hits[0].path == str(query.resolve()) and hits[0].score == pytest.approx(1, abs=1e-5)
    assert hits[0].class_name is None and hits[0].label is None
    assert main(["search", str(tmp_path / "index"), "--image", str(query), "-k", "2",
                 "--modality", "image"]) == 0
    first = capsys.readouterr().out.splitlines()[1].split()
    assert first[3] == "-" and first[4] == str(query.resolve())


def test_a_new_species_is_appended_to_a_labelled_index_and_filtered_by_name(
        tiny_run, tiny_embeddings, new_species, unlabelled, tmp_path):
    index = tmp_path / "index"
    before = build_index(tiny_embeddings, index)
    known = list(before["classes"])
    emb = tmp_path / "emb-new"
    embed_run(tiny_run, new_species, emb, inference=BATCH_4, progress=False)  # image only
    info = append_index(index, emb)
    assert info["classes"] == [*known, "Never_Seen_Warbler"]
    assert info["counts"]["image"] == before["counts"]["image"] + 4
    searcher = Searcher(index)
    hits = searcher.search(_test_files(new_species, "image")[0], "image", k=10,
                           class_name="Never_Seen_Warbler")
    assert len(hits) == 4 and {h.class_name for h in hits} == {"Never_Seen_Warbler"}
    assert {h.label for h in hits} == {len(known)}
    embed_run(tiny_run, unlabelled, tmp_path / "emb-mine", inference=BATCH_4, progress=False)
    info = append_index(index, tmp_path / "emb-mine")  # unlabelled items: no class added
    assert info["classes"] == [*known, "Never_Seen_Warbler"]
    found = Searcher(index).search_vector(load_embeddings(tmp_path / "emb-mine", "audio")[0][0],
                                          k=2, target="audio")
    # rec0 is a copy of a labelled recording: both at the top, the unlabelled one without class
    assert [h.score for h in found] == pytest.approx([1, 1], abs=1e-5)
    assert (None, "rec0") in {(h.class_name, Path(h.path).name) for h in found}


def test_an_embedding_gallery_cannot_join_a_logits_index(tiny_run, tiny_index, new_species,
                                                         tmp_path, capsys):
    emb = tmp_path / "emb"
    embed_run(tiny_run, new_species, emb, feature="embedding", inference=BATCH_4, progress=False)
    index = tmp_path / "index"
    shutil.copytree(tiny_index, index)
    before = (index / "index.json").read_text()
    assert main(["index", str(index), "--append", str(emb)]) == 2
    err = capsys.readouterr().err
    assert "embedded by another model" in err and "feature" in err
    assert (index / "index.json").read_text() == before


def test_softmax_is_refused_for_a_gallery_in_one_line(tiny_run, new_species, tmp_path, capsys):
    from dcinet.models.factory import load_trained

    trained = load_trained(tiny_run)
    samples = gallery_samples(trained, new_species).samples
    with pytest.raises(DcinetError, match="softmax probabilities saturate"):
        embed_samples(trained, samples, tmp_path / "emb", new_species, feature="softmax")
    assert not (tmp_path / "emb").exists()
    with pytest.raises(SystemExit):
        main(["embed", str(tiny_run), "--data", str(new_species), "--out", str(tmp_path / "e"),
              "--feature", "softmax"])
    assert "invalid choice: 'softmax'" in capsys.readouterr().err


def test_unreadable_files_are_refused_not_skipped(tiny_run, unlabelled, tmp_path, capsys):
    mine = tmp_path / "mine"
    shutil.copytree(unlabelled, mine)
    (mine / "2024-05" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    assert main(["embed", str(tiny_run), "--data", str(mine), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "cannot be embedded" in err
    assert not (tmp_path / "e").exists()


@pytest.fixture(scope="module")
def renamed(tiny_builtin: Path, tmp_path_factory) -> Path:
    """The built-in test split under class names the run never saw (the same items)."""
    root = tmp_path_factory.mktemp("renamed") / "data"
    for modality in ("image", "audio", "text"):
        for folder in sorted((tiny_builtin / modality / "test").iterdir()):
            shutil.copytree(folder, root / modality / "test" / f"unseen_{folder.name}")
    return root


def test_evaluate_ranks_classes_the_run_never_saw_by_the_embedding(tiny_run, tiny_builtin,
                                                                   renamed, tmp_path, capsys):
    result = evaluate_run(tiny_run, renamed, feature="embedding", resamples=0, inference=BATCH_4)
    same = evaluate_run(tiny_run, tiny_builtin, feature="embedding", resamples=0,
                        inference=BATCH_4)
    assert result.class_names[0].startswith("unseen_")
    for direction in same.per_query:  # the same items under other names: the same ranking
        for metric in ("mAP", "mAP@R", "R@1"):
            np.testing.assert_array_equal(result.per_query[direction][metric],
                                          same.per_query[direction][metric])
    assert main(["evaluate", str(tiny_run), "--data", str(renamed), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "softmax probabilities" in err
    assert "--feature embedding" in err
    assert main(["evaluate", str(tiny_run), "--data", str(renamed), "--feature", "embedding",
                 "--bootstrap", "0", "--json", str(tmp_path / "r.json")]) == 0
    saved = json.loads((tmp_path / "r.json").read_text())
    assert "mAP@R" in json.dumps(saved) and "R@1" in json.dumps(saved)


def test_the_embed_parser_offers_what_the_library_takes():
    """The parser spells the choices out (it loads no torch): they must stay the library's."""
    from dcinet.app.cli import embed as cli
    from dcinet.data import any_folder
    from dcinet.retrieval import embed

    assert cli.FOLDER_FORMATS == any_folder.GALLERY_FORMATS
    assert cli.LABEL_MODES == any_folder.LABEL_MODES
    assert cli.GALLERY_FEATURES == embed.GALLERY_FEATURES


def test_a_class_filter_on_an_unlabelled_index_is_a_one_line_error(tiny_run, unlabelled,
                                                                   tmp_path, capsys):
    embed_run(tiny_run, unlabelled, tmp_path / "emb", inference=BATCH_4, progress=False)
    build_index(tmp_path / "emb", tmp_path / "index")
    assert main(["search", str(tmp_path / "index"), "--text", "red", "--class", "Heron"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: the index has no class 'Heron' (its items are unlabelled)"


def test_search_names_a_wrong_query_file_and_notes_a_picture_given_as_audio(
        tiny_index, tiny_builtin, tmp_path, capsys):
    text = next((tiny_builtin / "text" / "test").rglob("*.txt"))
    assert main(["search", str(tiny_index), "--image", str(text)]) == 2
    assert f"error: {text}: cannot decode image" in capsys.readouterr().err
    picture = next((tiny_builtin / "image" / "test").rglob("*.png"))
    assert main(["search", str(tiny_index), "--audio", str(picture), "-k", "1"]) == 0
    assert f"note: {picture} is a picture: read as a ready-made spectrogram" in \
        capsys.readouterr().err


def test_evaluate_takes_a_test_split_with_fewer_modalities_and_partial_classes(
        tiny_run, tiny_builtin, tmp_path):
    """Real collections: an image + text test split for a tri-modal run, one species with photos
    only (its text queries find no match: AP 0, as the protocol scores them)."""
    root = tmp_path / "data"
    for modality in ("image", "text"):
        shutil.copytree(tiny_builtin / modality / "test", root / modality / "test")
    only_photos = sorted((root / "text" / "test").iterdir())[0]
    shutil.rmtree(only_photos)
    result = evaluate_run(tiny_run, root, resamples=0, inference=BATCH_4)
    assert set(result.per_query) == {"i2t", "t2i", "i2all", "t2all"}
    assert result.counts == {"image": 8, "text": 6}
    lonely = result.class_names.index(only_photos.name)
    image_labels = result.query_labels["image"]
    assert (result.per_query["i2t"]["mAP"][image_labels == lonely] == 0).all()
    assert result.unmatched == {"i2t": int((image_labels == lonely).sum())}
    assert f"i2t {result.unmatched['i2t']} of 8." in result.notes()
