"""Session fixtures of the retrieval product tests: a 1-epoch run on the tiny built-in dataset,
its test-split embeddings and a flat index of each backend (built once per session, under
pytest's base temp; the Milvus one skipped where Milvus Lite is not installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

# cpu-tiny at its cheapest: 32 px inputs (layer 3 keeps CMSI's maps at 2 x 2), one epoch.
RUN_OVERRIDES = ["epochs=1", "img_size=32", "resize=36", "layer=3", "text_len=48",
                 "batch_per_modality=4", "samples_per_class=2", "num_workers=0",
                 "deterministic=true", "log_every=1000"]


@pytest.fixture(scope="session")
def tiny_run(tiny_builtin: Path, tmp_path_factory) -> Path:
    """A finished 1-epoch ``cpu-tiny`` run directory on ``tiny_builtin``."""
    from dcinet.config import load_config
    from dcinet.train.loop import fit

    run_dir = tmp_path_factory.getbasetemp() / "retrieval-fixture" / "run"
    if not (run_dir / "checkpoint.json").exists():  # shared with the serve tests' conftest
        fit(load_config("cpu-tiny", RUN_OVERRIDES), tiny_builtin, run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def tiny_embeddings(tiny_run: Path, tiny_builtin: Path) -> Path:
    """``dcinet embed`` of ``tiny_run`` on the test split (8 items per modality)."""
    from dcinet.retrieval.embed import embed_run
    from dcinet.retrieval.features import Inference

    out = tiny_run.parent / "emb"
    embed_run(tiny_run, tiny_builtin, out, split="test", chunk_size=4,
              inference=Inference(batch_size=4), progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_index(tiny_embeddings: Path) -> Path:
    """A flat index over every modality of ``tiny_embeddings``."""
    from dcinet.retrieval.index import build_index

    out = tiny_embeddings.parent / "index"
    if not (out / "index.json").exists():
        build_index(tiny_embeddings, out)
    return out


@pytest.fixture(scope="session")
def tiny_milvus_index(tiny_embeddings: Path) -> Path:
    """A flat Milvus Lite index over every modality of ``tiny_embeddings``."""
    pytest.importorskip("milvus_lite", reason="Milvus Lite is not installed "
                                              "(pip install 'dcinet[milvus]')")
    from dcinet.retrieval.index import build_index

    out = tiny_embeddings.parent / "milvus-index"
    if not (out / "index.json").exists():
        build_index(tiny_embeddings, out, backend="milvus")
    return out


@pytest.fixture(scope="session", params=["faiss", "milvus"])
def backend_index(request) -> Path:
    """``tiny_index`` and ``tiny_milvus_index`` in turn."""
    name = "tiny_index" if request.param == "faiss" else "tiny_milvus_index"
    return request.getfixturevalue(name)
