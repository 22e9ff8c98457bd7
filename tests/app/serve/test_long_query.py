"""A long recording is a search query like any other, from the CLI and from the server: with a run
that cuts recordings into windows it is decoded into every kept window
(``SampleDecoder.decode_views``) and embedded as the mean of their logits, as ``embed`` does."""

from __future__ import annotations

import io
import json
import shutil
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from dcinet.app.cli import main
from dcinet.config import load_config, save_config
from dcinet.data.decode import SampleDecoder
from dcinet.retrieval.search import Searcher


@pytest.fixture(scope="module")
def windowed_run(tiny_run: Path, tmp_path_factory) -> Path:
    """``tiny_run``'s weights with a config that cuts recordings into 1 s windows every 0.5 s."""
    run = tmp_path_factory.mktemp("windowed") / "run"
    shutil.copytree(tiny_run, run)
    cfg = load_config(str(run / "config.yaml"), ["audio_seconds=1.0", "audio_hop_seconds=0.5"])
    save_config(cfg, run / "config.yaml")
    return run


@pytest.fixture(scope="module")
def long_recording(tiny_builtin: Path, tmp_path_factory) -> Path:
    """Four built-in test recordings of one class end to end, as one 44.1 kHz stereo FLAC."""
    clips = sorted((tiny_builtin / "audio" / "test").iterdir())[0].glob("*.wav")
    waves = [sf.read(p, dtype="float32")[0] for p in sorted(clips)]
    mono = np.concatenate(waves)
    rate = sf.info(next((tiny_builtin / "audio" / "test").rglob("*.wav"))).samplerate
    up = np.interp(np.arange(int(len(mono) * 44100 / rate)) * rate / 44100, np.arange(len(mono)), mono)
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(path, np.stack([up, up * 0.5], axis=1).astype(np.float32), 44100, format="FLAC")
    return path


def test_a_long_recording_queries_the_cli_and_the_server_alike(windowed_run, long_recording,
                                                               tiny_index, multipart, capsys):
    from dcinet.app.serve.app import SearchApp, make_server

    searcher = Searcher(tiny_index, run=windowed_run)
    views = searcher.query_tensor(long_recording.read_bytes(), "audio")
    decoded = SampleDecoder(searcher.trained.cfg).decode_views(long_recording, "audio", cache=False)
    assert views.shape[0] > 4 and torch.equal(views, decoded)  # the gallery's own decoding path
    with torch.no_grad():
        inner = "embedding" if searcher.feature == "embedding" else "logits"
        encoded = searcher.trained.model.encode(views, "audio", feature=inner)
    want = encoded.mean(0).softmax(0) if searcher.feature == "softmax" else encoded.mean(0)
    np.testing.assert_allclose(searcher.embed_query(long_recording, "audio"), want.numpy(),
                               rtol=1e-5, atol=1e-7)
    api = [h.to_dict() for h in searcher.search_audio(long_recording, k=5)]

    assert main(["search", str(tiny_index), "--audio", str(long_recording), "--run",
                 str(windowed_run), "-k", "5", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["results"]
    assert [(h["id"], h["score"]) for h in cli] == [(h["id"], h["score"]) for h in api]

    server = make_server(SearchApp(searcher, max_upload_mb=4), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        content_type, body = multipart({"audio": (long_recording.name, long_recording.read_bytes()),
                                        "k": "5"})
        req = urllib.request.Request(f"http://127.0.0.1:{server.server_address[1]}/api/search",
                                     data=body, headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=60) as resp:
            served = json.loads(resp.read())["results"]
    finally:
        server.shutdown()
        server.server_close()
    assert [(h["id"], h["score"]) for h in served] == [(h["id"], h["score"]) for h in api]


def test_a_bad_recording_query_is_a_one_line_error(windowed_run, tiny_index, capsys, tmp_path):
    broken = tmp_path / "cut.wav"
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(16000, np.float32), 16000, format="WAV")
    broken.write_bytes(buffer.getvalue()[:10_000])
    assert main(["search", str(tiny_index), "--audio", str(broken), "--run", str(windowed_run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(broken) in err and "truncated" in err
