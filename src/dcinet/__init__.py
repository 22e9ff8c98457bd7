"""dcinet — fine-grained cross-modal retrieval (image, audio, text) with DCINet.

The public API::

    import dcinet
    model = dcinet.load("runs/mine")                        # a trained run
    vectors = model.encode_image(["photo.jpg"])             # (1, D), L2-normalised
    hits = dcinet.Searcher("index/", model=model).search_vector(vectors[0], k=5)

- :func:`load` — a run as an :class:`Encoder` (``encode_image / encode_audio / encode_text``);
- :func:`load_config` — a preset (``paper``, ``cpu-tiny``) or YAML file plus ``key=value`` overrides;
- :func:`read_collection` — a dataset (``folder``, ``fgxmedia``, ``cub``) as records;
- :func:`create_model` — DCINet (or the FGCrossNet baseline) for a config;
- :func:`fit` — train into a run directory; :func:`load_trained` — load one back;
- :func:`evaluate_run` — the paper's mAP tables; :func:`evaluate_directions` — the same from features;
- :class:`Searcher` — embed a query and search an index (the CLI and the server use it too).

``import dcinet`` stays light: the names that need torch are imported on first use, so that the
command line can set torch's threads before torch loads (type checkers and IDEs see them below).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dcinet.config import Config, load_config
from dcinet.errors import DcinetError

if TYPE_CHECKING:
    from dcinet.data.readers import read_collection
    from dcinet.models.factory import create_model, load_trained
    from dcinet.retrieval.directions import evaluate_directions
    from dcinet.retrieval.encoder import Encoder, load
    from dcinet.retrieval.evaluate import evaluate_run
    from dcinet.retrieval.search import Searcher
    from dcinet.train.loop import fit

__version__ = "0.1.0"

_HEAVY = {
    "read_collection": "dcinet.data.readers",
    "create_model": "dcinet.models.factory", "load_trained": "dcinet.models.factory",
    "evaluate_directions": "dcinet.retrieval.directions",
    "evaluate_run": "dcinet.retrieval.evaluate",
    "Encoder": "dcinet.retrieval.encoder", "load": "dcinet.retrieval.encoder",
    "Searcher": "dcinet.retrieval.search",
    "fit": "dcinet.train.loop",
}
"""Where each torch-dependent name of the API lives (the imports under ``TYPE_CHECKING``)."""

__all__ = ["Config", "DcinetError", "Encoder", "Searcher", "create_model", "evaluate_directions",
           "evaluate_run", "fit", "load", "load_config", "load_trained", "read_collection"]


def __getattr__(name: str) -> object:
    if name not in _HEAVY:
        raise AttributeError(f"module 'dcinet' has no attribute {name!r}")
    return getattr(importlib.import_module(_HEAVY[name]), name)
