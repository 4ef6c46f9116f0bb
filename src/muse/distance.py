"""Distances between Re-ID features, and MUSE's μ-fusion (paper eq. 6; docs/architecture.md,
"Numerical conventions").

The base distance is the Euclidean distance between L2-normalised features,

    D(i, j) = ‖f̂_i − f̂_j‖₂ = √(max(0, 2 − 2 f̂_i·f̂_j)) ∈ [0, 2],     D(i, i) = 0.

μ-fusion replaces, for each query i and each of its top-C gallery candidates j by D,

    D(i, j) ← (1 − α)·D(i, j) + α·2·P_no(i, j),
    P_no = exp(s_no/τ) / (exp(s_yes/τ) + exp(s_no/τ)),

and D(j, i) gets the same value; gallery–gallery and query–query entries are unchanged.

:class:`Distance` is this distance over the N = Q + G items (queries first), defined by the
features and the sparse overrides: it hands out blocks of rows and arbitrary pairs, never the
N×N matrix.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch

from muse.device import default_device
from muse.errors import MuseError

SCALE = 2.0  # the range of D, so P_no ∈ [0, 1] is put on the same scale


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    """f̂ = f / ‖f‖₂ row-wise (a zero row stays zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def from_similarity(s: torch.Tensor) -> torch.Tensor:
    """D = √(max(0, 2 − 2σ)) of similarities σ = f̂_i·f̂_j, computed in place in ``s``."""
    return s.mul_(-2).add_(2).clamp_min_(0).sqrt_()


def base_distance(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """D between already L2-normalised rows ``q`` (B, d) and ``g`` (G, d): (B, G)."""
    return from_similarity(q @ g.T)


def base_distance_blocks(
    query: np.ndarray, gallery: np.ndarray, block: int = 256, dev: torch.device | None = None
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(rows, D[rows])`` for consecutive blocks of query rows; features are normalised here."""
    return Distance(query, gallery, dev=dev).query_blocks(block)


def smallest_k(d: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest entries of each row and their columns, ordered by (value, column)."""
    v, i = torch.topk(d, k, dim=1, largest=False, sorted=True)
    order = torch.argsort(i, dim=1)
    v, i = v.gather(1, order), i.gather(1, order)
    order = torch.argsort(v, dim=1, stable=True)
    return v.gather(1, order), i.gather(1, order)


def p_no(s_yes: torch.Tensor, s_no: torch.Tensor, tau: float) -> torch.Tensor:
    """P_no = softmax([s_yes, s_no] / τ)[no] = σ((s_no − s_yes) / τ)."""
    return torch.sigmoid((s_no - s_yes) / tau)


def mu_fuse(d: torch.Tensor, s_yes: torch.Tensor, s_no: torch.Tensor, alpha: float, tau: float) -> torch.Tensor:
    """(1 − α)·D + α·2·P_no (eq. 6)."""
    return (1 - alpha) * d + alpha * SCALE * p_no(s_yes, s_no, tau)


class Distance:
    """D over N = Q + G items (queries first): base distance plus symmetric sparse overrides.

    ``overrides`` are stored as CSR over the N rows (``indptr``, ``cols``, ``vals``, and the flat
    sorted ``keys`` = row·N + col for pair look-ups) holding both (i, j) and (j, i); a row block
    is a dense base-distance block with them scattered in.
    """

    def __init__(
        self,
        query: np.ndarray,
        gallery: np.ndarray,
        dev: torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        self.dev = dev or default_device()
        self.Q, self.G = len(query), len(gallery)
        self.N = self.Q + self.G
        feats = np.concatenate([np.asarray(query), np.asarray(gallery)])
        self.f = l2_normalise(torch.as_tensor(feats, device=self.dev, dtype=dtype))
        self.indptr = torch.zeros(self.N + 1, dtype=torch.long, device=self.dev)
        self.cols = self.keys = torch.zeros(0, dtype=torch.long, device=self.dev)
        self.vals = torch.zeros(0, dtype=dtype, device=self.dev)

    # -- overrides ------------------------------------------------------------------------
    def fuse(self, cand: np.ndarray, s_yes: np.ndarray, s_no: np.ndarray, alpha: float, tau: float, C: int) -> Distance:
        """Apply μ-fusion to each query's first ``C`` candidates (gallery indices ``cand``)."""
        check_fusion(alpha, tau, C, cand.shape[1], self.G)
        qi = torch.arange(self.Q, device=self.dev).repeat_interleave(C)
        gj = torch.as_tensor(np.asarray(cand[:, :C], np.int64), device=self.dev).reshape(-1) + self.Q
        logits = [
            torch.as_tensor(np.asarray(s[:, :C]), device=self.dev, dtype=self.f.dtype).reshape(-1)
            for s in (s_yes, s_no)
        ]
        base = self.pairs(qi, gj)
        late = (base.reshape(self.Q, C).diff(dim=1) < -1e-4).any(dim=1).nonzero()
        if len(late):
            raise MuseError(
                f"the scores' candidates of query {int(late[0])} are not in order of the base distance: "
                "scored on other features?"
            )
        fused = mu_fuse(base, *logits, alpha, tau)
        return self._override(torch.cat([qi, gj]), torch.cat([gj, qi]), torch.cat([fused, fused]))

    def _override(self, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor) -> Distance:
        order = torch.argsort(rows * self.N + cols)
        self.keys = (rows * self.N + cols)[order]  # (row, col) of each override, sorted
        self.cols, self.vals = cols[order], vals[order]
        self.indptr = torch.zeros(self.N + 1, dtype=torch.long, device=self.dev)
        self.indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=self.N), 0)
        return self

    def reordered(self, order: torch.Tensor) -> Distance:
        """The same distance over the items taken in ``order``: item n of the result is item
        ``order[n]`` of this one (for access by blocks only; queries and gallery lose their meaning)."""
        out = copy.copy(self)
        out.f = self.f[order]
        new = torch.empty_like(order)
        new[order] = torch.arange(len(order), device=order.device)
        rows = torch.repeat_interleave(torch.arange(self.N, device=self.dev), self.indptr.diff())
        return out._override(new[rows], new[self.cols], self.vals)

    # -- access ---------------------------------------------------------------------------
    def block(self, rows: slice, cols: slice = slice(None)) -> torch.Tensor:
        """D[rows, cols] as a dense (B, ncols) tensor."""
        (r0, r1), (c0, c1) = rows.indices(self.N)[:2], cols.indices(self.N)[:2]
        d = base_distance(self.f[r0:r1], self.f[c0:c1])
        return self._fill(d, r0, r1, c0, c1, 0.0, lambda v: v)

    def similarity(self, rows: slice, cols: slice = slice(None)) -> torch.Tensor:
        """σ[rows, cols] with D = √(max(0, 2 − 2σ)): f̂_i·f̂_j, σ(i, i) = 1 and an override v as
        1 − v²/2. It decreases as D grows, so the nearest items are the largest σ (no square root)."""
        (r0, r1), (c0, c1) = rows.indices(self.N)[:2], cols.indices(self.N)[:2]
        s = self.f[r0:r1] @ self.f[c0:c1].T
        return self._fill(s, r0, r1, c0, c1, 1.0, lambda v: 1 - v * v / 2)

    def _fill(self, d: torch.Tensor, r0: int, r1: int, c0: int, c1: int, diagonal: float, of) -> torch.Tensor:
        """Write ``diagonal`` at (i, i) and ``of(v)`` at each override v into the block d[r0:r1, c0:c1]."""
        if max(r0, c0) < min(r1, c1):
            diag = torch.arange(max(r0, c0), min(r1, c1), device=self.dev)
            d[diag - r0, diag - c0] = diagonal
        lo, hi = int(self.indptr[r0]), int(self.indptr[r1])
        if hi > lo:
            r = torch.repeat_interleave(
                torch.arange(r0, r1, device=self.dev), self.indptr[r0 + 1 : r1 + 1] - self.indptr[r0:r1]
            )
            c, v = self.cols[lo:hi], self.vals[lo:hi]
            keep = (c >= c0) & (c < c1)
            d[r[keep] - r0, c[keep] - c0] = of(v[keep])
        return d

    def pairs(self, i: torch.Tensor, j: torch.Tensor, chunk: int = 1 << 15) -> torch.Tensor:
        """D(i_k, j_k) for index vectors ``i``, ``j`` (same length), in chunks of pairs."""
        d = (
            torch.cat([(self.f[i[s : s + chunk]] * self.f[j[s : s + chunk]]).sum(1) for s in range(0, len(i), chunk)])
            if len(i)
            else self.f.new_zeros(0)
        )
        d = from_similarity(d)
        d[i == j] = 0.0
        if len(self.vals):
            want = i * self.N + j
            pos = torch.searchsorted(self.keys, want).clamp_max(len(self.keys) - 1)
            hit = self.keys[pos] == want
            d[hit] = self.vals[pos[hit]]
        return d

    def top_candidates(self, C: int, block: int = 256) -> np.ndarray:
        """(Q, C) int32: each query's C nearest gallery indices, nearest first (the μ candidates)."""
        if not 1 <= C <= self.G:
            raise MuseError(f"C = {C}: expected 1 <= C <= {self.G} (the gallery size)")
        return np.concatenate([smallest_k(d, C)[1].cpu().numpy().astype(np.int32) for _, d in self.query_blocks(block)])

    def query_blocks(self, block: int = 256) -> Iterator[tuple[slice, torch.Tensor]]:
        """``(rows, D[rows, gallery])`` for consecutive blocks of query rows (for evaluation)."""
        for start in range(0, self.Q, block):
            rows = slice(start, min(start + block, self.Q))
            yield rows, self.block(rows, slice(self.Q, self.N))


def check_fusion(alpha: float, tau: float, C: int, width: int, G: int | None = None) -> None:
    """Validate μ-fusion parameters against the stored scores (width) and the gallery size G
    (when given)."""
    if not 0.0 <= alpha <= 1.0:
        raise MuseError(f"alpha = {alpha}: expected a value in [0, 1]")
    if not tau > 0:
        raise MuseError(f"tau = {tau}: expected a positive temperature")
    if not 1 <= C <= width:
        raise MuseError(f"C = {C}: expected 1 <= C <= {width} (the candidates stored in the scores file)")
    if G is not None and C > G:
        raise MuseError(f"C = {C} is larger than the gallery ({G} images)")
