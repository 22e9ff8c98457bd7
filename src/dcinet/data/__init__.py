"""The data layer: records, readers, per-modality encodings, checking, batching.

``from dcinet.data import read_collection, SampleLoader, build_train_loader`` works; names are
imported on first use so that ``import dcinet.data.records`` stays free of torch.

- records: :class:`Sample`, :class:`Collection` (one record type for every format)
- readers: :func:`read_collection` (``folder`` / ``fgxmedia`` / ``cub``)
- image / audio / text / video: pure encodings (file or clip folder -> tensor)
- loading: :class:`SampleLoader` (sample -> tensor with a config's sizes)
- check: :func:`check_collection`, :func:`check_root` (``dcinet data check``)
- fgxmedia: :func:`prepare_fgxmedia` (``dcinet data prepare-fgxmedia``)
- sampler, dataset: :class:`MultiModalBatchSampler`, :func:`build_train_loader`
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Sample": "records", "Collection": "records", "MODALITIES": "records", "SPLITS": "records",
    "Problem": "problems", "DecodeError": "problems",
    "read_collection": "readers", "read_folder": "readers", "read_fgxmedia": "fgx_lists",
    "read_cub": "cub", "parse_list_file": "fgx_lists", "ListEntry": "fgx_lists",
    "read_fgxmedia_lists": "fgx_lists",
    "load_image": "image", "load_audio": "audio", "read_audio": "audio",
    "spectrogram_db": "audio", "spectrogram_image": "audio", "spectrogram_grey": "audio",
    "list_frames": "video", "spaced_frames": "video", "load_video_frames": "video",
    "encode_text": "text", "normalize_text": "text", "read_text": "text", "VOCAB_SIZE": "text",
    "SampleLoader": "loading",
    "CheckReport": "check", "check_collection": "check", "check_root": "check",
    "prepare_fgxmedia": "fgxmedia", "PrepareReport": "fgxmedia",
    "MultiModalBatchSampler": "sampler",
    "SampleDataset": "dataset", "collate_by_modality": "dataset", "build_train_loader": "dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dcinet.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dcinet.data.{_EXPORTS[name]}"), name)
