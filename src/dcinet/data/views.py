"""Several views of one item: the frames of a video clip, the windows of a long recording.

Training sees ONE view per item and epoch: :func:`pick_view` draws it from ``(seed, epoch, index)``
alone, so a resumed run draws the same views and no global RNG state is consumed. Evaluation,
``embed`` and ``search`` see every view (video: up to ``video_frames`` evenly spaced frames) and
average the model's logits over them (:func:`~dcinet.retrieval.features.encode_views`).
"""

from __future__ import annotations

import numpy as np

_VIEW_STREAM = 7  # last entry of the view-choice rng key, apart from the sampler's streams


def pick_view(count: int, key: tuple[int, ...] | None) -> int:
    """The training view of an item with ``count >= 1`` views: uniform from the non-negative ints
    ``key`` (the dataset passes ``(seed, epoch, index)``), or the middle one ``count // 2`` when
    ``key`` is None."""
    if count <= 0:
        raise ValueError(f"need at least one view, got {count}")
    if key is None:
        return count // 2
    return int(np.random.default_rng([*key, _VIEW_STREAM]).integers(count))
