"""The built-in dataset generator: layout, formats, determinism, fine-grainedness, reuse, errors."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from dcinet.data.readers import read_folder
from dcinet.errors import DcinetError
from dcinet.sources.synth import MANIFEST, split_sizes, synthesize
from dcinet.sources.synth.audio import SAMPLE_RATE, contour_semitones, render_call
from dcinet.sources.synth.generate import item_rng
from dcinet.sources.synth.image import render_image
from dcinet.sources.synth.taxonomy import (
    COLOUR_WORDS,
    CONTOUR_WORDS,
    KIND_WORDS,
    MAX_CLASSES,
    NOTES_WORDS,
    build_taxonomy,
)
from dcinet.sources.synth.text import write_note

TINY = {"classes": 4, "per_class": 8, "seed": 0, "image_size": 48, "progress": False}
MODALITY_EXT = {"image": ".png", "audio": ".wav", "text": ".txt"}
ATTRIBUTE_WORDS = {"mark_colour": COLOUR_WORDS, "mark_kind": KIND_WORDS, "call_contour": CONTOUR_WORDS,
                   "call_notes": NOTES_WORDS}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synth") / "data", **TINY)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != MANIFEST}


def _mentions(text: str, words: dict) -> set:
    """The attribute values whose words occur in ``text`` (whole words, case-insensitive)."""
    return {value for value, synonyms in words.items()
            if any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text.lower()) for w in synonyms)}


# ------------------------------------------------------------------------------------------ layout
def test_layout_counts_and_manifest(tiny: Path):
    manifest = json.loads((tiny / MANIFEST).read_text())
    names = [c["name"] for c in manifest["classes"]]
    assert manifest["complete"] and names == sorted(names) and len(set(names)) == 4
    assert [c["label"] for c in manifest["classes"]] == [0, 1, 2, 3]
    assert manifest["families"] == {"Marsh Warbler": 4}
    train, test = split_sizes(8, 0.25)
    assert (train, test) == (6, 2) and manifest["config"]["train_per_class"] == 6
    for modality, ext in MODALITY_EXT.items():
        for split, n in (("train", train), ("test", test)):
            assert sorted(p.name for p in (tiny / modality / split).iterdir()) == names
            for name in names:
                files = sorted((tiny / modality / split / name).iterdir())
                assert len(files) == n and all(f.suffix == ext for f in files)
    collection = read_folder(tiny)
    assert collection.classes == names and collection.modalities == ["image", "audio", "text"]
    assert set(collection.counts().values()) == {4 * 6, 4 * 2}


@pytest.mark.parametrize(("per_class", "fraction", "expected"),
                         [(40, 0.25, (30, 10)), (8, 0.25, (6, 2)), (2, 0.25, (1, 1)), (4, 0.9, (1, 3)),
                          (3, 0.01, (2, 1))])
def test_split_sizes_keep_both_splits(per_class, fraction, expected):
    assert split_sizes(per_class, fraction) == expected


def test_file_formats(tiny: Path):
    for path in (tiny / "image").rglob("*.png"):
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (48, 48)
    for path in (tiny / "audio").rglob("*.wav"):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (SAMPLE_RATE, 1, "PCM_16", "WAV")
        assert 1.0 <= info.duration <= 3.0
        wave, _ = sf.read(path)
        assert 0.25 < np.abs(wave).max() < 0.95
    for path in (tiny / "text").rglob("*.txt"):
        text = path.read_bytes().decode("utf-8").strip()
        sentences = [s for s in re.split(r"(?<=[.])\s+", text) if s]
        assert 1 <= len(sentences) <= 3 and all(s.endswith(".") for s in sentences), text


# ------------------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_other_seed_other_bytes(tiny: Path, tmp_path: Path):
    again = _files(synthesize(tmp_path / "again", **TINY))
    assert again == _files(tiny)
    other = _files(synthesize(tmp_path / "other", **{**TINY, "seed": 1}))
    assert other.keys() == again.keys()
    media = [k for k in again if not k.endswith(".txt")]
    assert all(other[k] != again[k] for k in media)
    texts = [k for k in again if k.endswith(".txt")]
    assert sum(other[k] != again[k] for k in texts) > 0.8 * len(texts)


def test_worker_processes_write_the_same_bytes(tiny: Path, tmp_path: Path, capsys):
    out = synthesize(tmp_path / "parallel", **{**TINY, "progress": True, "workers": 2})
    assert _files(out) == _files(tiny)
    progress = capsys.readouterr().err.splitlines()
    assert progress[-1] == "synthesizing: 96/96 files" and len(progress) == 2  # chunks of 50


def test_an_item_depends_only_on_its_key(tiny: Path):
    """Re-rendering one item alone, out of order, gives the file's exact content."""
    species = {s.name: (i, s) for i, s in enumerate(build_taxonomy(4))}
    path = sorted((tiny / "image" / "test").rglob("*.png"))[-1]
    class_index, s = species[path.parent.name]
    buffer = io.BytesIO()
    Image.fromarray(render_image(s, item_rng(0, class_index, "image", int(path.stem)), 48)).save(buffer, format="PNG")
    assert buffer.getvalue() == path.read_bytes()
    path = sorted((tiny / "audio" / "train").rglob("*.wav"))[3]
    class_index, s = species[path.parent.name]
    wave, _ = sf.read(path, dtype="float32")
    expected = render_call(s, item_rng(0, class_index, "audio", int(path.stem)))
    np.testing.assert_allclose(wave, expected, atol=1.0 / 32767)


