"""Query–candidate pairs for the MLLM's fine-tuning (paper §4.2.3, Table 7).

QCHM: for each training image i, by the base distance D of the encoder's features (itself
excluded), the C_pos same-identity images farthest from i (label "Yes") and the C_neg
other-identity images closest to i (label "No"); fewer when an identity has fewer images.
Ties are broken by index. Random sampling (Table 7's baseline, as the release's
``create_random_dataset``) draws k images (``random_k``, the release's default 5) uniformly from
all the others and labels each by identity, so that almost all are "No".

With a validation hold-out, pairs are mined over the whole training set and assigned to
validation by the identity of their query (as the release).

D is computed for blocks of queries against all N images, so nothing N×N is held.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from muse.distance import Distance, smallest_k
from muse.errors import MuseError
from muse.io import Features, atomic_path

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


def random_pairs(pids: np.ndarray, k: int = 5, seed: int = 0):
    """Yield (i, j, label): k images j ≠ i drawn uniformly without replacement from all the
    others, "Yes" where p_j = p_i and "No" otherwise."""
    rng = np.random.default_rng(seed)
    pids = np.asarray(pids)
    for i in range(len(pids)):
        others = np.delete(np.arange(len(pids)), i)
        for j in rng.choice(others, size=min(k, len(others)), replace=False):
            yield i, int(j), "Yes" if pids[j] == pids[i] else "No"


def split_identities(pids: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of the rows whose identity is held out for validation (round(fraction·K) ids)."""
    if not 0.0 <= fraction < 1.0:
        raise MuseError(f"--val-ids {fraction}: expected a fraction in [0, 1)")
    ids = np.unique(pids)
    held = np.random.default_rng([seed, 1]).choice(ids, size=int(round(fraction * len(ids))), replace=False)
    return np.isin(pids, held)


def mine(
    feats: np.ndarray,
    pids: np.ndarray,
    paths: np.ndarray,
    strategy: str = "qchm",
    cpos: int = 5,
    cneg: int = 5,
    seed: int = 0,
    random_k: int = 5,
) -> list[dict]:
    """Pairs as records ``{"query", "candidate", "label"}`` (paths): C_pos + C_neg per image by
    QCHM, ``random_k`` per image by random sampling."""
    if cpos < 0 or cneg < 0 or random_k < 1:
        raise MuseError(f"cpos = {cpos}, cneg = {cneg}, random_k = {random_k}: expected counts >= 0 (random_k >= 1)")
    if strategy == "qchm":
        pairs = qchm(feats, pids, cpos, cneg)
    elif strategy == "random":
        pairs = random_pairs(pids, random_k, seed)
    else:
        raise MuseError(f"unknown mining strategy '{strategy}': expected one of {', '.join(STRATEGIES)}")
    return [{"query": str(paths[i]), "candidate": str(paths[j]), "label": label} for i, j, label in pairs]


def mine_split(
    f: Features,
    strategy: str = "qchm",
    cpos: int = 5,
    cneg: int = 5,
    val_ids: float = 0.0,
    seed: int = 0,
    random_k: int = 5,
) -> tuple[list[dict], list[dict]]:
    """(training pairs, validation pairs) of the training rows of ``f``: mined over all of them,
    a pair held out when its query's identity is among the round(val_ids·K) held-out ones."""
    if (f.split == "train").any():
        f = f.subset("train")
    held = split_identities(f.pids, val_ids, seed)
    query = {str(p): h for p, h in zip(f.paths, held)}
    records = mine(f.feats, f.pids, f.paths, strategy, cpos, cneg, seed, random_k)
    return [r for r in records if not query[r["query"]]], [r for r in records if query[r["query"]]]


def write_pairs(path, records: list[dict]) -> None:
    """JSONL, one pair per line, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
