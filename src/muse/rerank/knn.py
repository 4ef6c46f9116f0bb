"""Exact k-nearest neighbours of every item under a :class:`~muse.distance.Distance`.

Rows are processed in blocks (dense B×N distances, then top-k), so memory is O(B·N) and
nothing N×N is ever held. Conventions shared by all re-ranking methods:

- an item is its own first neighbour (D(i, i) = 0 and it is placed first even if another
  item is at distance 0);
- neighbours are listed by increasing D, equal distances by index;
- camera-restricted lists (CA-Jaccard): ``intra`` ranks same-camera items first and ``inter``
  other-camera items first; when a row has fewer than k allowed items, the list continues
  with the excluded ones in the same order (the +999 penalty of the original code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from muse.distance import Distance, smallest_k


@dataclass(frozen=True)
class Neighbours:
    """Sorted neighbour lists: ``index`` (N, k) int64 and ``dist`` (N, k) float32."""

    index: torch.Tensor
    dist: torch.Tensor


def _restricted_topk(d: torch.Tensor, allowed: torch.Tensor, k: int):
    """Top-k among ``allowed`` columns, continued with the excluded ones where too few are allowed."""
    v, i = smallest_k(d.masked_fill(~allowed, float("inf")), k)
    short = torch.isinf(v).any(1).nonzero(as_tuple=True)[0]
    if len(short):
        vs, is_ = smallest_k(d[short].masked_fill(allowed[short], float("inf")), k)
        n_ok = torch.isfinite(v[short]).sum(1)
        for row, (r, n) in enumerate(zip(short.tolist(), n_ok.tolist())):
            v[r, n:], i[r, n:] = vs[row, :k - n], is_[row, :k - n]
    return v, i


def knn(D: Distance, k: int, camids: np.ndarray | None = None, block: int = 256) -> dict:
    """Neighbour lists of all N items and the row maxima max_j D(i, j).

    Returns ``{"all": Neighbours, "row_max": (N,)}`` and, when ``camids`` (N,) is given,
    also ``"intra"`` and ``"inter"`` camera-restricted lists. ``k`` may be an int or a dict
    ``{"all": k, "intra": k, "inter": k}``.
    """
    ks = k if isinstance(k, dict) else {"all": k, **({"intra": k, "inter": k} if camids is not None else {})}
    for name, kk in ks.items():
        if kk > D.N:
            raise ValueError(f"k = {kk} for '{name}' neighbours exceeds the {D.N} items")
    cams = None if camids is None else torch.as_tensor(np.asarray(camids, np.int64), device=D.dev)
    out = {name: ([], []) for name in ks}
    row_max = torch.empty(D.N, device=D.dev, dtype=D.f.dtype)
    for start in range(0, D.N, block):
        rows = slice(start, min(start + block, D.N))
        d = D.block(rows)
        row_max[rows] = d.max(1).values
        self_ = torch.arange(rows.start, rows.stop, device=D.dev)
        d[self_ - start, self_] = -1.0                       # self first, whatever else is at 0
        for name, kk in ks.items():
            if name == "all":
                v, i = smallest_k(d, kk)
            else:
                same = cams[rows, None] == cams[None, :]
                v, i = _restricted_topk(d, same if name == "intra" else ~same, kk)
            out[name][0].append(v.clamp_min_(0))
            out[name][1].append(i)
    result = {name: Neighbours(torch.cat(i), torch.cat(v)) for name, (v, i) in out.items()}
    result["row_max"] = row_max
    return result