def test_texts_are_unique(tiny: Path):
    texts = [p.read_text() for p in (tiny / "text").rglob("*.txt")]
    assert len(set(texts)) == len(texts) == 32


# ---------------------------------------------------------------------------------- fine-grained
def test_families_share_attributes_and_species_differ_in_designed_ones():
    classes = [s.describe() for s in build_taxonomy(20)]
    by_family: dict[str, list[dict]] = {}
    for c in classes:
        by_family.setdefault(c["family"], []).append(c)
    assert [len(v) for v in by_family.values()] == [4] * 5
    for members in by_family.values():
        assert all(m["family_attributes"] == members[0]["family_attributes"] for m in members)
        for a, b in combinations(members, 2):
            sa, sb = a["subtle_attributes"], b["subtle_attributes"]
            image_diff = sum(sa[k] != sb[k] for k in ("mark_colour", "mark_kind"))
            audio_diff = sum(sa[k] != sb[k] for k in ("call_contour", "call_notes"))
            assert 1 <= image_diff <= 2 and 1 <= audio_diff <= 2, (a["name"], b["name"])
            assert any(set(a["attribute_words"][k]) != set(b["attribute_words"][k]) for k in ATTRIBUTE_WORDS)
    heads = [v[0]["family_attributes"] for v in by_family.values()]
    for key in ("body_colour", "shape", "call_timbre", "base_pitch_hz"):
        assert len({str(h[key]) for h in heads}) == len(heads), key


def test_taxonomy_scales_and_names_are_unique():
    for n in (2, 3, 5, 21, 33, MAX_CLASSES):
        names = [s.name for s in build_taxonomy(n)]
        assert len(names) == len(set(names)) == n


def test_same_family_images_differ_only_in_the_mark():
    """Same draws, two species of one family: few pixels differ; another family: many differ."""
    a, b, *_ , other = build_taxonomy(5)
    assert a.family == b.family != other.family
    for k in range(5):
        img_a, img_b, img_o = (render_image(s, np.random.default_rng(k), 96) for s in (a, b, other))
        changed = np.abs(img_a.astype(int) - img_b.astype(int)).max(axis=2) > 30
        assert 0 < changed.mean() < 0.04
        assert (np.abs(img_a.astype(int) - img_o.astype(int)).max(axis=2) > 30).mean() > 2 * changed.mean()


def test_contours_have_their_shape():
    x = np.linspace(0, 1, 101)
    assert np.all(np.diff(contour_semitones("rising", x, 3.0, 2.0)) > 0)
    assert np.all(np.diff(contour_semitones("falling", x, 3.0, 2.0)) < 0)
    assert np.all(contour_semitones("flat", x, 3.0, 2.0) == 0)
    arch = contour_semitones("arch", x, 3.0, 2.0)
    assert arch.argmax() == 50 and arch[0] == pytest.approx(arch[-1])
    warble = contour_semitones("warble", x, 3.0, 2.0)
    assert np.sum(np.diff(np.sign(warble[1:-1])) != 0) == 3  # two cycles: three inner zero crossings


