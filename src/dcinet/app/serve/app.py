"""``dcinet serve``: a small HTTP JSON API over a :class:`~dcinet.retrieval.search.Searcher`, and the
page that uses it (standard library ``http.server``, one thread per request).

Routes:

* ``GET /`` — the search page (``static/index.html``; ``GET /static/<file>`` for its js / css);
* ``GET /api/health`` — ``{"status": "ok", "query_modalities", "targets", "counts", "classes"
  (how many), "class_names" (the page's class filter choices), ...}``;
* ``POST /api/search`` — a query, optionally filtered by gallery modality and class (see
  :mod:`dcinet.app.serve.forms`) -> ``{"query": {...},
  "results": [hit + "media" and "thumbnail" URLs]}``;
* ``GET /media/<modality>/<row>`` — a gallery item's file, ``GET /thumb/<modality>/<row>`` — its
  PNG thumbnail (image) or spectrogram thumbnail (audio). Only items listed in the index are
  served: the client names an index row, never a path.

Every client error is a 4xx JSON ``{"error": "..."}`` (413 for an upload over the limit, refused
from its Content-Length before the body is read, and for an image / audio whose header declares
more than ``max_pixels`` pixels / ``max_audio_seconds`` seconds, refused before decoding it: a
few KB of PNG or FLAC can expand to gigabytes; 422 for an image / audio that cannot be decoded),
including http.server's own refusals (bad request line, unknown method, headers too long); an
unexpected failure is a 500 with no details for the client and a traceback in the server log. At
most :data:`MAX_CONCURRENT_SEARCHES` searches decode and embed at once, so that memory stays
bounded however many clients send at the same time.
"""

from __future__ import annotations

import io
import json
import mimetypes
import re
import sys
import threading
import traceback
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from dcinet.app.serve.forms import RequestError, SearchRequest, parse_search
from dcinet.app.serve.media import audio_thumbnail, image_thumbnail
from dcinet.data.kinds import content_type
from dcinet.data.problems import DecodeError
from dcinet.errors import DcinetError
from dcinet.retrieval.search import Hit, Searcher

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_PIXELS = 25_000_000
DEFAULT_MAX_AUDIO_SECONDS = 300.0
MAX_CONCURRENT_SEARCHES = 4
JSON_TYPE = "application/json; charset=utf-8"


def check_decoded_size(data: bytes, modality: str, max_pixels: int, max_seconds: float) -> None:
    """Refuse an uploaded image / audio (or spectrogram picture) whose header declares more than
    ``max_pixels`` pixels or ``max_seconds`` seconds, before anything is decoded.

    Raises:
        RequestError: 413 naming the declared size and the limit. A header that cannot be read
            passes: the decoder then names the problem (a 422).
    """
    from PIL import Image

    from dcinet.data.audio import declared_seconds, is_picture

    if modality == "image" or is_picture(data):
        try:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
        except Image.DecompressionBombError:
            width = height = max_pixels + 1
        except Exception:  # not an image: the decoder's error is clearer
            return
        if width * height > max_pixels:
            raise RequestError(413, f"the uploaded {modality} is too large: {width} x {height} "
                                    f"pixels, the limit is {max_pixels / 1e6:g} megapixels")
        return
    seconds = declared_seconds(data)  # None: not audio, the decoder's error is clearer
    if seconds is not None and seconds > max_seconds:
        length = "an unknown length" if seconds == float("inf") else f"{seconds:.0f} s"
        raise RequestError(413, f"the uploaded audio is too long: {length}, "
                                f"the limit is {max_seconds:g} s")


class SearchApp:
    """What the server does, apart from HTTP: health, search, gallery media.

    Args:
        searcher: the loaded index and model.
        max_upload_mb: largest accepted request body, in MiB.
        max_pixels: largest uploaded image (width x height, as its header declares).
        max_audio_seconds: longest uploaded audio clip (frames / rate, as its header declares).
    """

    def __init__(self, searcher: Searcher, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS) -> None:
        if max_upload_mb <= 0:
            raise DcinetError(f"--max-upload-mb must be positive, got {max_upload_mb}")
        self.searcher = searcher
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_pixels, self.max_audio_seconds = max_pixels, max_audio_seconds
        self._searches = threading.BoundedSemaphore(MAX_CONCURRENT_SEARCHES)
        self.static = {p.name: p for p in STATIC_DIR.iterdir() if p.suffix in STATIC_TYPES}
        self.thumbnail = lru_cache(maxsize=4096)(self._thumbnail)

    def health(self) -> dict:
        info = self.searcher.gallery.info
        return {"status": "ok", "query_modalities": self.searcher.query_modalities,
                "targets": self.searcher.targets, "counts": info["counts"],
                "backend": info["backend"], "kind": info["kind"],
                "feature": info["feature"], "classes": len(info["classes"]),
                "class_names": list(info["classes"]),
                "max_upload_mb": self.max_upload_bytes / (1024 * 1024)}

    def _urls(self, hit: Hit) -> dict:
        media = hit.modality in ("image", "audio") and hit.path is not None
        where = f"{hit.modality}/{hit.row}"
        return {**hit.to_dict(), "media": f"/media/{where}" if media else None,
                "thumbnail": f"/thumb/{where}" if media else None}

    def search(self, content_type: str, body: bytes) -> dict:
        """Run a search body; raises :class:`RequestError` (400 / 413 / 415 / 422) for a bad one."""
        with self._searches:
            request = parse_search(content_type, body)
            if isinstance(request.query, bytes):
                check_decoded_size(request.query, request.modality, self.max_pixels,
                                   self.max_audio_seconds)
            hits = self._search(request)
        return {"query": {"modality": request.modality, "target": request.target, "k": request.k,
                          "class": request.class_name},
                "results": [self._urls(h) for h in hits]}

    def _search(self, request: SearchRequest) -> list[Hit]:
        try:
            return self.searcher.search(request.query, request.modality, request.k,
                                        request.target, name=f"uploaded {request.modality}",
                                        class_name=request.class_name)
        except DecodeError as exc:
            raise RequestError(422, f"the uploaded {request.modality} cannot be used: "
                                    f"{exc.reason}") from None  # reprs already removed
        except DcinetError as exc:
            raise RequestError(400, str(exc)) from None

    def gallery_path(self, modality: str, row: str) -> Path:
        """The file of index row ``row`` of ``modality``; RequestError 404 when there is none."""
        item = self.searcher.gallery.item(modality, int(row)) if row.isdigit() else None
        if item is None or not item["path"]:
            raise RequestError(404, f"no {modality} item {row} in the index")
        return Path(item["path"])

    def _thumbnail(self, modality: str, path: Path) -> bytes:
        if modality == "image":
            return image_thumbnail(path)
        return audio_thumbnail(path, self.searcher.trained.cfg)

    def media(self, kind: str, modality: str, row: str) -> tuple[bytes, str]:
        """``(bytes, content type)`` of a gallery file (``kind="media"``) or its thumbnail."""
        if modality not in ("image", "audio"):
            raise RequestError(404, f"no media for {modality} items")
        path = self.gallery_path(modality, row)
        try:
            if kind == "thumb":
                return self.thumbnail(modality, path), "image/png"
            data = path.read_bytes()
            return data, (mimetypes.guess_type(path.name)[0] or content_type(data[:16])
                          or "application/octet-stream")
        except (OSError, DcinetError):
            raise RequestError(404, f"the {modality} file of item {row} is not available") from None


