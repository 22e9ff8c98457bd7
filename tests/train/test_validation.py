"""Validation while training: the held-out split, val metrics, the best checkpoint (written, kept,
restored on resume), --checkpoint best|last|FILE, and the test split never used for selection."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import dcinet.retrieval.evaluate
import dcinet.train.loop
import dcinet.train.validation
from dcinet.app.cli import main
from dcinet.config import Config, load_config
from dcinet.data.readers import read_collection
from dcinet.data.records import Collection, Sample
from dcinet.data.splits import hold_out_validation, validation_warnings
from dcinet.distributed import DistInfo
from dcinet.errors import DcinetError
from dcinet.retrieval.embed import read_manifest
from dcinet.retrieval.evaluate import evaluate_run
from dcinet.rundir import load_weights, read_best, read_metrics, read_pointer, resolve_checkpoint
from dcinet.train.loop import fit, prepare

# cpu-tiny at its cheapest (32 px, layer 3 keeps CMSI's maps at 2 x 2), a quarter held out
OVERRIDES = ["epochs=2", "img_size=32", "resize=36", "layer=3", "text_len=48",
             "batch_per_modality=4", "samples_per_class=2", "num_workers=0",
             "deterministic=true", "log_every=1000", "val_fraction=0.25"]


def _cfg(*extra: str) -> Config:
    return load_config("cpu-tiny", [*OVERRIDES, *extra])


def _key(s: Sample) -> tuple:
    return s.modality, str(s.path)


@pytest.fixture(scope="module")
def val_run(tiny_builtin: Path, tmp_path_factory) -> tuple[Path, list[Sample]]:
    """A 2-epoch run that validates after each epoch, trained with the test split's readers
    failing (``split_samples``) and every sample validated recorded."""
    run_dir = tmp_path_factory.mktemp("val") / "run"
    validated: list[Sample] = []
    extract = dcinet.train.validation.extract_features

    def recording(trained, samples, *args, **kwargs):
        validated.extend(samples)
        return extract(trained, samples, *args, **kwargs)

    def no_test(*args, **kwargs):
        raise AssertionError("training read an evaluation split")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dcinet.train.validation, "extract_features", recording)
        patch.setattr(dcinet.retrieval.evaluate, "split_samples", no_test)
        fit(_cfg(), tiny_builtin, run_dir, progress=False)
    return run_dir, validated


def test_held_out_items_are_seeded_per_class_and_leave_the_rng_alone(tiny_builtin: Path):
    collection = read_collection(tiny_builtin)
    cfg = dataclasses.replace(Config(), val_fraction=0.25)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    held, record = hold_out_validation(collection, cfg)
    assert random.getstate() == before[0] and (np.random.get_state()[1] == before[1]).all()
    assert torch.equal(torch.get_rng_state(), before[2])
    again, _ = hold_out_validation(read_collection(tiny_builtin), cfg)
    assert held.samples == again.samples
    other, _ = hold_out_validation(collection, dataclasses.replace(cfg, seed=1))
    assert {_key(s) for s in other.select("val")} != {_key(s) for s in held.select("val")}
    for modality in ("image", "audio", "text"):
        for label in range(4):  # 6 training items per class: round(1.5) = 2 held out, 4 kept
            of = [s for s in held.samples if (s.modality, s.label) == (modality, label)]
            assert [s.split for s in of].count("val") == 2
            assert [s.split for s in of].count("train") == 4
            assert [s.split for s in of].count("test") == 2
    test = {_key(s) for s in collection.select("test")}
    assert test == {_key(s) for s in held.select("test")}
    assert record["source"] == "val_fraction" and record["classes_without_val"] == {}
    assert record["items"]["counts"] == {"image": 8, "audio": 8, "text": 8}
    assert json.loads(json.dumps(record)) == record  # what run.json holds compares equal


def _collection(*items: tuple[str, str, int]) -> Collection:
    """Image samples ``(split, class, count)``, classes a and b."""
    samples = [Sample("image", split, "ab".index(cls), cls, Path(f"/none/{split}/{cls}/{i}.png"))
               for split, cls, count in items for i in range(count)]
    return Collection(["a", "b"], samples, Path("/none"))


def test_a_class_too_small_gives_none_and_is_named():
    cfg = dataclasses.replace(Config(), val_fraction=0.25)
    held, record = hold_out_validation(_collection(("train", "a", 1), ("train", "b", 4)), cfg)
    assert [s.class_name for s in held.select("val")] == ["b"]
    assert record["classes_without_val"] == {"image": ["a"]}
    assert validation_warnings(record) == [
        "1 classes have no image validation item (too few training items: a)"]
    with pytest.raises(DcinetError, match="'val_fraction' .* holds out no item"):
        hold_out_validation(_collection(("train", "a", 1), ("train", "b", 1)), cfg)


def test_a_layout_val_split_is_read_and_used(tmp_path: Path):
    for split, cls in (("train", "a"), ("val", "a"), ("test", "a"), ("train", "b")):
        (tmp_path / "image" / split / cls).mkdir(parents=True)
        (tmp_path / "image" / split / cls / "x.png").write_bytes(b"png")
    problems: list = []
    collection = read_collection(tmp_path, problems=problems)
    assert problems == [] and [s.split for s in collection.samples] == ["train", "train", "val",
                                                                       "test"]
    same, record = hold_out_validation(collection, Config())
    assert same is collection and record["source"] == "split"
    assert record["classes_without_val"] == {"image": ["b"]}
    with pytest.raises(DcinetError, match="'val_fraction' must be 0 .* own val split"):
        hold_out_validation(collection, dataclasses.replace(Config(), val_fraction=0.5))
    assert hold_out_validation(_collection(("train", "a", 2)), Config())[1] is None


def test_validation_due():
    from dcinet.train.validation import validation_due

    every_two = dataclasses.replace(Config(), epochs=5, val_every=2)
    assert [validation_due(every_two, e) for e in range(5)] == [False, True, False, True, True]
    never = dataclasses.replace(Config(), epochs=5, val_every=0)
    assert not any(validation_due(never, e) for e in range(5))


def test_val_items_are_neither_trained_on_nor_test_items_and_validation_is_pure(
        tiny_builtin: Path, tmp_path: Path):
    from dcinet.train.validation import validate

    run = prepare(_cfg(), tiny_builtin, tmp_path / "run", False, DistInfo())
    val = {_key(s) for s in run.val_samples}
    trained_on = {_key(s) for s in run.loader.dataset.samples}
    test = {_key(s) for s in read_collection(tiny_builtin).select("test")}
    assert len(val) == 24 and len(trained_on) == 48
    assert not val & trained_on and not val & test and not trained_on & test
    assert not (tmp_path / "run").exists()  # prepare writes nothing
    torch.manual_seed(5)
    state = torch.get_rng_state()
    run.model.train()
    scores = validate(run.model, _cfg(), run.collection.classes, run.modalities, run.val_samples,
                      DistInfo())
    assert torch.equal(torch.get_rng_state(), state) and run.model.training
    assert set(scores) == {"val_average_bimodal", "val_average_multimodal", "val_score"}
    assert scores["val_score"] == scores["val_average_bimodal"]


def test_val_metrics_and_the_best_checkpoint(val_run, tiny_builtin: Path):
    run_dir, validated = val_run
    rows = read_metrics(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all({"val_average_bimodal", "val_average_multimodal", "val_score"} <= set(r)
               for r in rows)
    assert (run_dir / "val.png").stat().st_size > 1000
    best = read_best(run_dir)
    top = max(rows, key=lambda r: r["val_score"])
    assert best["epoch"] == top["epoch"] and best["score"] == pytest.approx(top["val_score"])
    assert (run_dir / "best-model.safetensors").exists() and read_pointer(run_dir)["epoch"] == 2
    info = json.loads((run_dir / "run.json").read_text())
    assert info["validation"]["items"]["counts"] == {"image": 8, "audio": 8, "text": 8}
    assert {s.split for s in validated} == {"val"} and len(validated) == 2 * 24
    # the score is the one `dcinet evaluate --split val --checkpoint best` reports
    result = evaluate_run(run_dir, split="val", checkpoint="best", resamples=0)
    assert result.average_bimodal == best["score"]


def test_checkpoint_choice_on_evaluate_and_embed(val_run, tmp_path: Path, capsys):
    run_dir, _ = val_run
    for which, weights in (("best", "best-model.safetensors"), ("last", "model-2.safetensors"),
                           ("model-2.safetensors", "model-2.safetensors"),
                           (str(run_dir / "best-model.safetensors"), "best-model.safetensors")):
        assert resolve_checkpoint(run_dir, which) == run_dir / weights
    assert main(["embed", str(run_dir), "--out", str(tmp_path / "emb"), "--checkpoint",
                 "best"]) == 0
    assert Path(read_manifest(tmp_path / "emb")["weights"]).name == "best-model.safetensors"
    assert main(["evaluate", str(run_dir), "--checkpoint", "model-2.safetensors",
                 "--bootstrap", "0"]) == 0
    capsys.readouterr()
    no_best = tmp_path / "no-best"
    shutil.copytree(run_dir, no_best)
    (no_best / "best.json").unlink()
    for argv in (["evaluate", str(no_best), "--checkpoint", "best"],
                 ["embed", str(no_best), "--out", str(tmp_path / "e"), "--checkpoint", "best"],
                 ["evaluate", str(run_dir), "--checkpoint", "model-9.safetensors"],
                 ["evaluate", str(run_dir / "model-2.safetensors"), "--checkpoint", "best"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("best" in err or "model-9" in err), err


def test_resume_with_validation_is_bit_identical_and_restores_the_best(val_run, tiny_builtin,
                                                                        tmp_path: Path,
                                                                        monkeypatch):
    straight, _ = val_run
    run_dir = tmp_path / "run"

    def crash_before_the_best(*args, **kwargs):  # the checkpoint of epoch 1 is saved, not its best
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(dcinet.train.loop, "save_best", crash_before_the_best)
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(), tiny_builtin, run_dir, progress=False)
    monkeypatch.undo()
    assert read_pointer(run_dir)["epoch"] == 1 and read_best(run_dir) is None
    fit(_cfg(), tiny_builtin, run_dir, resume=True, progress=False)
    for name in ("model-2.safetensors", "best-model.safetensors"):
        a, b = load_weights(straight / name), load_weights(run_dir / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert read_best(run_dir) == read_best(straight)
    for a, b in zip(read_metrics(straight), read_metrics(run_dir), strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"}


def test_resume_and_evaluation_refuse_other_validation_items(val_run, tiny_builtin,
                                                             tmp_path: Path):
    run_dir = tmp_path / "run"
    shutil.copytree(val_run[0], run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    info["validation"]["items"]["digest"] = "0" * 64
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(DcinetError, match="validation items differ"):
        fit(_cfg("epochs=3"), tiny_builtin, run_dir, resume=True, progress=False)
    with pytest.raises(DcinetError, match="validation items .* differ"):
        evaluate_run(run_dir, split="val", resamples=0)
    assert evaluate_run(run_dir, resamples=0).average_bimodal is not None  # test is unaffected
