"""Both index backends behind one Gallery: append keeps every old item, delete removes exactly the
given ids (or nothing), refusals are one line; FAISS ivfpq, block-wise building and indexes
written before backends existed; Milvus Lite held by another process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from dcinet.app.cli import main
from dcinet.errors import DcinetError
from dcinet.retrieval import index as index_module
from dcinet.retrieval.embed import load_embeddings
from dcinet.retrieval.gallery import normalized, parse_keys
from dcinet.retrieval.index import append_index, build_index, delete_items, open_gallery


@pytest.fixture(params=["faiss", "milvus"])
def backend(request) -> str:
    if request.param == "milvus":
        pytest.importorskip("milvus_lite", reason="Milvus Lite is not installed "
                                                  "(pip install 'dcinet[milvus]')")
    return request.param


def unit(vector: np.ndarray) -> np.ndarray:
    return normalized(np.asarray(vector)[None])[0]


def write_embeddings(out: Path, like: Path, vectors: np.ndarray, labels: np.ndarray) -> Path:
    """An ``EMB_DIR`` of image ``vectors`` with the model record of ``like`` (another EMB_DIR)."""
    manifest = json.loads((like / "embed.json").read_text())
    manifest["modalities"] = {"image": {"count": len(vectors), "dim": vectors.shape[1]}}
    out.mkdir()
    (out / "embed.json").write_text(json.dumps(manifest))
    np.save(out / "image.npy", vectors.astype(np.float32))
    lines = [{"row": i, "modality": "image", "label": int(c), "class_name": manifest["classes"][c],
              "path": None, "text": None, "source": ""} for i, c in enumerate(labels)]
    (out / "image.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    return out


def test_append_keeps_every_old_item_and_finds_the_new_ones(backend, tiny_embeddings, tmp_path):
    out = tmp_path / "index"
    build_index(tiny_embeddings, out, modalities=["image"], backend=backend)
    info = append_index(out, tiny_embeddings)  # every modality again: image 8-15, audio, text
    assert info["counts"] == {"image": 16, "audio": 8, "text": 8}
    assert info["next_row"] == {"image": 16, "audio": 8, "text": 8}
    gallery = open_gallery(out)
    vectors, metadata = load_embeddings(tiny_embeddings, "image")
    for row in (0, 5):
        assert gallery.item("image", row) == metadata[row]
        assert gallery.item("image", 8 + row) == {**metadata[row], "row": 8 + row}
        found = gallery.lookup(unit(vectors[row]), 32, ["image", "audio", "text"])
        assert len(found) == 32
        scores = {(it["modality"], it["row"]): s for s, it in found}
        assert scores["image", row] == pytest.approx(1.0, abs=1e-5)  # the old item
        assert scores["image", 8 + row] == pytest.approx(1.0, abs=1e-5)  # and its new copy
    label = metadata[0]["label"]
    of_class = gallery.lookup(unit(vectors[0]), 32, ["image"], label=label)
    assert len(of_class) == 2 * sum(m["label"] == label for m in metadata)
    assert all(it["label"] == label for _, it in of_class)


def test_delete_removes_exactly_those_ids_or_nothing(backend, tiny_embeddings, tmp_path, capsys):
    out = tmp_path / "index"
    build_index(tiny_embeddings, out, backend=backend)
    assert main(["index", str(out), "--delete", "image/3, text/0,image/3"]) == 0
    assert "deleted 2 items" in capsys.readouterr().out
    gallery = open_gallery(out)
    assert gallery.info["counts"] == {"image": 7, "audio": 8, "text": 7}
    assert gallery.item("image", 3) is None and gallery.item("image", 4) is not None
    vectors, _ = load_embeddings(tiny_embeddings, "image")
    found = gallery.lookup(unit(vectors[3]), 30, ["image", "audio", "text"])
    assert len(found) == 22 and ("image", 3) not in {(it["modality"], it["row"]) for _, it in found}
    assert main(["index", str(out), "--delete", "image/4,image/3"]) == 2  # image/3 is gone
    assert "no item image/3" in capsys.readouterr().err
    assert open_gallery(out).info["counts"]["image"] == 7  # image/4 was kept
    info = append_index(out, tiny_embeddings)
    gallery = open_gallery(out)
    assert info["counts"]["image"] == 15 and gallery.item("image", 3) is None  # not reused
    assert gallery.item("image", 11)["path"] == load_embeddings(tiny_embeddings, "image")[1][3]["path"]


def test_appending_embeddings_of_another_model_is_refused(backend, tiny_embeddings, tmp_path,
                                                          capsys):
    out = tmp_path / "index"
    build_index(tiny_embeddings, out, modalities=["text"], backend=backend)
    other = tmp_path / "other"
    shutil.copytree(tiny_embeddings, other)
    manifest = json.loads((other / "embed.json").read_text())
    (other / "embed.json").write_text(json.dumps({**manifest, "weights_sha256": "0" * 64}))
    assert main(["index", str(out), "--append", str(other)]) == 2
    err = capsys.readouterr().err
    assert "embedded by another model" in err and "weights_sha256" in err
    assert len(err.splitlines()) == 1
    assert open_gallery(out).info["counts"] == {"text": 8}


@pytest.mark.parametrize(("args", "message"), [
    (["--append", "E", "--kind", "ivf"], "--kind applies to building"),
    (["--delete", "image/1", "--uri", "http://h:19530"], "--uri applies to building"),
    (["--delete", "image:1"], "is not MODALITY/ROW"),
    (["--delete", " , "], "no item ids"),
])
def test_index_cli_refusals(tmp_path, capsys, args, message):
    assert main(["index", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_build_refusals(tiny_embeddings, tmp_path):
    with pytest.raises(DcinetError, match="--uri is for --backend milvus"):
        build_index(tiny_embeddings, tmp_path / "a", uri="http://localhost:19530")
    with pytest.raises(DcinetError, match="--pq-m is for --kind ivfpq"):
        build_index(tiny_embeddings, tmp_path / "b", pq_m=2)
    with pytest.raises(DcinetError, match="at least 256 vectors"):
        build_index(tiny_embeddings, tmp_path / "c", kind="ivfpq")
    assert parse_keys("audio/7,image/0") == [("audio", 7), ("image", 0)]
    pytest.importorskip("milvus_lite", reason="Milvus Lite is not installed")
    with pytest.raises(DcinetError, match="supports --kind flat or ivf"):
        build_index(tiny_embeddings, tmp_path / "d", kind="ivfpq", backend="milvus")
    with pytest.raises(DcinetError, match="must not hold credentials"):
        build_index(tiny_embeddings, tmp_path / "e", backend="milvus", uri="http://u:pw@h:19530")


def test_ivfpq_and_a_blockwise_build_rank_as_brute_force(tiny_embeddings, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    labels = rng.integers(0, 4, 3000)
    vectors = centres[labels] + 0.5 * rng.normal(size=(3000, 16))
    emb = write_embeddings(tmp_path / "emb", tiny_embeddings, vectors, labels)
    queries = normalized(vectors[:40] + 0.05 * rng.normal(size=(40, 16)))
    exact = normalized(vectors) @ queries.T
    monkeypatch.setattr(index_module, "ADD_BLOCK", 256)  # 12 blocks
    assert main(["index", str(emb), "--out", str(tmp_path / "pq"), "--kind", "ivfpq",
                 "--nlist", "8", "--nprobe", "8", "--pq-m", "8"]) == 0
    pq = open_gallery(tmp_path / "pq")
    assert pq.info["ivf"]["image"] == {"nlist": 8, "nprobe": 8, "pq_m": 8}
    build_index(emb, tmp_path / "flat")
    flat = open_gallery(tmp_path / "flat")
    recall = []
    for i, q in enumerate(queries):
        want = set(np.argsort(-exact[:, i], kind="stable")[:10].tolist())
        assert {it["row"] for _, it in flat.lookup(q, 10, ["image"])} == want
        recall.append(len({it["row"] for _, it in pq.lookup(q, 10, ["image"])} & want) / 10)
        of_class = pq.lookup(q, 10, ["image"], label=1)
        assert of_class and all(it["label"] == 1 for _, it in of_class)
    assert 0.5 < np.mean(recall) <= 1.0


def test_a_faiss_change_is_a_new_generation_that_index_json_switches_to(tiny_embeddings, tmp_path,
                                                                       monkeypatch):
    out = tmp_path / "index"
    build_index(tiny_embeddings, out, modalities=["image"])
    before = open_gallery(out)
    vector = unit(load_embeddings(tiny_embeddings, "image")[0][1])

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:  # the change dies before index.json names the new files
        m.setattr(index_module, "atomic_write_bytes", crash)
        with pytest.raises(OSError):
            delete_items(out, [("image", 1)])
    assert open_gallery(out).item("image", 1) is not None  # so it did not happen
    delete_items(out, [("image", 1)])  # its leftovers are removed, then it happens
    names = sorted(f.name for f in out.iterdir())
    assert names == ["image.1.faiss", "image.1.jsonl", "image.1.rows.npy", "image.faiss",
                     "image.jsonl", "image.rows.npy", "index.json"]
    append_index(out, tiny_embeddings)  # generation 0 goes; 1 stays until the next change
    assert sorted(f.name for f in out.iterdir())[0] == "audio.faiss"
    assert {f.name for f in out.glob("image*")} == {f"image.{g}{suffix}" for g in (1, 2)
                                                    for suffix in (".faiss", ".jsonl", ".rows.npy")}
    assert before.item("image", 1) is not None  # a gallery opened before keeps its snapshot
    assert len(before.lookup(vector, 8, ["image"])) == 8
    after = open_gallery(out)
    assert after.item("image", 1) is None and after.info["counts"]["image"] == 15
    scores = {it["row"]: score for score, it in after.lookup(vector, 15, ["image"])}
    assert 1 not in scores and scores[9] == pytest.approx(1.0, abs=1e-5)  # row 1's copy


def test_an_index_written_before_backends_is_searched_and_refused_for_changes(tiny_embeddings,
                                                                                tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    vectors, metadata = load_embeddings(tiny_embeddings, "image")
    flat = faiss.IndexFlatIP(4)
    flat.add(normalized(vectors))
    faiss.write_index(flat, str(old / "image.faiss"))
    shutil.copyfile(tiny_embeddings / "image.jsonl", old / "image.jsonl")
    info = json.loads((tiny_embeddings / "embed.json").read_text())
    (old / "index.json").write_text(json.dumps(
        {"kind": "flat", "dim": 4, "counts": {"image": 8}, "ivf": {},
         **{k: info[k] for k in ("run_dir", "weights", "weights_sha256", "feature", "classes")}}))
    gallery = open_gallery(old)
    found = gallery.lookup(unit(vectors[2]), 3, ["image"], label=metadata[2]["label"])
    assert found[0][1] == metadata[2] and found[0][0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(DcinetError, match="built by an earlier dcinet"):
        append_index(old, tiny_embeddings)


def test_milvus_lite_open_in_another_process_is_a_one_line_error(tiny_milvus_index, tmp_path):
    open_gallery(tiny_milvus_index)  # this process holds the embedded database
    done = subprocess.run([sys.executable, "-m", "dcinet", "index", str(tiny_milvus_index),
                           "--delete", "image/0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: cannot open the Milvus Lite database")
    assert len(done.stderr.splitlines()) == 1
    assert open_gallery(tiny_milvus_index).info["counts"]["image"] == 8


@pytest.mark.slow
def test_a_milvus_gallery_opens_after_another_idled_30_s(tiny_embeddings, tmp_path):
    pytest.importorskip("milvus_lite", reason="Milvus Lite is not installed")
    # In a fresh interpreter, with its own database: the earlier tests' Milvus Lite servers and
    # gRPC channels in this process are not what is tested (and made it fail after tests/app).
    script = """
