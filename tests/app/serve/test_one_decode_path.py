"""One preprocessing path: the server, the search CLI and evaluation decode the same file of each
modality to the same bits, and so embed it to the same features (same batch shape)."""

from __future__ import annotations

import json
import urllib.request

import pytest
import torch

from dcinet.app.cli import main
from dcinet.data.decode import SampleDecoder
from dcinet.models.factory import load_trained
from dcinet.retrieval.evaluate import split_samples
from dcinet.retrieval.features import Inference, extract_features
from dcinet.retrieval.search import Searcher


@pytest.mark.parametrize("modality", ["image", "audio", "text"])
def test_server_cli_and_evaluate_see_the_same_bits(modality, server_url, multipart, tiny_run,
                                                   tiny_index, tiny_builtin, monkeypatch, capsys):
    trained = load_trained(tiny_run)
    sample = next(s for s in split_samples(trained, tiny_builtin, None) if s.modality == modality)
    evaluated = extract_features(trained, [sample], trained.cfg.eval_feature,
                                 Inference(batch_size=1))
    seen: list[torch.Tensor] = []
    query_tensor = Searcher.query_tensor

    def recording(self, query, modality, name=None):
        x = query_tensor(self, query, modality, name)
        seen.append(x)
        return x

    monkeypatch.setattr(Searcher, "query_tensor", recording)
    text = sample.path.read_text(encoding="utf-8") if modality == "text" else None
    cli_query = ["--text", text] if text is not None else [f"--{modality}", str(sample.path)]
    assert main(["search", str(tiny_index), *cli_query, "-k", "1", "--json"]) == 0
    cli_hit = json.loads(capsys.readouterr().out)["results"][0]
    upload = {"text": text, "modality": "all"} if text is not None else \
        {modality: (sample.path.name, sample.path.read_bytes())}
    content_type, body = multipart({**upload, "k": "1"})
    req = urllib.request.Request(f"{server_url}/api/search", data=body,
                                 headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=60) as resp:
        server_hit = json.loads(resp.read())["results"][0]

    decoded = SampleDecoder(trained.cfg).load(sample)[None]
    assert len(seen) == 2
    for x in seen:  # the CLI's query, then the server's
        assert torch.equal(x, decoded)
        with torch.no_grad():
            feature = trained.model.encode(x, modality, feature=trained.cfg.eval_feature)
        assert torch.equal(feature, torch.from_numpy(evaluated[modality].features))
    assert server_hit["score"] == cli_hit["score"] and server_hit["row"] == cli_hit["row"]
