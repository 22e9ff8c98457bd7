"""The data layer: records, readers, per-modality decoding, checking, batching.

Import from the modules themselves (``from dcinet.data.readers import read_collection``):

- ``records``: :class:`~dcinet.data.records.Sample`, :class:`~dcinet.data.records.Collection`
  (one record type for every format); ``problems``: what a check or a decoder reports.
- ``readers``: :func:`~dcinet.data.readers.read_collection` (``folder``; ``fgxmedia`` and ``cub``
  in ``fgxmedia`` and ``cub``, shared rules in ``reader_common``).
- ``image`` / ``audio`` / ``text`` / ``video``: pure encodings (file or bytes -> tensor).
- ``decode``: :class:`~dcinet.data.decode.SampleDecoder` (a sample -> the model's input, with a
  config's sizes).
- ``check``: ``dcinet data check``; ``sampler`` and ``dataset``: the training batches.
"""