def test_calls_sit_at_the_family_pitch():
    """The loudest frequency between 500 Hz and the insect-hum range (>= 5.5 kHz) is within the
    contour's reach of the family's base pitch."""
    for species in build_taxonomy(8)[::3]:
        for k in range(3):
            wave = render_call(species, np.random.default_rng(k)).astype(np.float64)
            spectrum = np.abs(np.fft.rfft(wave))
            freqs = np.fft.rfftfreq(len(wave), 1.0 / SAMPLE_RATE)
            band = (freqs > 500) & (freqs < 5400)
            peak = freqs[band][spectrum[band].argmax()]
            assert abs(12 * np.log2(peak / species.family.base_hz)) < 5.5, (species.name, peak)


def test_notes_name_only_their_own_attributes(tiny: Path):
    manifest = json.loads((tiny / MANIFEST).read_text())
    mentioned = Counter()
    for c in manifest["classes"]:
        for path in (tiny / "text").rglob(f"{c['name']}/*.txt"):
            text = path.read_text()
            for key, words in ATTRIBUTE_WORDS.items():
                found = _mentions(text, words)
                assert found <= {c["subtle_attributes"][key]}, (path, key, found)
                mentioned[key] += bool(found)
    assert all(mentioned[key] > 0 for key in ATTRIBUTE_WORDS), mentioned


def test_note_variation_and_omission():
    """Over many notes: every attribute is sometimes named and sometimes not; some notes name none;
    1, 2 and 3 sentences all occur; never another class's attribute word."""
    taxonomy = build_taxonomy(MAX_CLASSES)
    lengths, none, named = Counter(), 0, Counter()
    for i, species in enumerate(taxonomy):
        truth = {"mark_colour": species.mark_colour, "mark_kind": species.mark_kind,
                 "call_contour": species.contour, "call_notes": species.notes}
        for k in range(25):
            note = write_note(species, np.random.default_rng([i, k]))
            lengths[len(re.findall(r"\.(?:\s|$)", note))] += 1
            found = {key: _mentions(note, words) for key, words in ATTRIBUTE_WORDS.items()}
            assert all(f <= {truth[key]} for key, f in found.items()), (species.name, note)
            named.update(key for key, f in found.items() if f)
            none += not any(found.values())
    total = 25 * len(taxonomy)
    assert set(lengths) == {1, 2, 3}
    assert 0.02 * total < none < 0.3 * total
    assert all(0.2 * total < named[key] < 0.7 * total for key in ATTRIBUTE_WORDS), named


# ------------------------------------------------------------------------------- reuse and errors
def test_reuse_is_a_no_op_and_an_interrupted_tree_is_completed(tmp_path: Path, capsys):
    out = synthesize(tmp_path / "d", **{**TINY, "progress": True})
    assert "synthesizing: 96/96 files" in capsys.readouterr().err
    probe = out / "image" / "train" / sorted(p.name for p in (out / "image" / "train").iterdir())[0] / "0000.png"
    stamp = probe.stat().st_mtime_ns
    synthesize(out, **TINY)
    assert probe.stat().st_mtime_ns == stamp
    content = probe.read_bytes()
    probe.unlink()
    synthesize(out, **TINY)
    assert probe.read_bytes() == content


def test_other_arguments_or_foreign_folder_are_refused(tiny: Path, tmp_path: Path):
    with pytest.raises(DcinetError, match=r"other arguments \(per_class 8 -> 10"):
        synthesize(tiny, **{**TINY, "per_class": 10})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DcinetError, match="not empty"):
        synthesize(foreign, **TINY)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DcinetError, match="not a folder"):
        synthesize(a_file, **TINY)


@pytest.mark.parametrize("bad", [{"classes": 1}, {"classes": MAX_CLASSES + 1}, {"per_class": 1},
                                 {"seed": -1}, {"test_fraction": 0.0}, {"test_fraction": 1.0},
                                 {"image_size": 8}])
def test_bad_arguments(tmp_path: Path, bad: dict):
    key = next(iter(bad))
    with pytest.raises(DcinetError, match=key):
        synthesize(tmp_path / "x", **{**TINY, **bad})
    assert not (tmp_path / "x").exists()
