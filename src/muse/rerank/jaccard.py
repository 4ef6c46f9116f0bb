"""Sparse k-reciprocal encoding and Jaccard distance, shared by K-RNN and CA-Jaccard.

With D̃(i, j) = D(i, j) / max_l D(i, l) (each row scaled by its maximum) and N(i, k) the
k + 1 nearest items of i (itself included):

- k-reciprocal set   R(i, k) = {j ∈ N(i, k) : i ∈ N(j, k)};
- encoding           V_ij = exp(−D̃(i, j)) / Σ_{l∈S(i)} exp(−D̃(i, l)) for j in a set S(i), else 0;
- local expansion    V_i ← (1/|L(i)|) Σ_{j∈L(i)} V_j over a neighbour list L(i);
- Jaccard distance   d_J(i, j) = 1 − Σ_c min(V_ic, V_jc) / Σ_c max(V_ic, V_jc)
                               = 1 − m / (2 − m),  m = Σ_c min(V_ic, V_jc)  (rows sum to 1);
- final distance     d*(i, j) = (1 − λ)·d_J(i, j) + λ·D̃(i, j), for queries i and gallery j.

V is a sparse N×N matrix (a few dozen non-zeros per row); m is accumulated for one block of
queries at a time through an inverted index (the columns of V restricted to gallery rows), in
pieces of (query, column, gallery) triples: the blocks' dense arrays and the pieces each take at
most half the working memory (:mod:`muse.budget`) whatever the data, since a column that
many rows share (a hub) splits a block, and even a row, into more pieces instead of growing one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from muse.budget import MEMORY, fitting
from muse.distance import Distance

_TRIPLE_BYTES = 64  # the arrays held per (query, column, gallery) triple in the Jaccard step
_PIECE = 1 << 20  # triples per piece at most: cache-sized pieces run 2.5× faster than 16 M


def reciprocal_mask(index: torch.Tensor, k: int, memory: int = MEMORY) -> torch.Tensor:
    """(N, k+1) bool: whether ``index[i, p]`` (p ≤ k) is a k-reciprocal neighbour of i."""
    fwd = index[:, : k + 1]
    out = torch.empty(fwd.shape, dtype=torch.bool, device=fwd.device)
    rows = fitting(memory, 9 * (k + 1) ** 2, len(fwd))  # the (rows, k+1, k+1) lists and comparison
    for s in range(0, len(fwd), rows):
        me = torch.arange(s, min(s + rows, len(fwd)), device=fwd.device)
        out[me] = (fwd[fwd[me]] == me[:, None, None]).any(-1)
    return out


def set_pairs(ids: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """COO (i, j) of the sets S(i) = {ids[i, l] : valid[i, l]}, duplicates removed."""
    sentinel = torch.iinfo(torch.long).max
    ids = torch.sort(ids.masked_fill(~valid, sentinel), dim=1).values
    keep = ids != sentinel
    keep[:, 1:] &= ids[:, 1:] != ids[:, :-1]
    rows = torch.arange(len(ids), device=ids.device)[:, None].expand_as(ids)
    return rows[keep], ids[keep]


def encode(D: Distance, row_max: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> sp.csr_matrix:
    """V with V_ij ∝ exp(−D̃(i, j)) on the given pairs, each row normalised to sum 1."""
    w = torch.exp(-(D.pairs(i, j) / row_max[i]).double()).cpu().numpy()
    i, j = i.cpu().numpy(), j.cpu().numpy()
    V = sp.csr_matrix((w, (i, j)), shape=(D.N, D.N))
    return sp.diags(1.0 / np.asarray(V.sum(1)).ravel()) @ V


def expand(V: sp.csr_matrix, lists: torch.Tensor) -> sp.csr_matrix:
    """Local query expansion: row i becomes the mean of the rows ``lists[i]`` (repeats count)."""
    n, L = lists.shape
    A = sp.csr_matrix(
        (np.full(n * L, 1.0 / L), (np.repeat(np.arange(n), L), lists.cpu().numpy().ravel())), shape=(n, V.shape[1])
    )
    return (A @ V).tocsr()


def _min_overlap(Vq: sp.csr_matrix, Vg: sp.csc_matrix, G: int, most: int) -> np.ndarray:
    """m[i, j] = Σ_c min(Vq_ic, Vg_jc) as a dense (rows of Vq, G) array, via the columns of Vg.

    The (query, column, gallery) triples are formed for consecutive runs of Vq's non-zeros whose
    columns hold at most ``most`` gallery non-zeros together (or one non-zero, at most G) and that
    span at most max(1, most // G) rows, each run adding into the rows it covers: however many
    rows share a column (hubs), at most max(most, G) triples and as many sums exist at once."""
    q_rows = np.repeat(np.arange(Vq.shape[0]), np.diff(Vq.indptr))
    lens = np.diff(Vg.indptr)[Vq.indices]
    ends = np.cumsum(lens)
    span = max(1, most // G)
    m = np.zeros((Vq.shape[0], G))
    e0 = 0
    while e0 < len(lens):
        done = ends[e0 - 1] if e0 else 0
        by_rows = Vq.indptr[min(q_rows[e0] + span, Vq.shape[0])]
        e1 = max(e0 + 1, min(by_rows, int(np.searchsorted(ends, done + most, side="right"))))
        cols, a, n = Vq.indices[e0:e1], Vq.data[e0:e1], lens[e0:e1]
        r0, r1 = q_rows[e0], q_rows[e1 - 1] + 1
        nz = np.repeat(np.arange(e1 - e0), n)
        pos = Vg.indptr[cols][nz] + np.arange(len(nz)) - np.repeat(np.cumsum(n) - n, n)
        m[r0:r1] += np.bincount(
            (q_rows[e0:e1][nz] - r0) * G + Vg.indices[pos],
            weights=np.minimum(a[nz], Vg.data[pos]),
            minlength=(r1 - r0) * G,
        ).reshape(-1, G)
        e0 = e1
    return m


def overlap_stats(V: sp.csr_matrix, Q: int) -> dict:
    """What the Jaccard step's work depends on: the non-zeros per row of V (max), the largest
    number of gallery rows sharing a column (hubs), and the (query, column, gallery) triples."""
    Vq, Vg = V[:Q].tocsr(), V[Q:].tocsc()
    col = np.diff(Vg.indptr)
    return {
        "max_row_nnz": int(np.diff(V.indptr).max()),
        "max_column_nnz": int(col.max()),
        "triples": int(col[Vq.indices].sum()),
    }


def jaccard_blocks(
    V: sp.csr_matrix, D: Distance, row_max: torch.Tensor, lam: float, memory: int = MEMORY
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(rows, d*[rows, gallery])`` for blocks of queries (see module docstring); a block's
    rows hold four float64 arrays of G (m, d_J, D̃, d*) in half of ``memory``."""
    Q, G = D.Q, D.G
    Vq, Vg = V[:Q].tocsr(), V[Q:].tocsc()
    block, most = fitting(memory // 2, 32 * G, Q), fitting(memory // 2, _TRIPLE_BYTES, _PIECE)
    for start in range(0, Q, block):
        rows = slice(start, min(start + block, Q))
        m = torch.as_tensor(_min_overlap(Vq[rows], Vg, G, most), device=D.dev)
        d_jac = m.div_(2 - m).neg_().add_(1)  # in place: 1 − m / (2 − m)
        d_norm = D.block(rows, slice(Q, D.N)).double().div_(row_max[rows, None].double())
        yield rows, d_jac.mul_(1 - lam).add_(d_norm.mul_(lam))
