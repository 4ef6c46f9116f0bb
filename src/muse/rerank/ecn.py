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
block is a sparse product on most columns and a sparse × dense one on the columns of S that hubs
make dense, as many queries at a time as the working memory allows: in scipy on the CPU, in
torch's sparse CSR products on the device of the distances elsewhere (a GPU), with equal values.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from muse.budget import MEMORY, fitting
from muse.distance import Distance
from muse.rerank.knn import knn

_DENSE = 0.04  # a column of S with non-zeros in more than this fraction of its rows is multiplied densely


def ecn_blocks(
    D: Distance, k: int = 25, t: int = 3, q: int = 8, memory: int = MEMORY, engine: str | None = None
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ECN query × gallery distance blocks.

    F has k non-zeros per row and S at most M·k, but the columns of S that hubs (items in very
    many neighbour lists) fill are dense. With H those columns (the ones of S denser than
    ``_DENSE``, as many as half of ``memory`` holds as dense gallery columns) and L the others,

        S_g·F_p + S_p·F_g = [F_p,L, S_p,L]·[S_g,L, F_g,L] + F_p,H·S_g,H + S_p,H·F_g,H:

    the first product is sparse × sparse, the other two sparse × dense with F sparse (k
    non-zeros per row), so a hub costs one pass over the gallery per query that lists it, not
    one per pair of items that share it. All values are integers, exact in float32 while
    k·(1 + M)·k·M·k < 2²⁴ (float64 otherwise). A block of queries holds its products and the
    fallback distances (48 bytes per entry) in the other half of ``memory``. ``engine``: where the
    block products run, ``scipy`` (on the CPU) or ``torch`` (on the distances' device); by default
    scipy for distances on the CPU, torch otherwise."""
    index = knn(D, max(k, t + 1, q + 1), memory=memory)["all"].index.cpu().numpy()
    N, Q, G = D.N, D.Q, D.G
    M = t + t * q
    dtype = np.float32 if k * (1 + M) * k * M * k < 2**24 else np.float64
    rows = np.repeat(np.arange(N), k)
    F = sp.csr_matrix((np.tile(np.arange(k, 0, -1, dtype=dtype), N), (rows, index[:, :k].ravel())), shape=(N, N))
    first = index[:, 1 : t + 1]  # (N, t)
    second = index[first, 1 : q + 1].reshape(N, t * q)  # (N, t·q)
    hood = np.concatenate([first, second], 1)
    A = sp.csr_matrix((np.ones(N * M, dtype), (np.repeat(np.arange(N), M), hood.ravel())), shape=(N, N))
    S = (A @ F).tocsr()
    del A
    H = _dense_columns(S, fitting(memory // 2, G * F.dtype.itemsize, N))
    L = np.setdiff1d(np.arange(N), H)
    FL, SL, FH, SH = F[:, L], S[:, L], F[:, H].tocsr(), S[:, H].tocsr()
    del F, S
    XL, YLT = sp.hstack([FL[:Q], SL[:Q]]).tocsr(), sp.hstack([SL[Q:], FL[Q:]]).T.tocsr()
    del FL, SL
    FpH, SpH, FgH, SgH = FH[:Q], SH[:Q], FH[Q:], np.ascontiguousarray(SH[Q:].T.toarray())  # SgH: (|H|, G)
    block = fitting(memory // 2, 48 * G, Q)
    engine = engine or ("scipy" if D.dev.type == "cpu" else "torch")
    products = {"scipy": _scipy_products, "torch": _torch_products}[engine](XL, YLT, FpH, SpH, FgH, SgH, D.dev)
    for start in range(0, Q, block):
        r = slice(start, min(start + block, Q))
        e = products(r).to(D.dev)
        yield r, torch.where(e == 0, D.block(r, slice(Q, N)).double(), e.double().div_(-2 * M))


def _scipy_products(XL, YLT, FpH, SpH, FgH, SgH, dev: torch.device):
    """The three products of :func:`ecn_blocks` for a block r of queries, in scipy."""
    return lambda r: torch.as_tensor((XL[r] @ YLT).toarray() + FpH[r] @ SgH + (FgH @ SpH[r].T.toarray()).T)


def _torch_products(XL, YLT, FpH, SpH, FgH, SgH, dev: torch.device):
    """The three products of :func:`ecn_blocks` for a block r of queries, on ``dev``: the gallery
    sides moved there once, each block's query rows as it comes."""
    YLT, FgH, SgH = _csr(YLT, dev), _csr(FgH, dev), torch.as_tensor(SgH, device=dev)

    def products(r: slice) -> torch.Tensor:
        e = (_csr(XL[r], dev) @ YLT).to_dense()
        e += _csr(FpH[r], dev) @ SgH
        e += (FgH @ torch.as_tensor(SpH[r].T.toarray(), device=dev)).T
        return e

    return products


def _csr(m: sp.csr_matrix, dev: torch.device) -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor on ``dev``."""
    m = m.tocsr()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.as_tensor(m.indptr, dtype=torch.int64),
            torch.as_tensor(m.indices, dtype=torch.int64),
            torch.as_tensor(m.data),
            size=m.shape,
            device=dev,
            check_invariants=False,  # scipy's CSR is valid by construction
        )


def _dense_columns(S: sp.csr_matrix, most: int) -> np.ndarray:
    """The columns of S (at most ``most``, the densest) with more than ``_DENSE``·rows non-zeros."""
    count = np.bincount(S.indices, minlength=S.shape[1])
    heavy = np.flatnonzero(count > _DENSE * S.shape[0])
    return np.sort(heavy[np.argsort(-count[heavy], kind="stable")[:most]])
