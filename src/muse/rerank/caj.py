"""Camera-aware Jaccard re-ranking (CA-Jaccard; Chen et al., CVPR 2024).

Neighbour lists are split by camera (:func:`muse.rerank.knn.knn`): ``intra`` ranks the
same-camera items first (itself included), ``inter`` the other-camera items first; a row with
too few allowed items continues with the excluded ones (the original's +999 penalty).

1. camera-aware k-reciprocal neighbours (CKRNN): S(i) = R_intra(i, k1_intra) ∪ R_inter(i, k1_inter),
   each R taken within its own lists, with no ⅔ expansion;
2. V_i: exp(−D̃) weights on S(i), normalised;
3. local query expansion, ``qe = "camera"`` (CLQE, the CA-Jaccard paper): V_i ← mean of V_j over
   the first k2_intra intra neighbours (itself included) followed by the first k2_inter inter
   neighbours; ``qe = "plain"`` (the original code's ``clqe=False``, used by MUSE's release):
   V_i ← mean of V_j over the k2 nearest items of any camera (itself included);
4. d* = (1 − λ)·d_J + λ·D̃ for queries × gallery (:func:`muse.rerank.jaccard.jaccard_blocks`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from muse.budget import MEMORY
from muse.distance import Distance
from muse.rerank.jaccard import encode, expand, reciprocal_mask, set_pairs
from muse.rerank.knn import knn

QE = ("camera", "plain")


def caj_encoding(
    D: Distance,
    camids: np.ndarray,
    k1_intra: int = 5,
    k1_inter: int = 20,
    k2_intra: int = 3,
    k2_inter: int = 3,
    qe: str = "camera",
    k2: int = 5,
    memory: int = MEMORY,
) -> tuple[sp.csr_matrix, torch.Tensor]:
    """(V after query expansion, row maxima): steps 1–3; ``camids`` has one camera per item (N,).
    ``k2_intra``/``k2_inter`` are read with ``qe = "camera"`` only, ``k2`` with ``"plain"`` only.
    V has at most (k2_intra + k2_inter)·(k1_intra + k1_inter + 2) non-zeros per row ("plain": k2·(…))."""
    camera = qe == "camera"
    ks = {"intra": max(k1_intra + 1, k2_intra if camera else 0), "inter": max(k1_inter + 1, k2_inter if camera else 0)}
    nb = knn(D, ks if camera else {**ks, "all": k2}, camids=camids, memory=memory)
    intra, inter, row_max = nb["intra"].index, nb["inter"].index, nb["row_max"]
    ids = torch.cat([intra[:, : k1_intra + 1], inter[:, : k1_inter + 1]], 1)
    ok = torch.cat([reciprocal_mask(intra, k1_intra, memory), reciprocal_mask(inter, k1_inter, memory)], 1)
    V = encode(D, row_max, *set_pairs(ids, ok))
    return expand(V, torch.cat([intra[:, :k2_intra], inter[:, :k2_inter]], 1) if camera else nb["all"].index), row_max
