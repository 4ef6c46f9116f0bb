"""Exact k-nearest neighbours of every item under a :class:`~muse.distance.Distance`.

The N×N similarity σ (D = √(max(0, 2 − 2σ)), so the nearest items are the largest σ) is formed
in square tiles, each once per pair of blocks (I, J ≥ I) and used for the rows of I and, transposed,
for those of J: N²·d/2 multiply-adds in all. Every row keeps its best k so far, merged with the
tile's candidates that can still enter it (:meth:`_Best.add`): the tile side comes from the
working memory (:mod:`muse.budget`), what is kept is the lists (N·k entries per list), and
nothing N×N is ever held. Conventions shared by all
re-ranking methods:

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

from muse.budget import MEMORY, square_side
from muse.distance import Distance, from_similarity, smallest_k

TILE = 2048  # the largest tile side: 16 MB of float32, the fastest size on the CPUs tried
GROUP = 32  # columns per group in the pre-screen of a tile's candidates (_Best.add)
_SELF = 2.0  # σ written at (i, i): above any σ ≤ 1, so an item comes first in its own list


@dataclass(frozen=True)
class Neighbours:
    """Sorted neighbour lists: ``index`` (N, k) int64 and ``dist`` (N, k) float32."""

    index: torch.Tensor
    dist: torch.Tensor


class _Best:
    """The k largest σ of each row seen so far, ordered by (σ descending, item index)."""

    def __init__(self, N: int, k: int, like: torch.Tensor):
        self.k = k
        self.s = torch.full((N, k), -torch.inf, dtype=like.dtype, device=like.device)
        self.i = torch.full((N, k), N, dtype=torch.long, device=like.device)

    def add(self, rows: slice, key: torch.Tensor, items: torch.Tensor, peaks: torch.Tensor) -> None:
        """Merge the best of ``key`` (rows × the columns of the given item indices) into ``rows``.

        ``peaks`` (rows, W // GROUP) are the maxima of key's groups of GROUP consecutive columns.
        Only a group whose maximum reaches a row's k-th best σ so far can change that row, so
        when few groups do for every row, only their columns (and those after the last whole
        group) are merged: the same result for a fraction of the work. Groups of excluded
        cameras only (−∞) never reach: a row with fewer than k allowed items is redone anyway."""
        W = key.shape[1]
        least = self.s[rows, -1:].clamp_min(torch.finfo(key.dtype).min)  # −∞: an excluded camera
        reach = int((peaks >= least).sum(1).max()) if peaks.shape[1] else W
        if 2 * reach * GROUP <= W:  # the candidates of the reaching groups
            top = torch.topk(peaks, reach, dim=1, sorted=False).indices
            cols = (top[:, :, None] * GROUP + torch.arange(GROUP, device=key.device)).flatten(1)
            tail = torch.arange(peaks.shape[1] * GROUP, W, device=key.device)
            cols = torch.cat([cols, tail.expand(len(cols), -1)], 1)
            s = key.gather(1, cols)
            if s.shape[1] > 2 * self.k:  # many candidates: their top-k first
                s, top = torch.topk(s, self.k, dim=1)
                cols = cols.gather(1, top)
            i = items[cols]
        else:
            s, i = torch.topk(key.contiguous(), min(self.k, W), dim=1)
            i = items[i]
        if s.shape[1]:
            self._merge(rows, s, i)

    def _merge(self, rows: slice, s: torch.Tensor, i: torch.Tensor) -> None:
        """Keep, of each row's list and its candidates (σ ``s``, item ``i``), the best k."""
        s, i = torch.cat([self.s[rows], s], 1), torch.cat([self.i[rows], i], 1)
        if s.dtype == torch.float32:
            order = torch.topk(_packed(s, i), self.k, dim=1).indices
        else:
            order = torch.argsort(i, dim=1)
            s, i = s.gather(1, order), i.gather(1, order)
            order = torch.argsort(s, dim=1, descending=True, stable=True)[:, : self.k]
        self.s[rows], self.i[rows] = s.gather(1, order), i.gather(1, order)


def _packed(s: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """int64 keys in the order (σ descending, index ascending) of float32 σ and indices < 2³²:
    σ's IEEE bits made monotone (the magnitude bits of negative values flipped, −0 read as +0)
    above the 32 bits of 2³² − 1 − index, so that one top-k does a two-key sort's work."""
    b = (s + 0.0).view(torch.int32).long()
    b = torch.where(b < 0, b ^ 0x7FFFFFFF, b)
    return (b << 32) | (0xFFFFFFFF - i)


def _peaks(key: torch.Tensor, dim: int) -> torch.Tensor:
    """The maxima of ``key``'s groups of GROUP consecutive entries along ``dim`` (the whole
    groups only), as (entries of the other dimension, groups)."""
    n = key.shape[dim] // GROUP
    if dim == 1:
        return key[:, : n * GROUP].unflatten(1, (n, GROUP)).amax(2)
    return key[: n * GROUP].unflatten(0, (n, GROUP)).amax(1).T


def _restricted_topk(d: torch.Tensor, allowed: torch.Tensor, k: int):
    """Top-k among ``allowed`` columns, continued with the excluded ones where too few are allowed."""
    v, i = smallest_k(d.masked_fill(~allowed, float("inf")), k)
    short = torch.isinf(v).any(1).nonzero(as_tuple=True)[0]
    if len(short):
        vs, is_ = smallest_k(d[short].masked_fill(allowed[short], float("inf")), k)
        n_ok = torch.isfinite(v[short]).sum(1)
        for row, (r, n) in enumerate(zip(short.tolist(), n_ok.tolist())):
            v[r, n:], i[r, n:] = vs[row, : k - n], is_[row, : k - n]
    return v, i


def _keys(s: torch.Tensor, same: torch.Tensor | None, names) -> dict:
    """The tile's ranking key per list: σ, with the excluded cameras at −∞ for ``intra``/``inter``;
    ``same`` None when no pair of the tile shares a camera (``intra`` then has nothing to add)."""
    if same is None:
        return {name: s for name in names if name != "intra"}
    return {
        name: s if name == "all" else s.masked_fill(~same if name == "intra" else same, -torch.inf) for name in names
    }


def knn(D: Distance, k: int, camids: np.ndarray | None = None, memory: int = MEMORY) -> dict:
    """Neighbour lists of all N items and the row maxima max_j D(i, j).

    Returns ``{"all": Neighbours, "row_max": (N,)}`` and, when ``camids`` (N,) is given,
    also ``"intra"`` and ``"inter"`` camera-restricted lists. ``k`` may be an int or a dict
    ``{"all": k, "intra": k, "inter": k}``. A tile holds σ, two masked copies, two masks and
    the gathered candidates (at most half a tile, with their int64 columns), within 5 values and
    2 bytes per entry of ``memory``; its transpose is a view. With cameras, the items are
    visited sorted by camera, so that only the tiles where two cameras' ranges meet need masks.
    """
    ks = k if isinstance(k, dict) else {"all": k, **({"intra": k, "inter": k} if camids is not None else {})}
    for name, kk in ks.items():
        if kk > D.N:
            raise ValueError(f"k = {kk} for '{name}' neighbours exceeds the {D.N} items")
    items = torch.arange(D.N, device=D.dev)
    cams, Dv = None, D
    if camids is not None:
        cams = torch.as_tensor(np.asarray(camids, np.int64), device=D.dev)
        items = torch.argsort(cams, stable=True)  # item of each visited position
        Dv, cv = D.reordered(items), cams[items]
        cam_at = cv.tolist()  # the same on the host, for the per-tile test below
    best = {name: _Best(D.N, kk, D.f) for name, kk in ks.items()}
    s_min = torch.full((D.N,), torch.inf, dtype=D.f.dtype, device=D.dev)
    block = square_side(memory, 5 * D.f.element_size() + 2, TILE)
    starts = range(0, D.N, block)
    for a in starts:
        rows = slice(a, min(a + block, D.N))
        for b in starts[a // block :]:
            cols = slice(b, min(b + block, D.N))
            s = Dv.similarity(rows, cols)
            s_min[rows] = torch.minimum(s_min[rows], s.amin(1))
            if a == b:
                s.diagonal().fill_(_SELF)
            # cameras ascend with the position and cols start after rows: they meet iff this holds
            meet = cams is not None and cam_at[cols.start] <= cam_at[rows.stop - 1]
            same = cv[rows, None] == cv[None, cols] if meet else None
            for name, key in _keys(s, same, ks).items():
                best[name].add(rows, key, items[cols], _peaks(key, 1))
                if a != b:  # the same tile, transposed, for the rows of J
                    best[name].add(cols, key.T, items[rows], _peaks(key, 0))
            if a != b:
                s_min[cols] = torch.minimum(s_min[cols], s.amin(0))
    at = torch.empty_like(items)
    at[items] = torch.arange(D.N, device=D.dev)  # visited position of each item
    result = {name: Neighbours(bb.i[at], from_similarity(bb.s[at])) for name, bb in best.items()}
    for name in set(ks) - {"all"}:
        _short_rows(D, cams, name, ks[name], result[name])
    result["row_max"] = from_similarity(s_min[at])
    return result


def _short_rows(D: Distance, cams: torch.Tensor, name: str, k: int, nb: Neighbours) -> None:
    """Redo, with the excluded cameras after the allowed ones, the rows with fewer than k allowed items."""
    per_camera = torch.bincount(cams)[cams]
    allowed = per_camera if name == "intra" else D.N - per_camera
    for r in (allowed < k).nonzero(as_tuple=True)[0].tolist():
        d = D.block(slice(r, r + 1))
        d[0, r] = -1.0  # self first, whatever else is at 0
        same = cams[r] == cams
        v, i = _restricted_topk(d, (same if name == "intra" else ~same)[None], k)
        nb.index[r], nb.dist[r] = i[0], v[0].clamp_min(0)
