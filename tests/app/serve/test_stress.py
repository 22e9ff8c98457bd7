"""The server under stress: hostile requests one by one, then 200 concurrent mixed requests.

The server runs in a child process (``dcinet serve`` on 127.0.0.1, a free port) so that its RSS
can be read from ``/proc``; the requests and the load loop are ``bench/bench_server.py``'s (raw
loopback sockets, bounded in count and time). Every valid search must get exactly the Python
API's answer, every invalid request its expected 4xx/5xx with a JSON ``{"error": message}``;
the server must keep answering, log no traceback, write no file under an uploaded name, and
its memory must stay flat.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

_spec = importlib.util.spec_from_file_location(
    "dcinet_bench_server", Path(__file__).resolve().parents[3] / "bench" / "bench_server.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # its dataclasses look their module up
_spec.loader.exec_module(bench)

MAX_UPLOAD_MB = 0.25
LOAD_REQUESTS = 200
LOAD_DEADLINE_S = 60.0
RSS_GROWTH_MIB = 64  # allowed growth over the first load (thread stacks, allocator arenas)
RSS_DRIFT_MIB = 16  # allowed growth over a second, identical load (a leak would show here)


@pytest.fixture(scope="module")
def stress(tiny_index: Path, tmp_path_factory) -> Iterator[tuple]:
    """``(server, probes, work dir)``; the server's working directory is three levels under the
    work dir, so that an upload named ``../../../escaped.png`` would land in it."""
    work = tmp_path_factory.mktemp("stress")
    cwd = work / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    probes = bench.build_probes(tiny_index, work, MAX_UPLOAD_MB)
    threads = {"OMP_NUM_THREADS": str(torch.get_num_threads())}  # same arithmetic as this process
    with bench.ServerProcess(tiny_index, MAX_UPLOAD_MB, work / "server.log", cwd=cwd, env=threads) as server:
        yield server, probes, work


@pytest.fixture(scope="module")
def expected(stress, searcher) -> dict[str, list[dict]]:
    """The Python API's answer to each valid probe."""
    _, probes, _ = stress
    return {p.name: [h.to_dict() for h in searcher.search(p.query[1], p.query[0], p.query[2], p.query[3])]
            for p in probes if p.query is not None}


def check(probe, reply, expected: dict[str, list[dict]]) -> None:
    assert reply.content_type.startswith("application/json"), (probe.name, reply)
    answer = json.loads(reply.body)
    assert reply.status == probe.expect, (probe.name, answer)
    if probe.query is None:
        assert set(answer) == {"error"} and answer["error"].strip(), probe.name
        assert "Traceback" not in answer["error"]
    else:
        hits = [{k: v for k, v in hit.items() if k not in ("media", "thumbnail")} for hit in answer["results"]]
        assert hits == expected[probe.name], probe.name


def assert_unharmed(server, work: Path) -> None:
    assert server.alive()
    assert not (work / "absolute.png").exists() and not (work / "escaped.png").exists()
    assert "Traceback" not in server.log.read_text(errors="replace")


def test_hostile_requests_one_by_one(stress, expected):
    server, probes, work = stress
    assert {p.expect for p in probes} >= {200, 400, 404, 413, 415, 422, 501}
    for probe in probes:
        check(probe, bench.send(server.port, probe.raw), expected)
    assert_unharmed(server, work)


def test_200_concurrent_mixed_requests_right_answers_and_flat_memory(stress, expected):
    server, probes, work = stress
    for probe in probes:  # warm every code path before the first reading
        bench.send(server.port, probe.raw)
    before = server.memory_kib()
    rounds = []
    for _ in range(2):
        done = bench.run_load(server.port, probes, LOAD_REQUESTS, LOAD_REQUESTS, LOAD_DEADLINE_S)
        assert len(done) == LOAD_REQUESTS
        for probe, reply in done:
            check(probe, reply, expected)
        rounds.append(server.memory_kib())
    assert_unharmed(server, work)
    mib = {"before": before["rss"] / 1024, "after 1": rounds[0]["rss"] / 1024,
           "after 2": rounds[1]["rss"] / 1024, "peak": rounds[1]["peak"] / 1024}
    print("server RSS MiB: " + ", ".join(f"{k} {v:.1f}" for k, v in mib.items()))
    assert mib["after 1"] - mib["before"] < RSS_GROWTH_MIB, mib
    assert mib["after 2"] - mib["after 1"] < RSS_DRIFT_MIB, mib
