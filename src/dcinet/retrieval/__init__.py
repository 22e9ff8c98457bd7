"""Retrieval: the paper's mAP protocol (metrics), its direction tables, and the search tools."""

from dcinet.retrieval.directions import RetrievalResult, evaluate_directions
from dcinet.retrieval.metrics import (
    average_precision,
    average_precision_parts,
    average_precision_without_self,
    mean_average_precision,
)
from dcinet.retrieval.scores import cosine_scores

__all__ = [
    "RetrievalResult",
    "average_precision",
    "average_precision_parts",
    "average_precision_without_self",
    "cosine_scores",
    "evaluate_directions",
    "mean_average_precision",
]
