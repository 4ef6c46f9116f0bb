"""Dense textbook re-ranking, float64, written from the papers with explicit loops (small N only).

Shared conventions (docs/architecture.md, "Numerical conventions"):
D is the Euclidean distance of L2-normalised features with the
μ overrides; every item is its own first neighbour, then neighbours by (distance, index);
D̃ divides each row by its maximum.
"""

import numpy as np


def dense_distance(q, g, fused=None):
    """(N, N) distance, queries first; ``fused`` = {(i, j): value} for query i, gallery j."""
    f = np.concatenate([q, g]).astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    D = np.sqrt(np.maximum(0.0, 2 - 2 * f @ f.T))
    np.fill_diagonal(D, 0.0)
    for (i, j), v in (fused or {}).items():
        D[i, len(q) + j] = D[len(q) + j, i] = v
    return D


def mu_fused(D, Q, cand, s_yes, s_no, alpha, tau, C):
    """The overrides of eq. 6 with the softmax written out."""
    out = {}
    for i in range(Q):
        for c in range(C):
            j = cand[i, c]
            p_no = np.exp(s_no[i, c] / tau) / (np.exp(s_yes[i, c] / tau) + np.exp(s_no[i, c] / tau))
            out[i, j] = (1 - alpha) * D[i, Q + j] + alpha * 2 * p_no
    return out


def ranking(D, penalty=None):
    """Full neighbour order of every row: itself first, then by (penalty, distance, index)."""
    N = len(D)
    order = np.empty((N, N), dtype=int)
    for i in range(N):
        key_d = D[i].copy()
        key_d[i] = -1.0
        pen = np.zeros(N) if penalty is None else penalty[i]
        order[i] = np.lexsort((np.arange(N), key_d, pen))
    return order


def k_reciprocal(rank, i, k):
    fwd = rank[i, : k + 1]
    return np.array([j for j in fwd if i in rank[j, : k + 1]], dtype=int)


def _jaccard_final(V, D, Q, lam):
    N = len(D)
    Dn = D / D.max(axis=1, keepdims=True)
    out = np.zeros((Q, N - Q))
    for i in range(Q):
        for j in range(Q, N):
            mins = np.minimum(V[i], V[j]).sum()
            maxs = np.maximum(V[i], V[j]).sum()
            out[i, j - Q] = (1 - lam) * (1 - mins / maxs) + lam * Dn[i, j]
    return out


def _weights(D, sets):
    N = len(D)
    Dn = D / D.max(axis=1, keepdims=True)
    V = np.zeros((N, N))
    for i, s in enumerate(sets):
        w = np.exp(-Dn[i, s])
        V[i, s] = w / w.sum()
    return V


def krnn_dense(D, Q, k1=20, k2=6, lam=0.3):
    rank = ranking(D)
    kh = int(np.around(k1 / 2))
    sets = []
    for i in range(len(D)):
        R = k_reciprocal(rank, i, k1)
        expanded = list(R)
        for c in R:
            Rc = k_reciprocal(rank, c, kh)
            if len(np.intersect1d(Rc, R)) > 2 / 3 * len(Rc):
                expanded += list(Rc)
        sets.append(np.unique(expanded))
    V = _weights(D, sets)
    if k2 != 1:
        V = np.stack([V[rank[i, :k2]].mean(0) for i in range(len(D))])
    return _jaccard_final(V, D, Q, lam)


def caj_dense(D, Q, cams, k1_intra=5, k1_inter=20, k2_intra=3, k2_inter=3, lam=0.3, qe="camera", k2=5):
    same = cams[:, None] == cams[None, :]
    intra = ranking(D, penalty=999.0 * ~same)
    inter = ranking(D, penalty=999.0 * same)
    sets = [np.union1d(k_reciprocal(intra, i, k1_intra), k_reciprocal(inter, i, k1_inter)) for i in range(len(D))]
    V = _weights(D, sets)
    if qe == "camera":
        lists = [np.concatenate([intra[i, :k2_intra], inter[i, :k2_inter]]) for i in range(len(D))]
    else:
        rank = ranking(D)
        lists = [rank[i, :k2] for i in range(len(D))]
    V = np.stack([V[lst].mean(0) for lst in lists])
    return _jaccard_final(V, D, Q, lam)


def ecn_dense(D, Q, k=25, t=3, q=8):
    N = len(D)
    rank = ranking(D)
    pos = np.argsort(rank, axis=1)  # pos[i, j]: position of j in i's list
    F = np.maximum(0, k - pos).astype(np.float64)
    r = -F @ F.T
    hoods = []
    for x in range(N):
        first = list(rank[x, 1 : t + 1])
        hoods.append(first + [n for f in first for n in rank[f, 1 : q + 1]])
    M = len(hoods[0])
    out = np.zeros((Q, N - Q))
    for p in range(Q):
        for g in range(Q, N):
            e = (sum(r[i, p] for i in hoods[g]) + sum(r[j, g] for j in hoods[p])) / (2 * M)
            out[p, g - Q] = e if e != 0 else D[p, g]
    return out
