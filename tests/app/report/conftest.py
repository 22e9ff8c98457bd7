"""The report tests share the retrieval tests' session fixture (a 1-epoch tiny run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "retrieval_fixtures", Path(__file__).resolve().parents[2] / "retrieval" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
tiny_run = _fixtures.tiny_run


@pytest.fixture(scope="session")
def tiny_report(tiny_run: Path, tiny_builtin: Path, tmp_path_factory) -> Path:
    """``dcinet report`` of ``tiny_run``: the report folder."""
    from dcinet.app.cli import main

    out = tmp_path_factory.mktemp("report") / "report"
    assert main(["report", str(tiny_run), "--data", str(tiny_builtin), "--out", str(out),
                 "--bootstrap", "200", "-k", "4"]) == 0
    return out
