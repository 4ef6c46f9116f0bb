"""Expanded cross neighbourhood distance (ECN; Sarfraz et al., CVPR 2018), rank-distance variant.

With pos_i(j) the 0-based position of j in i's neighbour list (itself at 0):

- rank weights      F_ij = max(0, k − pos_i(j))        (k non-zeros per row, itself weighted k);
- rank distance     r(a, b) = −F_a · F_b;
- neighbourhood     N(x) = the t nearest of x (itself excluded), then the q nearest of each of
                    those (their selves excluded), a multiset of M = t + t·q items;
- ECN(p, g) = (1/2M) [Σ_{i∈N(g)} r(i, p) + Σ_{j∈N(p)} r(j, g)]
            = −(1/2M) [S_g · F_p + S_p · F_g],   S_x = Σ_{n∈N(x)} F_n.

Where ECN(p, g) = 0 (no shared neighbourhood) the input distance D(p, g) is used instead, as
the released code does. F and S are sparse (k and ≤ M·k non-zeros per row); a query × gallery
block is one product of their concatenations, dense on the columns that hubs make dense and
sparse on the others, as many queries at a time as the working memory allows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from muse.budget import MEMORY, fitting
from muse.distance import Distance
from muse.rerank.knn import knn

_DENSE = 1e-3  # a column shared by more than this fraction of all (query, gallery) pairs is multiplied densely


def ecn_blocks(
    D: Distance, k: int = 25, t: int = 3, q: int = 8, memory: int = MEMORY
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ECN query × gallery distance blocks.

    With X_p = [F_p, S_p] and Y_g = [S_g, F_g] (rows of 2N columns), F_p·S_g + S_p·F_g = X_p·Y_g.
    F has k non-zeros per row and S at most M·k. The columns that many queries and many gallery
    items share (hubs; the pairs they touch exceed ``_DENSE``·Q·G) are multiplied as dense
    matrices, as many as half of ``memory`` holds; the others as sparse ones. All values are
    integers, exact in float32 while k·(1 + M)·k·M·k < 2²⁴ (float64 otherwise). A block of
    queries holds its products and four float64 arrays of G per row (48 bytes per entry) in the
    other half."""
    index = knn(D, max(k, t + 1, q + 1), memory=memory)["all"].index.cpu().numpy()
    N, Q, G = D.N, D.Q, D.G
    rows = np.repeat(np.arange(N), k)
    F = sp.csr_matrix((np.tile(np.arange(k, 0, -1, dtype=np.float64), N), (rows, index[:, :k].ravel())), shape=(N, N))
    first = index[:, 1 : t + 1]  # (N, t)
    second = index[first, 1 : q + 1].reshape(N, t * q)  # (N, t·q)
    hood = np.concatenate([first, second], 1)
    M = hood.shape[1]
    A = sp.csr_matrix((np.ones(N * M), (np.repeat(np.arange(N), M), hood.ravel())), shape=(N, N))
    S = (A @ F).tocsr()
    X, Y = sp.hstack([F[:Q], S[:Q]]).tocsr(), sp.hstack([S[Q:], F[Q:]]).tocsr()
    del A, F, S
    dtype = torch.float32 if k * (1 + M) * k * M * k < 2**24 else torch.float64
    dense = _shared_columns(X, Y, fitting(memory // 2, G * dtype.itemsize, 2 * N))
    light = np.setdiff1d(np.arange(2 * N), dense)
    Xd, Xl = X[:, dense].tocsr(), X[:, light].tocsr()
    YdT, YlT = torch.as_tensor(Y[:, dense].T.toarray(), dtype=dtype, device=D.dev), Y[:, light].T.tocsr()
    del X, Y
    block = fitting(memory // 2, 48 * G, Q)
    for start in range(0, Q, block):
        r = slice(start, min(start + block, Q))
        e = torch.as_tensor((Xl[r] @ YlT).toarray(), device=D.dev)
        e.add_(torch.as_tensor(Xd[r].toarray(), dtype=dtype, device=D.dev) @ YdT).div_(-2 * M)
        none = e == 0
        e[none] = D.block(r, slice(Q, N))[none].double()
        yield r, e


def _shared_columns(X: sp.csr_matrix, Y: sp.csr_matrix, most: int) -> np.ndarray:
    """The columns (at most ``most``, the heaviest) whose (X row, Y row) pairs exceed ``_DENSE``·|X|·|Y|."""
    n = X.shape[1]
    pairs = np.bincount(X.indices, minlength=n).astype(np.float64) * np.bincount(Y.indices, minlength=n)
    heavy = np.flatnonzero(pairs > _DENSE * X.shape[0] * Y.shape[0])
    return np.sort(heavy[np.argsort(-pairs[heavy], kind="stable")[:most]])
