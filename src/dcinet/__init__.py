"""dcinet — fine-grained cross-modal retrieval (image, audio, text) with DCINet.

The public API, imported on first use so that ``import dcinet`` stays light::

    from dcinet import load_config, fit, evaluate_run, load_trained, Searcher

- :func:`load_config` — a preset (``paper``, ``cpu-tiny``) or YAML file plus ``key=value`` overrides;
- :func:`read_collection` — a dataset (``folder``, ``fgxmedia``, ``cub``) as records;
- :func:`build_model` — DCINet (or the FGCrossNet baseline) for a config;
- :func:`fit` — train into a run directory; :func:`load_trained` — load one back;
- :func:`evaluate_run` — the paper's mAP tables; :func:`evaluate_directions` — the same from features;
- :class:`Searcher` — embed a query and search a FAISS index (CLI and server use it too).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "dcinet.config", "load_config": "dcinet.config",
    "DcinetError": "dcinet.errors",
    "read_collection": "dcinet.data.readers",
    "build_model": "dcinet.models",
    "fit": "dcinet.train.loop",
    "load_trained": "dcinet.trained",
    "evaluate_run": "dcinet.retrieval.evaluate",
    "evaluate_directions": "dcinet.retrieval.directions",
    "Searcher": "dcinet.retrieval.search",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dcinet' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
