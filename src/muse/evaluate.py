"""Streaming Re-ID evaluation: mAP, CMC and mINP under the standard (Market) protocol.

For query i with identity p_i and camera c_i, gallery items with p_j = p_i and c_j = c_i are
removed; the remaining items are ranked by distance (ties by gallery index). With the m
positives (p_j = p_i, c_j ≠ c_i) at 1-based ranks r_1 < … < r_m:

    AP_i  = (1/m) Σ_k k / r_k                 (mean precision at the hits)
    CMC_i(n) = [r_1 ≤ n]
    INP_i = m / r_m                            (Ye et al., mINP)

Queries without a positive are skipped. Metrics are means over the remaining queries; each
one's AP_i and first-hit rank r_1 are kept (``per_query``) for the intervals of
:mod:`muse.intervals`.

Only the ranks of the positives are needed, and r_k = k + #{valid negatives ranked before
positive k}: per query block the positives' distances are sorted (a few per query) and each
negative is binned among them by binary search, so nothing of size G·log G is sorted and the
distance matrix is visited one block of queries at a time (ranked in chunks of
:data:`CHUNK` rows, whose temporaries stay small enough to be reused by the allocator).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from muse.errors import MuseError

CHUNK = 16


def _padded_positives(pos: torch.Tensor, dist: torch.Tensor):
    """Per row, the positives' distances P (B, M) sorted by (distance, gallery index), +inf
    padded, their gallery indices J, and the count m per row."""
    rows, cols = pos.nonzero(as_tuple=True)  # row-major: cols ascending per row
    m = pos.sum(1)
    M = int(m.max()) if len(m) else 0
    starts = torch.cumsum(m, 0) - m
    slot = torch.arange(len(rows), device=pos.device) - starts[rows]
    P = torch.full((pos.shape[0], M), float("inf"), device=pos.device, dtype=dist.dtype)
    J = torch.full((pos.shape[0], M), pos.shape[1], device=pos.device, dtype=torch.long)
    P[rows, slot] = dist[rows, cols]
    J[rows, slot] = cols
    P, order = torch.sort(P, dim=1, stable=True)
    return P, J.gather(1, order), m


def positive_ranks(dist, q_pids, q_camids, g_pids, g_camids):
    """1-based ranks (B, M) of each query's positives among its valid gallery items, and the
    positive count m (B,); entries k ≥ m of a row are meaningless."""
    same = q_pids[:, None] == g_pids[None, :]
    same_cam = q_camids[:, None] == g_camids[None, :]
    pos = same & ~same_cam
    P, J, m = _padded_positives(pos, dist)
    M = P.shape[1]
    if M == 0:
        return P, m
    neg_d = dist.masked_fill(same, float("inf"))  # same id: positive or removed
    bucket = torch.searchsorted(P, neg_d, right=True)  # positives ranked before each negative
    # A negative tied with positives goes before those with a larger gallery index: it follows
    # the positives k with (P_k, J_k) < (its distance, its index).
    prev = P.gather(1, (bucket - 1).clamp_min(0))
    b, g = ((bucket > 0) & (prev == neg_d) & torch.isfinite(neg_d)).nonzero(as_tuple=True)
    if len(b):
        v, Pt = neg_d[b, g, None], P[b]
        bucket[b, g] = ((Pt < v) | ((Pt == v) & (J[b] < g[:, None]))).sum(1)
    counts = torch.zeros(len(P), M + 1, dtype=torch.long, device=dist.device)
    counts.scatter_add_(1, bucket, torch.ones_like(bucket))
    before = counts.cumsum(1)[:, :M]
    return before + torch.arange(1, M + 1, device=dist.device), m


def evaluate(
    blocks: Iterable[tuple[slice, torch.Tensor]],
    q_pids,
    q_camids,
    g_pids,
    g_camids,
    max_rank: int = 50,
) -> dict:
    """Mean AP, CMC (ranks 1, 5, 10 and the curve to ``max_rank``) and mINP, and ``per_query``:
    the index, AP_i and first-hit rank r_1 of each evaluated query, in query order (numpy arrays).

    ``blocks`` yields ``(rows, D)`` with ``rows`` a slice of query indices and ``D`` the
    (len(rows), G) distances of those queries to the whole gallery, smaller is closer.
    """
    ids = [torch.as_tensor(np.asarray(a).astype(np.int64)) for a in (q_pids, q_camids, g_pids, g_camids)]
    acc = {"ap": 0.0, "inp": 0.0, "cmc": torch.zeros(max_rank, dtype=torch.float64)}
    Q = len(ids[0])
    evaluated, ap_q, first_q = np.zeros(Q, bool), np.zeros(Q), np.zeros(Q, np.int64)
    for rows, dist in blocks:
        if not torch.isfinite(torch.stack(torch.aminmax(dist))).all():  # NaN propagates to both
            raise MuseError(f"distance block for queries {rows.start}..{rows.stop - 1} contains NaN or inf")
        qp, qc, gp, gc = (t.to(dist.device) for t in ids)
        qp, qc = qp[rows], qc[rows]
        for s in range(0, len(dist), CHUNK):
            part = slice(s, s + CHUNK)
            ranks, m = positive_ranks(dist[part], qp[part], qc[part], gp, gc)
            keep, ap, first = _accumulate(ranks, m, acc)
            at = rows.start + s + keep.nonzero().squeeze(1).cpu().numpy()
            evaluated[at], ap_q[at], first_q[at] = True, ap.cpu().numpy(), first.numpy()
    (query,) = evaluated.nonzero()
    n_valid = len(query)
    if n_valid == 0:
        raise MuseError("no query has a valid match in the gallery (same id, other camera)")
    cmc = acc["cmc"] / n_valid
    return {
        "mAP": acc["ap"] / n_valid,
        "R1": float(cmc[0]),
        "R5": float(cmc[min(4, max_rank - 1)]),
        "R10": float(cmc[min(9, max_rank - 1)]),
        "mINP": acc["inp"] / n_valid,
        "cmc": cmc.tolist(),
        "num_queries": n_valid,
        "per_query": {"query": query, "AP": ap_q[query], "first": first_q[query]},
    }


def _accumulate(ranks, m, acc):
    """Add the AP, INP and CMC of the queries with at least one positive to ``acc``; returns which
    queries those are, their AP and their first-hit rank."""
    keep = m > 0
    ranks, m = ranks[keep].double(), m[keep]
    if len(m) == 0:
        return keep, torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    k = torch.arange(1, ranks.shape[1] + 1, device=ranks.device, dtype=torch.float64)
    hit = k[None, :] <= m[:, None]
    ap = ((k / ranks) * hit).sum(1).div(m)
    acc["ap"] += float(ap.sum())
    last = ranks.gather(1, (m - 1)[:, None]).squeeze(1)
    acc["inp"] += float((m / last).sum())
    first = ranks[:, 0].cpu()
    acc["cmc"] += (first[:, None] <= torch.arange(1, len(acc["cmc"]) + 1)).double().sum(0)
    return keep, ap, first.long()
