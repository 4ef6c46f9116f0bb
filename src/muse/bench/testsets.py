"""The synthetic test sets the benchmarks run on, at the real datasets' sizes."""

from __future__ import annotations

import numpy as np

# Test-set sizes of the real datasets: queries, gallery images, test identities, cameras.
SIZES = {
    "market": dict(Q=3368, G=15913, ids=750, cams=6),
    "msmt17": dict(Q=11659, G=82161, ids=3060, cams=15),
    "tiny": dict(Q=100, G=500, ids=50, cams=6),  # smoke tests
}


def random_test_set(size: str, d: int = 512, seed: int = 0):
    """Random features of a test set of the named size, with pids and cameras drawn uniformly."""
    s = SIZES[size]
    rng = np.random.default_rng(seed)
    feats = {k: rng.standard_normal((s[k], d), dtype=np.float32) for k in ("Q", "G")}
    ids = {k: rng.integers(1, s["ids"] + 1, s[k]) for k in ("Q", "G")}
    cams = {k: rng.integers(1, s["cams"] + 1, s[k]) for k in ("Q", "G")}
    return feats["Q"], feats["G"], ids["Q"], cams["Q"], ids["G"], cams["G"]


def identity_test_set(
    size: str, d: int = 512, seed: int = 0, bias: float = 0.8, noise: float = 1.8, ids: int | None = None
):
    """Features centre[id] + bias·b[camera] + noise·ε (centres, b, ε ~ N(0, 1)) with ids and
    cameras drawn uniformly: the structure of trained Re-ID features that re-ranking works on."""
    s = SIZES[size]
    ids = ids or s["ids"]
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids + 1, d), dtype=np.float32)
    b = bias * rng.standard_normal((s["cams"] + 1, d), dtype=np.float32)
    out = []
    for k in ("Q", "G"):
        pids = rng.integers(1, ids + 1, s[k])
        cams = rng.integers(1, s["cams"] + 1, s[k])
        f = centres[pids] + b[cams] + noise * rng.standard_normal((s[k], d), dtype=np.float32)
        out += [f, pids, cams]
    return out


def hubby_test_set(size: str, d: int = 512, share: float = 0.02, seed: int = 2):
    """:func:`identity_test_set` with a component u shared by all features (as the mean of
    trained features) and a ``share`` of gallery items made of u and noise alone: those hubs
    are near every item and appear in very many neighbour lists, as in poorly adapted features."""
    q, qp, qc, g, gp, gc = identity_test_set(size, d)
    rng = np.random.default_rng(seed)
    u = 1.2 * rng.standard_normal(d, dtype=np.float32)
    hubs = rng.random(len(g)) < share
    g = g + u
    g[hubs] = 4.0 * u + rng.standard_normal((int(hubs.sum()), d), dtype=np.float32)
    return q + u, qp, qc, g, gp, gc


FEATURES = {"clustered": identity_test_set, "hubby": hubby_test_set}  # feature kinds of `bench rerank`