import sys, time
from pathlib import Path
from dcinet.retrieval.index import build_index, open_gallery
index = Path(sys.argv[2])
build_index(Path(sys.argv[1]), index, backend="milvus")
first = open_gallery(index)
time.sleep(31)  # pymilvus health-checks a shared connection idle 30 s; Milvus Lite fails it
print(open_gallery(index).counts()["image"], first.counts()["image"])
"""
    proc = subprocess.run([sys.executable, "-c", script, str(tiny_embeddings),
                           str(tmp_path / "milvus-index")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["8", "8"]


@pytest.mark.parametrize("user_value", [None, "8388608"])
def test_milvus_lite_buffers_32_mib_unless_the_user_set_it(tiny_embeddings, tmp_path, user_value):
    pytest.importorskip("milvus_lite", reason="Milvus Lite is not installed")
    from dcinet.retrieval.backends.milvus import LITE_MEMTABLE_BYTES, LITE_MEMTABLE_ENV

    script = """
import sys
from pathlib import Path
from dcinet.retrieval.index import build_index
build_index(Path(sys.argv[1]), Path(sys.argv[2]), backend="milvus")
from milvus_lite.constants import MEMTABLE_MEMORY_LIMIT
print(MEMTABLE_MEMORY_LIMIT)
"""
    env = {k: v for k, v in os.environ.items() if k != LITE_MEMTABLE_ENV}
    if user_value:
        env[LITE_MEMTABLE_ENV] = user_value
    proc = subprocess.run([sys.executable, "-c", script, str(tiny_embeddings),
                           str(tmp_path / "milvus-index")], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) == int(user_value or LITE_MEMTABLE_BYTES)
