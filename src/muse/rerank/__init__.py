"""Re-ranking methods on the (μ-fused) distance, exact and without N×N matrices.

Each method takes a :class:`muse.distance.Distance` over queries + gallery and yields
``(rows, d*[rows, gallery])`` blocks of re-ranked distances for the streaming evaluation.
Library defaults are the original papers' values (docs/architecture.md, "Numerical conventions").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from muse.budget import MEMORY
from muse.distance import Distance
from muse.errors import MuseError
from muse.io import Features
from muse.rerank.caj import QE, caj_encoding
from muse.rerank.ecn import ecn_blocks
from muse.rerank.jaccard import jaccard_blocks, overlap_stats
from muse.rerank.krnn import krnn_encoding

if TYPE_CHECKING:
    from muse.fusion import Fusion

DEFAULTS = {
    "none": {},
    "krnn": {"k1": 20, "k2": 6, "lam": 0.3},
    "ecn": {"k": 25, "t": 3, "q": 8},
    "caj": {"k1_intra": 5, "k1_inter": 20, "k2_intra": 3, "k2_inter": 3, "lam": 0.3, "qe": "camera", "k2": 5},
}
METHODS = tuple(DEFAULTS)
PARAMETER_HELP = {
    "k1": "k-reciprocal neighbours",
    "k2": "neighbours of the local query expansion",
    "lam": "weight λ of the original distance",
    "k": "ECN's neighbours",
    "t": "ECN's neighbourhood: the t nearest",
    "q": "ECN's neighbourhood: the q nearest of each of those",
    "k1_intra": "camera-aware k-reciprocal neighbours, same camera",
    "k1_inter": "camera-aware k-reciprocal neighbours, other cameras",
    "k2_intra": "camera-aware query expansion, same camera (qe camera)",
    "k2_inter": "camera-aware query expansion, other cameras (qe camera)",
    "qe": "CA-Jaccard's query expansion: camera (the paper's) or plain (MUSE's release, with k2)",
}
# CA-Jaccard's query expansion reads only the neighbour counts of its mode (muse.rerank.caj)
CAJ_MODE_KEYS = {"camera": ("k2_intra", "k2_inter"), "plain": ("k2",)}


def params_for(method: str, overrides: dict | None = None) -> dict:
    """The method's defaults updated with ``overrides`` (None values ignored), validated; an
    override that the method, or its chosen mode, never reads is refused."""
    if method not in DEFAULTS:
        raise MuseError(f"unknown re-ranking method '{method}': expected one of {', '.join(METHODS)}")
    params = dict(DEFAULTS[method])
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in params:
            raise MuseError(f"re-ranking '{method}' has no parameter '{key}' (it has: {', '.join(params) or 'none'})")
        params[key] = value
    for key, value in params.items():
        if key == "lam":
            if not 0.0 <= value <= 1.0:
                raise MuseError(f"{method} lambda = {value}: expected a value in [0, 1]")
        elif key == "qe":
            if value not in QE:
                raise MuseError(f"{method} qe = {value!r}: expected one of {', '.join(QE)}")
        elif value < (0 if key == "k2_inter" else 1):
            raise MuseError(f"{method} {key} = {value}: expected a positive integer")
    if method == "caj":
        qe = params["qe"]
        unread = {k: mode for mode, keys in CAJ_MODE_KEYS.items() if mode != qe for k in keys}
        for key, mode in unread.items():
            if (overrides or {}).get(key) is not None:
                raise MuseError(
                    f"caj {key} = {overrides[key]}: read with qe = {mode} only "
                    f"(qe = {qe} expands over {', '.join(CAJ_MODE_KEYS[qe])})"
                )
    return params


def neighbourhood(method: str, params: dict) -> int:
    """The largest number of neighbours the method asks of a gallery: every count it reads (K-RNN's
    k1 and k2; ECN's k, and t + 1, q + 1 with the item itself; CA-Jaccard's k1s and the k2s of
    its query expansion)."""
    expansion = [params.get(k, 0) for k in CAJ_MODE_KEYS.get(params.get("qe"), ())]
    return {
        "none": 0,
        "krnn": max(params.get("k1", 0), params.get("k2", 0)),
        "ecn": max(params.get("k", 0), params.get("t", 0) + 1, params.get("q", 0) + 1),
        "caj": max(params.get("k1_intra", 0), params.get("k1_inter", 0), *expansion),
    }[method]


def rerank(
    method: str,
    D: Distance,
    camids: np.ndarray | None = None,
    block: int = 256,
    stats: dict | None = None,
    memory: int = MEMORY,
    **overrides,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Re-ranked query × gallery distance blocks of ``method`` (``none``: D itself, ``block``
    queries at a time). Every stage's working arrays stay within ``memory`` bytes
    (:mod:`muse.budget`). For K-RNN and CA-Jaccard, ``stats`` (a dict) receives what their
    Jaccard step's work depends on (:func:`muse.rerank.jaccard.overlap_stats`)."""
    params = params_for(method, overrides)
    need = neighbourhood(method, params)
    if need > D.G:
        raise MuseError(f"{method} needs {need} neighbours but the gallery has only {D.G} images")
    if method == "none":
        return D.query_blocks(block)
    if method == "ecn":
        return ecn_blocks(D, **params, memory=memory)
    lam = params.pop("lam")
    if method == "krnn":
        V, row_max = krnn_encoding(D, **params, memory=memory)
    elif camids is None:
        raise MuseError("caj needs camera ids")
    else:
        V, row_max = caj_encoding(D, camids, **params, memory=memory)
    if stats is not None:
        stats.update(overlap_stats(V, D.Q))
    return jaccard_blocks(V, D, row_max, lam, memory)


def rerank_features(
    q: Features,
    g: Features,
    method: str,
    params: dict | None = None,
    fusion: Fusion | None = None,
    block: int = 256,
    memory: int = MEMORY,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Re-ranked query × gallery blocks of a test set's features, on the μ-distance of ``fusion``
    when given. Camera ids come from the features."""
    D = Distance(q.feats, g.feats)
    if fusion is not None:
        fusion.apply(D)
    return rerank(method, D, camids=np.concatenate([q.camids, g.camids]), block=block, memory=memory, **(params or {}))
