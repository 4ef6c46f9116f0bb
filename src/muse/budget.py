"""The working memory of the re-ranking stages.

Each stage (neighbour lists, k-reciprocal sets, the Jaccard step, ECN's products) sizes its
blocks so that the arrays it holds while working take at most ``memory`` bytes, whatever the
data; what it keeps between stages (neighbour lists, the sparse V) is bounded by N times a
constant of the method's parameters, stated where it is built.
"""

from __future__ import annotations

import math

MEMORY = 1 << 30  # default working memory of one stage: 1 GiB


def fitting(memory: int, bytes_each: int, most: int) -> int:
    """How many items of ``bytes_each`` bytes fit in ``memory``: at least 1, at most ``most``."""
    return max(1, min(most, memory // max(1, bytes_each)))


def square_side(memory: int, bytes_each: int, most: int) -> int:
    """The side of the largest square of ``bytes_each``-byte entries within ``memory`` (≤ ``most``)."""
    return max(1, min(most, math.isqrt(memory // max(1, bytes_each))))
