"""Query–candidate pairs for the MLLM's fine-tuning (paper §4.2.3, Table 7).

QCHM: for each training image i, by the base distance D of the encoder's features (itself
excluded), the C_pos same-identity images farthest from i (label "Yes") and the C_neg
other-identity images closest to i (label "No"); fewer when an identity has fewer images.
Ties are broken by index. Random sampling draws the same numbers uniformly instead.

D is computed for blocks of queries against all N images, so nothing N×N is held.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from muse.distance import Distance, smallest_k
from muse.errors import MuseError
from muse.io import atomic_path


STRATEGIES = ("qchm", "random")


def qchm(feats: np.ndarray, pids: np.ndarray, cpos: int = 5, cneg: int = 5, block: int = 512):
    """Yield (i, j, label) with label "Yes" for hard positives and "No" for hard negatives."""
    D = Distance(feats, np.zeros((0, feats.shape[1]), feats.dtype))
    ids = torch.as_tensor(np.asarray(pids, np.int64), device=D.dev)
    for start in range(0, D.N, block):
        rows = slice(start, min(start + block, D.N))
        d = D.block(rows)
        same = ids[rows, None] == ids[None, :]
        me = torch.arange(rows.start, rows.stop, device=D.dev)
        itself = torch.zeros_like(same)
        itself[me - start, me] = True
        far = smallest_k((-d).masked_fill(~same | itself, float("inf")), min(cpos, D.N))
        near = smallest_k(d.masked_fill(same, float("inf")), min(cneg, D.N))
        lists = [(torch.isfinite(v).tolist(), j.tolist(), label) for (v, j), label in ((far, "Yes"), (near, "No"))]
        for r in range(rows.stop - start):
            for ok, j, label in lists:
                yield from ((start + r, jj, label) for good, jj in zip(ok[r], j[r]) if good)


def random_pairs(pids: np.ndarray, cpos: int = 5, cneg: int = 5, seed: int = 0):
    """Yield (i, j, label): C_pos random same-identity and C_neg random other-identity images per i."""
    rng = np.random.default_rng(seed)
    pids = np.asarray(pids)
    for i in range(len(pids)):
        same = np.flatnonzero(pids == pids[i])
        same = same[same != i]
        other = np.flatnonzero(pids != pids[i])
        for j in rng.choice(same, size=min(cpos, len(same)), replace=False):
            yield i, int(j), "Yes"
        for j in rng.choice(other, size=min(cneg, len(other)), replace=False):
            yield i, int(j), "No"


def split_identities(pids: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of the rows whose identity is held out for validation (round(fraction·K) ids)."""
    if not 0.0 <= fraction < 1.0:
        raise MuseError(f"--val-ids {fraction}: expected a fraction in [0, 1)")
    ids = np.unique(pids)
    held = np.random.default_rng([seed, 1]).choice(ids, size=int(round(fraction * len(ids))), replace=False)
    return np.isin(pids, held)


def mine(feats: np.ndarray, pids: np.ndarray, paths: np.ndarray, strategy: str = "qchm", cpos: int = 5,
         cneg: int = 5, seed: int = 0) -> list[dict]:
    """Pairs as records ``{"query", "candidate", "label"}`` (paths)."""
    if cpos < 0 or cneg < 0:
        raise MuseError(f"cpos = {cpos}, cneg = {cneg}: expected non-negative counts")
    if strategy == "qchm":
        pairs = qchm(feats, pids, cpos, cneg)
    elif strategy == "random":
        pairs = random_pairs(pids, cpos, cneg, seed)
    else:
        raise MuseError(f"unknown mining strategy '{strategy}': expected one of {', '.join(STRATEGIES)}")
    return [{"query": str(paths[i]), "candidate": str(paths[j]), "label": label} for i, j, label in pairs]


def write_pairs(path, records: list[dict]) -> None:
    """JSONL, one pair per line, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