class Handler(BaseHTTPRequestHandler):
    """HTTP glue: routing, Content-Length checks, JSON errors. ``server.app`` is the app."""

    server_version = "dcinet"
    timeout = 60  # seconds a client may take to send its request

    @property
    def app(self) -> SearchApp:
        return self.server.app  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", cache)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), JSON_TYPE)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, unknown method, headers too long) as
        JSON errors like every other, with a status line even when the request line was not
        HTTP; the connection is closed after them."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        if self.request_version == "HTTP/0.9" and code == 400:  # unparseable request line
            self.request_version = "HTTP/1.0"
        self._json(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def _guarded(self, route) -> None:
        try:
            route(urlsplit(self.path).path)
        except RequestError as exc:
            self._json(exc.status, {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # never a traceback to the client; the server keeps serving
            self.log_error("internal error on %s %s\n%s", self.command, self.path,
                           traceback.format_exc())
            self._json(500, {"error": "internal server error"})

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _get(self, path: str) -> None:
        if path == "/api/health":
            return self._json(200, self.app.health())
        if path in ("/", "/index.html") or path.startswith("/static/"):
            name = "index.html" if not path.startswith("/static/") else path[len("/static/"):]
            if name not in self.app.static:
                raise RequestError(404, f"not found: {path}")
            file = self.app.static[name]
            return self._send(200, file.read_bytes(), STATIC_TYPES[file.suffix], "no-cache")
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] in ("media", "thumb"):
            body, content_type = self.app.media(*parts)
            return self._send(200, body, content_type, "max-age=3600")
        if path == "/api/search":
            raise RequestError(405, "use POST for /api/search")
        raise RequestError(404, f"not found: {path}")

    def _post(self, path: str) -> None:
        if path != "/api/search":
            raise RequestError(404, f"not found: {path}")
        given = self.headers.get_all("Content-Length") or []
        if not given:
            self.close_connection = True
            raise RequestError(411, "a Content-Length header is required")
        raw = given[0]
        if len(set(given)) > 1 or not re.fullmatch(r"[0-9]{1,15}", raw.strip()):
            self.close_connection = True
            raise RequestError(400, f"bad Content-Length {', '.join(given)[:60]!r}")
        length, limit = int(raw), self.app.max_upload_bytes
        if length > limit:
            self.close_connection = True  # the body is never read
            raise RequestError(413, f"upload too large: {length / 2**20:.1f} MB, "
                                    f"the limit is {limit / 2**20:g} MB")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise RequestError(400, "the request body ended early")
        self._json(200, self.app.search(self.headers.get("Content-Type", ""), body))


class SearchServer(ThreadingHTTPServer):
    """One thread per connection; a listen backlog deep enough for a burst of clients (the
    default 5 resets connections as soon as a few dozen arrive at once)."""

    daemon_threads = True
    request_queue_size = 512


def make_server(app: SearchApp, host: str = "127.0.0.1", port: int = 8000,
                quiet: bool = False) -> ThreadingHTTPServer:
    """A threading HTTP server for ``app`` bound to ``host:port`` (port 0 = any free port)."""
    try:
        server = SearchServer((host, port), Handler)
    except OSError as exc:
        raise DcinetError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    server.app = app  # type: ignore[attr-defined]
    server.quiet = quiet  # type: ignore[attr-defined]
    return server


def serve(index_dir: Path, host: str = "127.0.0.1", port: int = 8000,
          max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, run: Path | None = None,
          device: str = "cpu") -> None:
    """Load the index and model (on ``device``), then serve until interrupted (Ctrl-C)."""
    app = SearchApp(Searcher(Path(index_dir), run, device), max_upload_mb)
    server = make_server(app, host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}, reachable from other machines", file=sys.stderr)
    print(f"serving {index_dir} on http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)",
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
