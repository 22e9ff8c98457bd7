"""The serve tests share the retrieval tests' session fixtures (tiny run, embeddings, index) and
add a live server on a free loopback port."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "retrieval_fixtures", Path(__file__).resolve().parents[2] / "retrieval" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
tiny_run, tiny_embeddings, tiny_index = _fixtures.tiny_run, _fixtures.tiny_embeddings, _fixtures.tiny_index
tiny_milvus_index = _fixtures.tiny_milvus_index

MAX_UPLOAD_MB = 0.25


@pytest.fixture(scope="session")
def searcher(tiny_index: Path):
    from dcinet.retrieval.search import Searcher

    return Searcher(tiny_index)


@pytest.fixture(scope="session")
def server_url(searcher) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a server over ``tiny_index`` (upload limit 0.25 MB)."""
    from dcinet.app.serve.app import SearchApp, make_server

    server = make_server(SearchApp(searcher, MAX_UPLOAD_MB), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def encode_multipart(fields: dict[str, str | tuple[str, bytes]]) -> tuple[str, bytes]:
    """``(content type, body)`` of a multipart/form-data form; a tuple value is a file
    ``(filename, bytes)``."""
    boundary = "----dcinet-test-boundary-7f3a"
    chunks = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data = value
            head = (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    "Content-Type: application/octet-stream\r\n")
        else:
            head, data = f'Content-Disposition: form-data; name="{name}"\r\n', value.encode()
        chunks.append(f"--{boundary}\r\n{head}\r\n".encode() + data + b"\r\n")
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


@pytest.fixture
def multipart():
    """:func:`encode_multipart`, for the test modules."""
    return encode_multipart
