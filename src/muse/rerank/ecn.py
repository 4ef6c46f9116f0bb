"""Expanded cross neighbourhood distance (ECN; Sarfraz et al., CVPR 2018), rank-distance variant.

With pos_i(j) the 0-based position of j in i's neighbour list (itself at 0):

- rank weights      F_ij = max(0, k − pos_i(j))        (k non-zeros per row, itself weighted k);
- rank distance     r(a, b) = −F_a · F_b;
- neighbourhood     N(x) = the t nearest of x (itself excluded), then the q nearest of each of
                    those (their selves excluded), a multiset of M = t + t·q items;
- ECN(p, g) = (1/2M) [Σ_{i∈N(g)} r(i, p) + Σ_{j∈N(p)} r(j, g)]
            = −(1/2M) [S_g · F_p + S_p · F_g],   S_x = Σ_{n∈N(x)} F_n.

Where ECN(p, g) = 0 (no shared neighbourhood) the input distance D(p, g) is used instead, as
the released code does. F and S are sparse (k and ≤ M·k non-zeros per row); query × gallery
blocks are two sparse products, as many queries at a time as the working memory allows.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from muse.distance import Distance
from muse.rerank.budget import MEMORY, fitting
from muse.rerank.knn import knn


def ecn(D: Distance, k: int = 25, t: int = 3, q: int = 8, memory: int = MEMORY) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ECN query × gallery distance blocks. F has k non-zeros per row and S at most M·k; a
    block of queries holds the two sparse products and four dense float64 arrays of G per row
    (at most 48 bytes per entry) within ``memory``."""
    index = knn(D, max(k, t + 1, q + 1), memory=memory)["all"].index.cpu().numpy()
    N, Q = D.N, D.Q
    rows = np.repeat(np.arange(N), k)
    F = sp.csr_matrix((np.tile(np.arange(k, 0, -1, dtype=np.float64), N), (rows, index[:, :k].ravel())),
                      shape=(N, N))
    first = index[:, 1:t + 1]                                    # (N, t)
    second = index[first, 1:q + 1].reshape(N, t * q)             # (N, t·q)
    hood = np.concatenate([first, second], 1)
    M = hood.shape[1]
    A = sp.csr_matrix((np.ones(N * M), (np.repeat(np.arange(N), M), hood.ravel())), shape=(N, N))
    Fq, Sq = F[:Q], (A[:Q] @ F).tocsr()
    FgT, SgT = F[Q:].T.tocsr(), (A[Q:] @ F).T.tocsr()
    block = fitting(memory, 48 * D.G, Q)
    for start in range(0, Q, block):
        r = slice(start, min(start + block, Q))
        shared = (Fq[r] @ SgT + Sq[r] @ FgT).toarray()
        e = torch.as_tensor(-shared / (2 * M), device=D.dev)
        base = D.block(r, slice(Q, N)).double()
        yield r, torch.where(e != 0, e, base)
