"""Distances between query and gallery features (DESIGN §4).

The base distance of MUSE is the Euclidean distance between L2-normalised features,

    D(i, j) = ‖f̂_i − f̂_j‖₂ = √(max(0, 2 − 2 f̂_i·f̂_j)) ∈ [0, 2],

computed one block of query rows at a time so that the Q×G matrix never has to exist.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch


def device() -> torch.device:
    """The GPU when torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    """f̂ = f / ‖f‖₂ row-wise (a zero row stays zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def base_distance(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """D between already L2-normalised rows ``q`` (B, d) and ``g`` (G, d): (B, G)."""
    return (q @ g.T).mul_(-2).add_(2).clamp_min_(0).sqrt_()


def base_distance_blocks(
    query: np.ndarray, gallery: np.ndarray, block: int = 256, dev: torch.device | None = None
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(rows, D[rows])`` for consecutive blocks of query rows; features are normalised here."""
    dev = dev or device()
    g = l2_normalise(torch.as_tensor(gallery, dtype=torch.float32, device=dev))
    for start in range(0, len(query), block):
        rows = slice(start, min(start + block, len(query)))
        q = l2_normalise(torch.as_tensor(query[rows], dtype=torch.float32, device=dev))
        yield rows, base_distance(q, g)
