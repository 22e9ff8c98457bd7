"""Example queries for the report: per modality a typical and a hard query, their top-k results
over every modality's test items, and the media that show them.

Which queries: of each modality's test items, the one with the median X->all AP ("typical") and
the one with the lowest ("hard"; ties: the first in the test order). Their results are the X->all
ranking (the metrics' scores and tie rule) without the query itself, which would be its own first
result.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcinet.config import Config
from dcinet.data.records import Sample
from dcinet.retrieval.directions import TABLE_ORDER, direction_name
from dcinet.retrieval.features import ModalityFeatures
from dcinet.retrieval.result import RetrievalResult
from dcinet.retrieval.scores import cosine_scores

SNIPPET_CHARS = 160


@dataclass
class Hit:
    """One result: its rank (1-based), cosine score, whether it shares the query's class."""

    sample: Sample
    rank: int
    score: float
    relevant: bool


@dataclass
class Example:
    """A query (``kind``: typical or hard), its X->all AP and its top results."""

    query: Sample
    kind: str
    ap: float
    hits: list[Hit]


def example_queries(features: dict[str, ModalityFeatures], result: RetrievalResult,
                    k: int = 5) -> list[Example]:
    """The typical and the hard query of every modality (one when they coincide), with the top
    ``k`` of their X->all results (query left out).

    Args:
        features: modality -> test features with their samples (as evaluated into ``result``).
        result: the evaluation of those features (its X->all per-query AP picks the queries).
    """
    order = [m for m in TABLE_ORDER if m in features]
    gallery = np.concatenate([features[m].features for m in order])
    samples = [s for m in order for s in features[m].samples]
    sizes = [len(features[m].samples) for m in order]
    offsets = dict(zip(order, np.cumsum([0, *sizes[:-1]]), strict=True))  # first union index
    examples = []
    for m in order:
        ap = result.per_query[direction_name(m, None)]["mAP"]
        picks = {"typical": int(np.argsort(ap, kind="stable")[len(ap) // 2]),
                 "hard": int(np.argmin(ap))}
        for kind, i in picks.items():
            if kind == "hard" and i == picks["typical"]:
                continue
            scores = cosine_scores(features[m].features[i: i + 1], gallery).numpy()[0]
            ranking = [j for j in np.argsort(-scores, kind="stable") if j != offsets[m] + i][:k]
            query = features[m].samples[i]
            hits = [Hit(samples[j], rank, float(scores[j]), samples[j].label == query.label)
                    for rank, j in enumerate(ranking, 1)]
            examples.append(Example(query, kind, float(ap[i]), hits))
    return examples


class MediaWriter:
    """Writes each sample's media once under ``media_dir`` and says how the page shows it."""

    def __init__(self, media_dir: Path, cfg: Config) -> None:
        self.media_dir, self.cfg = media_dir, cfg
        self._done: dict[tuple[str, str], dict] = {}

    def media(self, sample: Sample) -> dict:
        """``{"picture": file name or None, "audio": file name or None, "text": snippet or
        None, "problem": why nothing could be shown or None}``, file names relative to the
        media folder's parent."""
        key = (sample.modality, str(sample.path) if sample.path else sample.text or "")
        if key not in self._done:
            self._done[key] = self._write(sample, f"{sample.modality}-{len(self._done)}")
        return self._done[key]

    def _write(self, sample: Sample, stem: str) -> dict:
        from dcinet.app.serve.media import audio_thumbnail, image_thumbnail
        from dcinet.data.audio import is_picture
        from dcinet.data.problems import DecodeError

        out = {"picture": None, "audio": None, "text": None, "problem": None}
        self.media_dir.mkdir(parents=True, exist_ok=True)
        try:
            if sample.modality == "text":
                text = sample.text if sample.path is None else sample.path.read_text(
                    encoding="utf-8", errors="replace")
                text = " ".join(text.split())
                out["text"] = text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else "")
            elif sample.modality == "image":
                out["picture"] = self._save(f"{stem}.png", image_thumbnail(sample.path))
            elif sample.modality == "audio":
                out["picture"] = self._save(f"{stem}.png", audio_thumbnail(sample.path, self.cfg))
                if not is_picture(sample.path):  # a spectrogram picture has no sound to play
                    copied = self.media_dir / f"{stem}{sample.path.suffix.lower()}"
                    shutil.copyfile(sample.path, copied)
                    out["audio"] = f"{self.media_dir.name}/{copied.name}"
            else:
                out["problem"] = f"no preview for {sample.modality}"
        except (DecodeError, OSError) as e:
            out["problem"] = f"cannot show {sample.describe()}: {e}"
        return out

    def _save(self, name: str, png: bytes) -> str:
        (self.media_dir / name).write_bytes(png)
        return f"{self.media_dir.name}/{name}"
