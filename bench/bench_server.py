"""Benchmark: ``dcinet serve`` under a bounded loopback load of valid and hostile requests.

A server process (``python -m dcinet.app.cli serve``, upload limit ``--max-upload-mb``) over an index
of the built-in dataset (``--index``, or one built as ``bench/bench_search.py`` builds it) listens
on 127.0.0.1 (a free port). A pool of ``--concurrency`` client threads sends ``--requests``
requests over raw loopback sockets, each once, cycling through :func:`build_probes`: valid image /
audio / text searches (multipart with path-like file names, and JSON) and invalid ones (malformed
multipart, wrong or missing content types, oversized and lying Content-Length, decompression
bombs, garbage request lines, unknown methods and paths). The load is bounded in count and time
(``--deadline``); nothing leaves 127.0.0.1.

Figures: requests/s over the whole load (wall clock), p50 / p95 latency in ms of the valid and of
the invalid requests, answers whose status was not the expected one, and the server process's
RSS before and after the load and its peak (VmHWM), read from ``/proc/<pid>/status``.
Run: ``python bench/bench_server.py [--requests 200] [--concurrency 200] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as LoadTimeout
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"
BOUNDARY = "dcinet-bench-7Hq2"
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Probe:
    """One request: its raw bytes, the status it must get and, for a valid search, the query
    ``(modality, payload, k, target)`` the Python API answers in the same way."""

    name: str
    raw: bytes
    expect: int
    query: tuple[str, bytes | str, int, str] | None = None


@dataclass(frozen=True)
class Reply:
    """A parsed response (``status`` 0 when none came) and its latency in seconds."""

    status: int
    content_type: str
    body: bytes
    seconds: float


def request_bytes(method: str, path: str, headers: dict[str, str], body: bytes = b"",
                  content_length: int | None = None) -> bytes:
    """An HTTP/1.1 request; ``Content-Length`` is ``len(body)`` unless given (a lie) or the
    method is GET."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if content_length is not None or method != "GET":
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def multipart(parts: list[tuple[str, bytes]], closed: bool = True) -> tuple[str, bytes]:
    """``(content type, body)`` of a form; each part is ``(its header lines, its data)``."""
    body = b"".join(f"--{BOUNDARY}\r\n{head}\r\n\r\n".encode("utf-8", "surrogateescape") + data
                    + b"\r\n" for head, data in parts)
    return f"multipart/form-data; boundary={BOUNDARY}", body + (f"--{BOUNDARY}--\r\n".encode() if closed else b"")


