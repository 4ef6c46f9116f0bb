"""k-reciprocal re-ranking (K-RNN; Zhong et al., CVPR 2017) on the sparse encoding.

For every item i (queries and gallery):

1. R(i, k1): the k1-reciprocal neighbours (itself included);
2. expansion: for each c ∈ R(i, k1), add R(c, ⌊k1/2⌉) when
   |R(c, ⌊k1/2⌉) ∩ R(i, k1)| > ⅔·|R(c, ⌊k1/2⌉)|  (⌊·⌉ rounds half to even, as numpy);
3. V_i: exp(−D̃) weights on the expanded set, normalised;
4. local query expansion over the k2 nearest (itself included), when k2 > 1;
5. d* = (1 − λ)·d_J + λ·D̃ for queries × gallery (:func:`muse.rerank.jaccard.jaccard_blocks`).
"""

from __future__ import annotations

import scipy.sparse as sp
import torch

from muse.budget import MEMORY, fitting
from muse.distance import Distance
from muse.rerank.jaccard import encode, expand, reciprocal_mask, set_pairs
from muse.rerank.knn import knn


def expanded_sets(index: torch.Tensor, k1: int, memory: int = MEMORY) -> tuple[torch.Tensor, torch.Tensor]:
    """COO (i, j) of the ⅔-expanded k-reciprocal sets of every item: at most (k1 + 1)(⌊k1/2⌉ + 2)
    pairs per item. Rows are taken in chunks whose membership tests fit in ``memory``."""
    kh = round(k1 / 2)
    recip = reciprocal_mask(index, k1, memory)  # (N, k1+1)
    half = reciprocal_mask(index, kh, memory)  # (N, kh+1)
    fwd, hfwd = index[:, : k1 + 1], index[:, : kh + 1]
    pairs = []
    chunk = fitting(memory, (k1 + 1) * (kh + 1) * (k1 + 1) + 40 * (k1 + 1) * (kh + 2), len(index))
    for s in range(0, len(index), chunk):
        r = slice(s, min(s + chunk, len(index)))
        R, Rok = fwd[r], recip[r]  # R(i, k1) as ids + validity
        H, Hok = hfwd[R], half[R]  # R(c, kh) of each candidate c
        member = ((H[..., None] == R[:, None, None, :]) & Rok[:, None, None, :]).any(-1) & Hok
        accept = Rok & (3 * member.sum(-1) > 2 * Hok.sum(-1))
        ids = torch.cat([R, H.flatten(1)], 1)
        ok = torch.cat([Rok, (Hok & accept[..., None]).flatten(1)], 1)
        i, j = set_pairs(ids, ok)
        pairs.append((i + s, j))
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def krnn_encoding(D: Distance, k1: int = 20, k2: int = 6, memory: int = MEMORY) -> tuple[sp.csr_matrix, torch.Tensor]:
    """(V after local query expansion, row maxima): steps 1–4. V has at most
    k2·(k1 + 1)(⌊k1/2⌉ + 2) non-zeros per row (1,512 with the defaults; a few dozen on real features)."""
    nb = knn(D, max(k1 + 1, k2), memory=memory)
    index, row_max = nb["all"].index, nb["row_max"]
    V = encode(D, row_max, *expanded_sets(index, k1, memory))
    if k2 > 1:
        V = expand(V, index[:, :k2])
    return V, row_max
