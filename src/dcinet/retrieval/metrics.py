"""Retrieval metric: average precision over the whole ranked gallery, exact and fast.

Protocol (FGCrossNet's, which the paper's numbers follow):

* similarity = cosine: rows are L2-normalised, the score is their dot product (float32);
* ranking = descending score, exact ties broken by gallery index (lower first), i.e. a stable sort
  of ``-score``;
* relevant = same label; AP of a query = mean of precision@rank over the ranks of its relevant
  items (denominator = number of relevant items in the gallery); a query with no relevant item
  scores 0; mAP = mean of AP over queries, accumulated in float64.

The fast path never sorts score rows. AP depends only on how many irrelevant items rank above each
relevant one, so per query the R relevant scores (the *thresholds*) are sorted and every gallery
item only has to be placed among them. Scores are read as their *ordinal* (the float's bit pattern
as an integer that orders like the value; -0.0 and +0.0 both 0), then placed in two steps:

1. a monotone bucketing of the ordinals (at most ``B`` buckets of ``2**shift`` ordinals between
   the lowest and the highest threshold, so buckets are finer near 0 where softmax features put
   most scores); items are counted per bucket with one ``bincount``, and an item whose bucket
   holds no threshold ranks above exactly the thresholds of the lower buckets;
2. the few items sharing a bucket with a threshold (the relevant items among them) are placed
   exactly on int64 keys ``(ordinal, gallery index)``, which is the tie rule: by comparison with
   the bucket's first threshold, by binary search when the bucket holds several.

Everything is vectorised over a chunk of queries (memory O(chunk x gallery)), and the gallery may
be split into parts (modalities): one pass gives the AP over the whole gallery and over each part.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dcinet.errors import DcinetError

# Queries per matrix product. The BLAS picks its kernel, and so the float rounding, by matrix
# shape, so scores are always computed in blocks of exactly this many queries, aligned at query 0:
# every query's scores are then bit-identical however the caller batches the queries.
SCORE_BLOCK = 128
# At most this many buckets per query (fewer for a small gallery): fewer buckets put more items
# into the exact search, more make bigger per-query tables.
_MAX_BUCKETS = 2048
# Default scores per chunk; the cap keeps (query, key) pairs inside int64.
_CHUNK_SCORES = 1 << 21
_MAX_CHUNK_SCORES = 1 << 30


def l2_normalize(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), -0.0 turned into +0.0.

    Args:
        x: (N, D) real features, numpy or torch (CPU).

    Returns:
        (N, D) float32 tensor. The norm is computed in float64, row by row.
    """
    x64 = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if x64.ndim != 2:
        raise DcinetError(f"features must be a 2-D (N, D) array, got shape {tuple(x64.shape)}")
    if not torch.isfinite(x64).all():
        raise DcinetError("features contain NaN or infinite values")
    norms = x64.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, x64 / norms.clamp_min(1e-300), x64).to(torch.float32)
    return unit + 0.0  # -0.0 + 0.0 == +0.0