def file_part(field: str, filename: str, data: bytes) -> tuple[str, bytes]:
    return (f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream", data)


def text_part(field: str, value: str) -> tuple[str, bytes]:
    return f'Content-Disposition: form-data; name="{field}"', value.encode()


def post_search(parts: list[tuple[str, bytes]], **lie) -> bytes:
    content_type, body = multipart(parts)
    return request_bytes("POST", "/api/search", {"Content-Type": content_type}, body, **lie)


def bombs() -> dict[str, bytes]:
    """A 12,000 x 12,000 one-bit PNG (~18 KB, 432 MB as RGB) and a one-hour FLAC of silence
    (~180 KB, 230 MB as float32)."""
    import soundfile as sf
    from PIL import Image

    png, flac = io.BytesIO(), io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(png, "PNG", optimize=True)
    sf.write(flac, np.zeros(16_000 * 3600, np.float32), 16_000, format="FLAC")
    return {"png": png.getvalue(), "flac": flac.getvalue()}


def build_probes(index_dir: Path, decoy_dir: Path, max_upload_mb: float) -> list[Probe]:
    """Valid searches (gallery files and texts of the index as queries, uploaded under path-like
    names that point into ``decoy_dir``, where nothing may appear) and invalid requests."""
    from dcinet.retrieval.index import open_gallery

    gallery = open_gallery(index_dir)
    image = Path(gallery.item("image", 0)["path"]).read_bytes()
    audio = Path(gallery.item("audio", 1)["path"]).read_bytes()
    text = gallery.item("text", 2)["text"]
    names = ["../" * 12 + "etc/passwd", str(decoy_dir / "absolute.png"), "..\\..\\win.ini",
             "nul\x00byte.png", "../" * 3 + "escaped.png"]
    valid = [
        Probe("image, path-like name", post_search([file_part("image", names[0], image),
                                                    text_part("k", "5")]), 200, ("image", image, 5, "all")),
        Probe("image, absolute name", post_search([file_part("image", names[1], image),
                                                   text_part("modality", "audio")]), 200,
              ("image", image, 10, "audio")),
        Probe("audio, windows name", post_search([file_part("audio", names[2], audio),
                                                  text_part("k", "3"), text_part("modality", "image")]),
              200, ("audio", audio, 3, "image")),
        Probe("image, NUL in name", post_search([file_part("image", names[3], image)]), 200,
              ("image", image, 10, "all")),
        Probe("audio, relative escape", post_search([file_part("audio", names[4], audio)]), 200,
              ("audio", audio, 10, "all")),
        Probe("text, multipart", post_search([text_part("text", text), text_part("k", "4")]), 200,
              ("text", text, 4, "all")),
        Probe("text, json", request_bytes("POST", "/api/search", {"Content-Type": JSON_TYPE},
                                          json.dumps({"text": text, "k": 7, "modality": "text"}).encode()),
              200, ("text", text, 7, "text")),
    ]
    content_type, body = multipart([text_part("text", text)])
    big = bombs()
    limit = int(max_upload_mb * 2**20)
    invalid = [
        Probe("boundary mismatch", request_bytes("POST", "/api/search",
                                                 {"Content-Type": "multipart/form-data; boundary=other"}, body), 400),
        Probe("no boundary", request_bytes("POST", "/api/search", {"Content-Type": "multipart/form-data"}, body), 400),
        Probe("truncated multipart", request_bytes("POST", "/api/search", {"Content-Type": content_type},
                                                   body[: len(body) // 2]), 400),
        Probe("part without headers", post_search([("", text.encode())]), 400),
        Probe("text/plain", request_bytes("POST", "/api/search", {"Content-Type": "text/plain"}, b"warbler"), 415),
        Probe("no content type", request_bytes("POST", "/api/search", {}, b"warbler"), 415),
        Probe("broken json", request_bytes("POST", "/api/search", {"Content-Type": JSON_TYPE}, b'{"text": '), 400),
        Probe("deep json", request_bytes("POST", "/api/search", {"Content-Type": JSON_TYPE},
                                         b"[" * 100_000 + b"]" * 100_000), 400),
        Probe("over the limit", request_bytes("POST", "/api/search", {"Content-Type": content_type}, b"",
                                              content_length=limit + 1), 413),
        Probe("lying length", request_bytes("POST", "/api/search", {"Content-Type": content_type}, body,
                                            content_length=len(body) + 1000), 400),
        Probe("two lengths", request_bytes("POST", "/api/search", {"Content-Type": content_type,
                                                                   "Content-Length": "3"}, body), 400),
        Probe("png bomb", post_search([file_part("image", "bomb.png", big["png"])]), 413),
        Probe("flac bomb", post_search([file_part("audio", "bomb.flac", big["flac"])]), 413),
        Probe("not an image", post_search([file_part("image", "a.png", b"\x89PNG\r\n\x1a\nnot really")]), 422),
        Probe("k zero", post_search([text_part("text", text), text_part("k", "0")]), 400),
        Probe("garbage request line", b"\x16\x03\x01\x00\xa5garbage\r\n\r\n", 400),
        Probe("PUT", request_bytes("PUT", "/api/search", {"Content-Type": JSON_TYPE}, b"{}"), 501),
        Probe("unknown path", request_bytes("GET", "/../../etc/passwd", {}), 404),
        Probe("media traversal", request_bytes("GET", "/media/image/..%2f..%2fetc%2fpasswd", {}), 404),
    ]
    return valid + invalid


def send(port: int, raw: bytes, timeout: float = 60.0) -> Reply:
    """Send ``raw``, half-close, read the whole response (the server closes the connection)."""
    started = time.perf_counter()
    chunks = []
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            try:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before the whole body was sent: its answer is still readable
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError:
        pass
    seconds = time.perf_counter() - started
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return Reply(0, "", head, seconds)
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return Reply(status, headers.get("Content-Type", ""), body, seconds)


def run_load(port: int, probes: list[Probe], n: int, concurrency: int, deadline_s: float
             ) -> list[tuple[Probe, Reply]]:
    """``n`` requests cycling through ``probes`` from ``concurrency`` threads; stops waiting at
    ``deadline_s`` (requests still running then are missing from the result)."""
    chosen = [probes[i % len(probes)] for i in range(n)]
    done = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = {pool.submit(send, port, p.raw): p for p in chosen}
        try:
            for future in as_completed(futures, timeout=deadline_s):
                done.append((futures[future], future.result()))
        except LoadTimeout:
            pool.shutdown(wait=False, cancel_futures=True)
    return done


class ServerProcess:
    """``dcinet serve INDEX`` in a child process on a free loopback port; its log in ``log``;
    ``env``: extra environment variables."""

    def __init__(self, index_dir: Path, max_upload_mb: float, log: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None, start_timeout_s: float = 120.0) -> None:
        self.log = log
        self._log_file = open(log, "wb")  # closed in close()
        cmd = [sys.executable, "-m", "dcinet.app.cli", "serve", str(index_dir), "--host", HOST,
               "--port", "0", "--max-upload-mb", str(max_upload_mb)]
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=cwd,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        deadline = time.monotonic() + start_timeout_s
        while (port := self._port()) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"server did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        self.port = port

    def _port(self) -> int | None:
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("serving ") and f"http://{HOST}:" in line:
                return int(line.split(f"http://{HOST}:")[1].split("/")[0])
        return None

    def memory_kib(self) -> dict[str, int]:
        """``{"rss": VmRSS, "peak": VmHWM}`` of the server process, in KiB."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return {"rss": int(fields["VmRSS"].split()[0]), "peak": int(fields["VmHWM"].split()[0])}

    def alive(self) -> bool:
        return self.proc.poll() is None and send(self.port, request_bytes("GET", "/api/health", {})).status == 200

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def latency(replies: list[Reply]) -> dict:
    ms = np.asarray([r.seconds for r in replies]) * 1000.0
    if not len(ms):
        return {"requests": 0}
    return {"requests": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def bench(index_dir: Path, n: int, concurrency: int, max_upload_mb: float, deadline_s: float) -> dict:
    """Start a server, warm it up (every probe once), then time the load; the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        probes = build_probes(index_dir, work, max_upload_mb)
        with ServerProcess(index_dir, max_upload_mb, work / "server.log", cwd=work) as server:
            for probe in probes:
                send(server.port, probe.raw)
            before = server.memory_kib()
            started = time.perf_counter()
            done = run_load(server.port, probes, n, concurrency, deadline_s)
            wall = time.perf_counter() - started
            after = server.memory_kib()
            alive = server.alive()
    unexpected = sorted({f"{p.name}: {r.status}" for p, r in done if r.status != p.expect})
    return {"requests": n, "answered": len(done), "concurrency": concurrency,
            "max_upload_mb": max_upload_mb, "wall_s": round(wall, 2),
            "requests_per_s": round(len(done) / wall, 1),
            "valid": latency([r for p, r in done if p.query is not None]),
            "invalid": latency([r for p, r in done if p.query is None]),
            "unexpected_status": unexpected, "alive_after": alive,
            "rss_before_mib": round(before["rss"] / 1024, 1), "rss_after_mib": round(after["rss"] / 1024, 1),
            "peak_rss_mib": round(after["peak"] / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="a built-in-dataset index (default: build one)")
    parser.add_argument("--work", type=Path, help="folder for the index built here (default: temp)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=200, help="client threads")
    parser.add_argument("--max-upload-mb", type=float, default=0.5)
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds to wait for the load")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.index is None:
        from bench_search import build_builtin_index  # bench/ is on sys.path when run as a script

        args.index = build_builtin_index(args.work or Path(tempfile.mkdtemp()), quick=True)
    result = bench(args.index, args.requests, args.concurrency, args.max_upload_mb, args.deadline)
    print(f"{result['answered']}/{result['requests']} requests from {result['concurrency']} threads "
          f"in {result['wall_s']} s: {result['requests_per_s']} requests/s")
    for kind in ("valid", "invalid"):
        r = result[kind]
        print(f"  {kind}: {r['requests']} requests, p50 {r.get('p50_ms')} ms, p95 {r.get('p95_ms')} ms")
    print(f"  server RSS {result['rss_before_mib']} MiB before, {result['rss_after_mib']} MiB after, "
          f"peak {result['peak_rss_mib']} MiB; unexpected statuses: {result['unexpected_status'] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
