"""The HTTP server: same results as the Python API and the CLI, every bad upload a 4xx JSON
error while the server keeps serving, media only for indexed items."""

from __future__ import annotations

import http.client
import io
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from dcinet.app.cli import main
from dcinet.retrieval.embed import load_embeddings


def request(url: str, body: bytes | None = None, content_type: str | None = None
            ) -> tuple[int, str, bytes]:
    """``(status, content type, body)`` of a GET (or a POST when ``body`` is given)."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if content_type else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def search(server_url: str, multipart, fields: dict) -> tuple[int, dict]:
    status, ctype, body = request(f"{server_url}/api/search", *reversed(multipart(fields)))
    assert ctype.startswith("application/json")
    return status, json.loads(body)


def assert_still_serving(server_url: str) -> None:
    status, _, body = request(f"{server_url}/api/health")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_health_and_page(server_url, searcher):
    status, _, body = request(f"{server_url}/api/health")
    health = json.loads(body)
    assert status == 200 and health["counts"] == {"image": 8, "audio": 8, "text": 8}
    assert health["query_modalities"] == ["image", "audio", "text"] and health["max_upload_mb"] == 0.25
    assert health["backend"] == "faiss" and health["kind"] == "flat"
    assert health["class_names"] == searcher.classes and health["classes"] == len(searcher.classes) > 1
    status, ctype, page = request(f"{server_url}/")
    assert status == 200 and ctype.startswith("text/html") and b'id="search-form"' in page
    status, ctype, _ = request(f"{server_url}/static/app.js")
    assert status == 200 and ctype.startswith("text/javascript")
    for path in ("/static/../app.py", "/static/forms.py", "/nope", "/api/search"):
        status, _, body = request(f"{server_url}{path}")
        assert status in (404, 405) and "error" in json.loads(body)


def test_http_results_equal_python_api_and_cli(server_url, multipart, searcher, tiny_index,
                                               tiny_embeddings, capsys, tmp_path):
    path = Path(load_embeddings(tiny_embeddings, "image")[1][4]["path"])
    written = tmp_path / "client-side-name.png"  # a path-like upload name must not be written
    status, answer = search(server_url, multipart, {"image": (str(written), path.read_bytes()), "k": "7"})
    assert status == 200 and not written.exists()
    api = [h.to_dict() for h in searcher.search_image(path, k=7)]
    assert [{k: v for k, v in hit.items() if k not in ("media", "thumbnail")} for hit in answer["results"]] == api
    assert main(["search", str(tiny_index), "--image", str(path), "-k", "7", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == api
    status, text_answer = search(server_url, multipart, {"text": "a slender warbler", "modality": "text", "k": "3"})
    assert status == 200 and text_answer["query"] == {"modality": "text", "target": "text", "k": 3,
                                                      "class": None}
    assert [h["text"] for h in text_answer["results"]] == [h.text for h in searcher.search_text("a slender warbler", 3, "text")]


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({"image": ("notes.txt", b"a warbler with a crimson bar")}, 422, "uploaded image cannot be used"),
    ({"audio": ("clip.wav", b"RIFF\x00\x00\x00\x00WAVEfmt garbage")}, 422, "uploaded audio cannot be used"),
    ({"text": "  \n "}, 400, "text query is empty"),
    ({"k": "5"}, 400, "missing query"),
    ({"text": "warbler", "k": "many"}, 400, "k must be an integer"),
    ({"text": "warbler", "k": "0"}, 400, "k must be an integer from 1"),
    ({"text": "warbler", "modality": "video"}, 400, "target modality"),
    ({"text": "warbler", "image": ("a.png", b"x")}, 400, "send one query"),
])
def test_bad_uploads_get_a_readable_4xx_and_the_server_keeps_serving(server_url, multipart, fields,
                                                                     status, message):
    got, answer = search(server_url, multipart, fields)
    assert got == status and set(answer) == {"error"}
    assert message in answer["error"] and "Traceback" not in answer["error"]
    assert " object at 0x" not in answer["error"]
    assert_still_serving(server_url)


def _raw_post(server_url: str, headers: dict[str, str]) -> tuple[int, dict]:
    """POST headers only (no body): the answer must come without the server reading a body."""
    conn = http.client.HTTPConnection(urlsplit(server_url).netloc, timeout=30)
    conn.putrequest("POST", "/api/search")
    for key, value in headers.items():
        conn.putheader(key, value)
    conn.endheaders()
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    conn.close()
    return resp.status, answer


def test_too_large_uploads_are_refused_from_content_length(server_url):
    status, answer = _raw_post(server_url, {"Content-Type": "multipart/form-data; boundary=x",
                                            "Content-Length": str(300 * 1024)})
    assert status == 413 and "upload too large" in answer["error"] and "0.25 MB" in answer["error"]
    status, answer = _raw_post(server_url, {"Content-Type": "multipart/form-data; boundary=x"})
    assert status == 411 and "Content-Length" in answer["error"]
    status, _, body = request(f"{server_url}/api/search", b"hello", "text/plain")
    assert status == 415 and "multipart" in json.loads(body)["error"]
    assert_still_serving(server_url)


def test_internal_errors_hide_their_details(server_url, multipart, searcher, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail of the server")

    monkeypatch.setattr(searcher, "search", broken)
    status, answer = search(server_url, multipart, {"text": "warbler"})
    assert status == 500 and answer == {"error": "internal server error"}
    monkeypatch.undo()
    assert_still_serving(server_url)


def test_media_and_thumbnails_only_for_indexed_items(server_url, tiny_embeddings):
    image = load_embeddings(tiny_embeddings, "image")[1][0]["path"]
    status, ctype, body = request(f"{server_url}/media/image/0")
    assert status == 200 and ctype == "image/png" and body == Path(image).read_bytes()
    status, ctype, body = request(f"{server_url}/thumb/image/0")
    assert status == 200 and max(Image.open(io.BytesIO(body)).size) <= 160
    status, ctype, body = request(f"{server_url}/thumb/audio/3")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (200, 96)
    status, ctype, _ = request(f"{server_url}/media/audio/3")
    assert status == 200 and ctype in ("audio/x-wav", "audio/wav")
    for path in ("/media/image/8", "/media/image/-1", "/media/text/0", "/media/image/..%2f..%2fetc",
                 "/thumb/video/0", "/media/image/0/extra"):
        status, _, body = request(f"{server_url}{path}")
        assert status == 404 and "error" in json.loads(body)


def test_media_type_of_a_file_without_extension_comes_from_its_bytes(searcher, tiny_embeddings,
                                                                     tmp_path, monkeypatch):
    from dcinet.app.serve.app import SearchApp

    audio = Path(load_embeddings(tiny_embeddings, "audio")[1][0]["path"])
    loose = tmp_path / "recording"  # a loose file named without an extension
    loose.write_bytes(audio.read_bytes())
    app = SearchApp(searcher)
    monkeypatch.setattr(app, "gallery_path", lambda modality, row: loose)
    body, ctype = app.media("media", "audio", "0")
    assert body == audio.read_bytes() and ctype == "audio/wav"
    loose.write_bytes(b"neither image nor audio")
    assert app.media("media", "audio", "0")[1] == "application/octet-stream"


@pytest.fixture(scope="module")
def milvus_server_url(tiny_milvus_index):
    """A server over the Milvus Lite twin of ``tiny_index``."""
    from dcinet.app.serve.app import SearchApp, make_server
    from dcinet.retrieval.search import Searcher

    server = make_server(SearchApp(Searcher(tiny_milvus_index)), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_both_backends_answer_alike_with_a_class_filter(server_url, milvus_server_url, multipart,
                                                        tiny_embeddings):
    path = Path(load_embeddings(tiny_embeddings, "audio")[1][5]["path"])
    name = load_embeddings(tiny_embeddings, "image")[1][2]["class_name"]
    fields = {"audio": ("clip.wav", path.read_bytes()), "k": "24", "class": name}
    answers = [search(url, multipart, fields) for url in (server_url, milvus_server_url)]
    assert [status for status, _ in answers] == [200, 200]
    (_, faiss_answer), (_, milvus_answer) = answers
    assert faiss_answer["query"]["class"] == name and faiss_answer["results"]
    assert {h["class_name"] for h in milvus_answer["results"]} == {name}
    by_id = {h["id"]: h for h in faiss_answer["results"]}  # the whole class: same items
    assert {h["id"] for h in milvus_answer["results"]} == set(by_id)
    for hit in milvus_answer["results"]:  # near-ties may swap places, not change scores
        assert hit["score"] == pytest.approx(by_id[hit["id"]]["score"], abs=1e-5)
        assert hit["media"] == by_id[hit["id"]]["media"]
    status, ctype, body = request(f"{milvus_server_url}/media/image/0")
    image = Path(load_embeddings(tiny_embeddings, "image")[1][0]["path"])
    assert status == 200 and body == image.read_bytes()
    status, _, _ = request(f"{milvus_server_url}/media/image/8")
    assert status == 404
    status, answer = search(milvus_server_url, multipart, {"text": "warbler", "class": "Nope"})
    assert status == 400 and "no class 'Nope'" in answer["error"]
    health = json.loads(request(f"{milvus_server_url}/api/health")[2])
    assert health["backend"] == "milvus" and health["counts"] == {"image": 8, "audio": 8, "text": 8}
