"""``bench/cub_text_set.py``: cub100's photos and cub-text's descriptions as one image + text set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dcinet.data.readers import read_collection

_spec = importlib.util.spec_from_file_location(
    "dcinet_cub_text_set", Path(__file__).resolve().parents[2] / "bench" / "cub_text_set.py")
cub_text_set = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cub_text_set)


def test_sixty_six_species_split_as_cub100_and_texts_four_two(shared_data, tmp_path, capsys):
    cub, texts, out = shared_data / "cub100", shared_data / "cub-text", tmp_path / "set"
    assert cub_text_set.main([str(out), "--cub", str(cub), "--texts", str(texts)]) == 0
    assert "image 1883 train / 1979 test; text 264 train / 132 test" in capsys.readouterr().out
    for species in (out / "text" / "train").iterdir():
        train = sorted(p.name for p in species.iterdir())
        test = sorted(p.name for p in (out / "text" / "test" / species.name).iterdir())
        assert (train, test) == (["00.txt", "01.txt", "02.txt", "03.txt"], ["04.txt", "05.txt"])
        assert (texts / species.name / "00.txt").read_text() == (species / "00.txt").read_text()
    # every image's split is cub100's; species without descriptions are left out
    split = dict(line.split(", ") for line in (cub / "train_test_split.txt").read_text().splitlines())
    described = {p.name for p in (out / "text" / "train").iterdir()}
    for line in (cub / "images.txt").read_text().splitlines()[::97]:
        image_id, relative = line.split(", ")
        side = "train" if split[image_id] == "1" else "test"
        linked = out / "image" / side / relative
        if relative.split("/")[0] in described:
            assert linked.resolve() == (cub / "images" / relative).resolve()
        else:
            assert not linked.exists() and not linked.parent.exists()
    collection = read_collection(out)
    assert collection.modalities == ["image", "text"] and collection.num_classes == 66
    assert len(collection.samples) == 1883 + 1979 + 264 + 132
    assert cub_text_set.main([str(out), "--cub", str(cub), "--texts", str(texts)]) == 2  # never overwrites
    assert cub_text_set.main([str(tmp_path / "b"), "--cub", str(tmp_path / "none")]) == 2
    assert "no cub100 photos" in capsys.readouterr().err