def score_blocks(query: torch.Tensor, gallery: torch.Tensor,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """Dot products of normalised rows, in blocks of :data:`SCORE_BLOCK` queries.

    Args:
        query: (Nq, D) float32; gallery: (Ng, D) float32, both from :func:`l2_normalize`.
        out: optional float32 buffer with at least nb * Ng * SCORE_BLOCK elements, reused.

    Returns:
        (nb, Ng, SCORE_BLOCK) float32, nb = ceil(Nq / SCORE_BLOCK): ``[b, j, c]`` is the score of
        query ``b * SCORE_BLOCK + c`` with gallery item ``j`` (queries past Nq score 0).
    """
    n, dim = query.shape
    n_gallery = gallery.shape[0]
    if dim != gallery.shape[1]:
        raise DcinetError(f"query and gallery features differ in dimension: {dim} vs "
                          f"{gallery.shape[1]}")
    if n_gallery == 1:  # a matrix-vector product would round differently: use two rows
        return score_blocks(query, gallery.repeat(2, 1))[:, :1].contiguous()
    shape = (-(-n // SCORE_BLOCK), n_gallery, SCORE_BLOCK)
    size = shape[0] * shape[1] * shape[2]
    out = torch.empty(shape) if out is None else out.view(-1)[:size].view(shape)
    block = torch.empty(SCORE_BLOCK, dim)
    gallery = gallery.contiguous()
    for b in range(shape[0]):
        rows = query[b * SCORE_BLOCK: (b + 1) * SCORE_BLOCK]
        block[: len(rows)] = rows
        block[len(rows):] = 0.0
        torch.mm(gallery, block.T, out=out[b])
    return out


def normalized_scores(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """(Nq, Ng) float32 scores of normalised rows; row ``i`` as :func:`score_blocks` computes it.

    Splitting ``query`` into parts that start at multiples of :data:`SCORE_BLOCK` gives the same
    bits as one call.
    """
    blocks = score_blocks(query, gallery)
    return blocks.transpose(1, 2).reshape(-1, gallery.shape[0])[: query.shape[0]]


def cosine_scores(query: np.ndarray | torch.Tensor, gallery: np.ndarray | torch.Tensor
                  ) -> torch.Tensor:
    """Cosine similarity of every query row with every gallery row.

    Args:
        query: (Nq, D) features; gallery: (Ng, D) features (numpy or torch, any real dtype).

    Returns:
        (Nq, Ng) float32 torch tensor (CPU), in [-1, 1] up to rounding: exactly the scores that
        :func:`average_precision` ranks, so every caller sees the same ties.
    """
    return normalized_scores(l2_normalize(query), l2_normalize(gallery))


def _rank_keys(ordinals: torch.Tensor, gallery_index: torch.Tensor, n_gallery: int) -> torch.Tensor:
    """int64 keys in ``[0, 2**32 * n_gallery)`` ordered like the ranking (score desc, index asc).

    Args:
        ordinals: int32 score ordinals; gallery_index: int64 of the same shape.
    """
    return (0x7FFFFFFF - ordinals.to(torch.int64)) * n_gallery + gallery_index


def _ordinals(scores: torch.Tensor, nonnegative: bool) -> torch.Tensor:
    """float32 scores -> int32 that orders like the values (-0.0, +0.0 -> 0), in place.

    Scores of features without negative entries or -0.0 (see :func:`l2_normalize`) are never
    negative nor -0.0, and their bit patterns already are their ordinals. A negative float stores
    its magnitude after the sign bit, so its ordinal is -magnitude.
    """
    bits = scores.view(torch.int32)
    if not nonnegative:
        sign = bits >> 31                                                       # 0 or -1
        bits &= 0x7FFFFFFF
        bits ^= sign
        bits -= sign
    return bits


def _refined_items(ordinals: torch.Tensor, bucket: torch.Tensor, is_thr_bucket: torch.Tensor,
                   bounds: list[int], width: int) -> tuple[torch.Tensor, ...]:
    """Per block and gallery part: cumulative bucket counts, and the items to place exactly.

    Args:
        ordinals: (nb, Ng, P) int32 score ordinals.
        bucket: (nb, Ng, P) int32, query-local bucket ids ``c * width + bucket``.
        is_thr_bucket: (nb, P * width) bool, the buckets that hold a threshold.
        bounds: part boundaries ``[0, ..., Ng]``.

    Returns:
        (nb, parts, P, width) int64: items of the part in this or a lower bucket; and for the M
        items in threshold buckets, (M,) int64 each: query index, part index, gallery index,
        ordinal, and bucket index over the chunk (``query // P * P * width + bucket``).
    """
    nb, n_gallery, p = bucket.shape
    log2_p = p.bit_length() - 1  # P is a power of 2
    counts = torch.empty(nb, len(bounds) - 1, p * width, dtype=torch.int64)
    found = []
    for b in range(nb):
        for m, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            part = bucket[b, start:stop].reshape(-1)
            counts[b, m] = torch.bincount(part, minlength=p * width)
            mask = is_thr_bucket[b].index_select(0, part)
            local = torch.from_numpy(np.flatnonzero(mask.numpy()))  # faster than torch.nonzero
            found.append(((local & (p - 1)) + b * p, torch.full_like(local, m),
                          (local >> log2_p) + start,
                          ordinals[b, start:stop].reshape(-1).index_select(0, local),
                          part.index_select(0, local) + b * p * width))
    cumulative = counts.view(nb, -1, p, width).cumsum_(3)
    return (cumulative, *(torch.cat(column) for column in zip(*found, strict=True)))


def _chunk_average_precision(blocks: torch.Tensor, rel_cols: torch.Tensor, n_rel: torch.Tensor,
                             bounds: list[int], nonnegative: bool,
                             work: torch.Tensor) -> torch.Tensor:
    """AP over the whole gallery and over each part of it, for a chunk of score blocks.

    Args:
        blocks: (nb, Ng, P) float32 from :func:`score_blocks`; overwritten.
        rel_cols: (n, Rmax) int64, n = nb * P: each query's relevant gallery indices, ascending,
            padded (with any valid index) past ``n_rel``.
        n_rel: (n,) int64 number of relevant items per query (0 for padding queries).
        bounds: gallery part boundaries ``[0, b1, ..., Ng]`` (ascending).
        nonnegative: no feature has a negative entry, so no score is negative.
        work: int32 buffer with at least as many elements as ``blocks``, overwritten.

    Returns:
        (n, 1 + parts) float64: AP over the whole gallery, then over each part alone (0 where a
        query has no relevant item there).
    """
    nb, n_gallery, p = blocks.shape
    n, r_max = rel_cols.shape
    query = torch.arange(n)
    valid = torch.arange(r_max)[None, :] < n_rel[:, None]                      # (n, Rmax)
    ordinals = _ordinals(blocks, nonnegative)                                   # (nb, Ng, P)
    rel_flat = ((query // p * n_gallery)[:, None] + rel_cols) * p + (query % p)[:, None]

    # Thresholds (relevant items' scores) in ranking order, padding last; i = threshold rank.
    stride = (1 << 32) * n_gallery  # keys of query r lie in [r * stride, (r + 1) * stride)
    thr = ordinals.view(-1).take(rel_flat)
    thr_keys, order = torch.where(valid, _rank_keys(thr, rel_cols, n_gallery), stride - 1).sort(1)
    thr, rel_flat = thr.gather(1, order), rel_flat.gather(1, order)
    parts = torch.tensor(bounds[1:-1], dtype=torch.int64)
    thr_part = torch.bucketize(rel_cols.gather(1, order), parts, right=True)   # (n, Rmax)

    # 1. bucket = ((ordinal - lowest threshold) >> shift) + 1, clamped to [0, B + 1]: 0 holds all
    # items below the lowest threshold, B + 1 those well above the highest.
    n_buckets = int(min(_MAX_BUCKETS, max(16, n_gallery // 4)))
    width = n_buckets + 2
    t_min = thr.gather(1, (n_rel - 1).clamp_min(0)[:, None]).where(valid[:, :1], 0)
    t_max = thr[:, :1].where(valid[:, :1], 0)
    shift = ((t_max.to(torch.int64) - t_min + 1).double() / n_buckets).log2().ceil()
    per_query = (nb, 1, p)
    bucket = work.view(-1)[: ordinals.numel()].view(ordinals.shape)
    torch.sub(ordinals, t_min.view(per_query), out=bucket)
    bucket >>= shift.clamp_min(0).to(torch.int32).view(per_query)
    bucket.clamp_(-1, n_buckets)
    bucket += (query % p * width + 1).to(torch.int32).view(per_query)
    thr_bucket = bucket.view(-1).take(rel_flat).to(torch.int64)                 # (n, Rmax)
    # Per-bucket tables over the chunk: thresholds in the bucket, rank of its first threshold.
    thr_table = (thr_bucket + (query // p * p * width)[:, None]).masked_select(valid)
    thr_count = torch.zeros(n * width, dtype=torch.int64).index_add_(
        0, thr_table, torch.ones_like(thr_table))
    first_rank = torch.zeros(n * width, dtype=torch.int64).scatter_reduce_(
        0, thr_table, torch.arange(r_max).expand(n, r_max).masked_select(valid), "amin",
        include_self=False)
    cumulative, item_query, item_part, item_gallery, item_ordinal, item_table = _refined_items(
        ordinals, bucket, (thr_count > 0).view(nb, -1), bounds, width)

    # Per part, items in buckets above a threshold's bucket, minus those in threshold buckets
    # (counted exactly below): all of them rank above the threshold.
    n_parts = len(bounds) - 1
    part = torch.arange(n_parts)[None, :, None]
    table_row = (((query // p)[:, None, None] * n_parts + part) * p + (query % p)[:, None, None])
    table_row = (table_row * width).expand(n, n_parts, r_max)
    # a threshold's bucket is >= 1 (bucket 0 is below them all); padding may hold anything
    at = (table_row + (thr_bucket % width).clamp_min(1)[:, None, :]).reshape(-1)
    cumulative = cumulative.view(-1)
    upto = cumulative.index_select(0, at).view(n, n_parts, r_max)
    in_bucket = upto - cumulative.index_select(0, at - 1).view(n, n_parts, r_max)
    above = cumulative.index_select(0, table_row[:, :, 0].reshape(-1) + width - 1)
    above = above.view(n, n_parts, 1) - upto                                    # total - up to it
    first = valid & torch.cat([valid[:, :1], thr_bucket[:, 1:] != thr_bucket[:, :-1]], 1)
    above -= (in_bucket * first[:, None, :]).cumsum(2) - in_bucket

    # 2. items in a bucket that holds a threshold: exact rank among the thresholds by key. Most
    # such buckets hold one threshold: compare with it; binary search in the others.
    item_keys = _rank_keys(item_ordinal, item_gallery, n_gallery)
    pos = first_rank.index_select(0, item_table)
    later = item_keys > thr_keys.view(-1).index_select(0, item_query * r_max + pos)
    pos += later
    more = (later & (thr_count.index_select(0, item_table) > 1)).nonzero().squeeze(1)
    if len(more):
        row_keys = torch.cat([thr_keys, torch.full((n, 1), stride - 1)], 1) + query[:, None] * stride
        more_query = item_query.index_select(0, more)
        pos[more] = torch.searchsorted(
            row_keys.view(-1), item_keys.index_select(0, more) + more_query * stride
        ) - more_query * (r_max + 1)
    exact = torch.zeros(n * n_parts * (r_max + 1), dtype=torch.int64)
    exact.index_add_(0, (item_query * n_parts + item_part) * (r_max + 1) + pos,
                     torch.ones_like(pos))
    # exact[r, m, i]: part-m items ranked between thresholds i - 1 and i, relevant ones included.
    above += exact.view(n, n_parts, r_max + 1)[:, :, :r_max].cumsum(2)
    rel_in_part = (thr_part[:, None, :] == part) & valid[:, None]
    rank_in_part = rel_in_part.cumsum(2)                                        # relevant up to i
    above -= rank_in_part

    # AP = (1/R) sum over relevant items of (rank among relevant) / (that + irrelevant above it)
    k = torch.arange(1, r_max + 1, dtype=torch.float64)
    whole = torch.where(valid, k / (k + above.sum(1).to(torch.float64)), 0.0).sum(1)
    k_part = rank_in_part.to(torch.float64)
    per_part = torch.where(rel_in_part, k_part / (k_part + above.to(torch.float64)), 0.0).sum(2)
    n_in_part = rel_in_part.sum(2).clamp_min(1).to(torch.float64)
    return torch.cat([(whole / n_rel.clamp_min(1).to(torch.float64))[:, None],
                      per_part / n_in_part], 1)


def _as_labels(labels: np.ndarray | torch.Tensor, n: int, what: str) -> np.ndarray:
    out = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if out.shape != (n,):
        raise DcinetError(f"{what} labels must have shape ({n},), got {out.shape}")
    return out


def _relevant_columns(query_labels: np.ndarray, gallery_labels: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per query: n_rel (Nq,) int64 and rel_cols (Nq, Rmax) int64, ascending, padded with 0."""
    classes, gallery_class = np.unique(gallery_labels, return_inverse=True)
    per_class = np.bincount(gallery_class, minlength=len(classes))
    table = np.zeros((len(classes) + 1, max(int(per_class.max(initial=0)), 1)), dtype=np.int64)
    by_class = np.argsort(gallery_class, kind="stable")
    for c, members in enumerate(np.split(by_class, np.cumsum(per_class)[:-1])):  # per class
        table[c, : len(members)] = members
    found = np.searchsorted(classes, query_labels)
    known = found < len(classes)
    known[known] = classes[found[known]] == query_labels[known]
    found = np.where(known, found, len(classes))  # the last table row: no relevant item
    n_rel = np.append(per_class, 0)[found].astype(np.int64)
    return n_rel, table[found]


def average_precision_parts(query_feats: np.ndarray | torch.Tensor,
                            query_labels: np.ndarray | torch.Tensor,
                            gallery_parts: Sequence[tuple[np.ndarray | torch.Tensor,
                                                          np.ndarray | torch.Tensor]],
                            chunk_size: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """AP of every query over a gallery made of parts, and over each part alone, in one pass.

    The whole gallery is the parts concatenated in order (ties resolve by that index); each part
    alone is ranked with its own items only. Same numbers as :func:`average_precision` called once
    on the concatenation and once per part, for the work of the first call.

    Args:
        query_feats: (Nq, D) features; query_labels: (Nq,) class ids (any comparable dtype).
        gallery_parts: one ((Ng_m, D) features, (Ng_m,) class ids) pair per part (at least one).
        chunk_size: queries scored at once, rounded up to a multiple of :data:`SCORE_BLOCK`;
            None = about 2M scores per chunk. Memory is O(chunk_size * Ng); the result does not
            depend on it.

    Returns:
        ((Nq,) float64 AP over the whole gallery, [(Nq,) float64 AP over part m, ...]); a query
        whose label is absent from a gallery scores 0 there.
    """
    if not gallery_parts:
        raise DcinetError("the gallery needs at least one part")
    if chunk_size is not None and chunk_size < 1:
        raise DcinetError(f"chunk_size must be >= 1, got {chunk_size}")
    q = l2_normalize(query_feats)
    g = torch.cat([l2_normalize(f) for f, _ in gallery_parts])
    sizes = [len(labels) for _, labels in gallery_parts]
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    g_labels = _as_labels(np.concatenate([np.asarray(lb) for _, lb in gallery_parts]),
                          g.shape[0], "gallery")
    q_labels = _as_labels(query_labels, q.shape[0], "query")
    if q.shape[1] != g.shape[1]:
        raise DcinetError(f"query and gallery features differ in dimension: {q.shape[1]} vs "
                          f"{g.shape[1]}")
    n_gallery = max(g.shape[0], 1)
    rows = min(chunk_size or _CHUNK_SCORES // n_gallery, _MAX_CHUNK_SCORES // n_gallery)
    rows = max(1, -(-rows // SCORE_BLOCK)) * SCORE_BLOCK  # chunks start at block boundaries
    nonnegative = bool((q >= 0).all() and (g >= 0).all())

    ap = np.zeros((q.shape[0], 1 + len(sizes)), dtype=np.float64)
    buf_size = min(rows, -(-q.shape[0] // SCORE_BLOCK) * SCORE_BLOCK) * max(g.shape[0], 2)
    scores_buf = torch.empty(buf_size)  # reused by every chunk: no fresh pages each time
    work = torch.empty(buf_size, dtype=torch.int32)
    n_rel, rel_cols = _relevant_columns(q_labels, g_labels)
    for start in range(0, q.shape[0], rows):
        stop = min(start + rows, q.shape[0])
        if not n_rel[start:stop].any():  # no query here has a relevant item: AP stays 0
            continue
        blocks = score_blocks(q[start:stop], g, out=scores_buf)
        padded = np.zeros(blocks.shape[0] * SCORE_BLOCK, dtype=np.int64)
        padded[: stop - start] = n_rel[start:stop]
        r_max = int(padded.max())
        cols = np.zeros((len(padded), r_max), dtype=np.int64)
        cols[: stop - start] = rel_cols[start:stop, :r_max]
        chunk_ap = _chunk_average_precision(blocks, torch.from_numpy(cols),
                                            torch.from_numpy(padded), bounds, nonnegative,
                                            work)
        ap[start:stop] = chunk_ap[: stop - start].numpy()
    return ap[:, 0], [ap[:, 1 + m] for m in range(len(sizes))]


def average_precision(query_feats: np.ndarray | torch.Tensor,
                      query_labels: np.ndarray | torch.Tensor,
                      gallery_feats: np.ndarray | torch.Tensor,
                      gallery_labels: np.ndarray | torch.Tensor,
                      chunk_size: int | None = None) -> np.ndarray:
    """Average precision of every query over the whole gallery ranked by cosine similarity.

    Args:
        query_feats: (Nq, D) features; query_labels: (Nq,) class ids (any comparable dtype).
        gallery_feats: (Ng, D) features; gallery_labels: (Ng,) class ids.
        chunk_size: queries scored at once (see :func:`average_precision_parts`).

    Returns:
        (Nq,) float64 AP in [0, 1]; 0 for a query whose label is absent from the gallery.
    """
    whole, _ = average_precision_parts(query_feats, query_labels,
                                       [(gallery_feats, gallery_labels)], chunk_size)
    return whole


def mean_average_precision(query_feats: np.ndarray | torch.Tensor,
                           query_labels: np.ndarray | torch.Tensor,
                           gallery_feats: np.ndarray | torch.Tensor,
                           gallery_labels: np.ndarray | torch.Tensor,
                           chunk_size: int | None = None) -> float:
    """mAP: the float64 mean of :func:`average_precision` over all queries (0.0 if none)."""
    ap = average_precision(query_feats, query_labels, gallery_feats, gallery_labels, chunk_size)
    return float(ap.mean()) if len(ap) else 0.0
