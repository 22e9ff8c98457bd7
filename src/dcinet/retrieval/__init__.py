"""Retrieval: the paper's mAP protocol and the other metrics (metrics), their intervals
(bootstrap), the direction tables (directions, result), and the search tools."""

from dcinet.retrieval.bootstrap import QueryBootstrap, paired_difference
from dcinet.retrieval.directions import evaluate_directions
from dcinet.retrieval.metrics import (
    average_precision,
    average_precision_parts,
    average_precision_without_self,
    mean_average_precision,
    rank_stats_parts,
)
from dcinet.retrieval.result import RetrievalResult, load_per_query
from dcinet.retrieval.scores import cosine_scores

__all__ = [
    "QueryBootstrap",
    "RetrievalResult",
    "average_precision",
    "average_precision_parts",
    "average_precision_without_self",
    "cosine_scores",
    "evaluate_directions",
    "load_per_query",
    "mean_average_precision",
    "paired_difference",
    "rank_stats_parts",
]
