"""Where the computation runs when nobody says: the one default device of every stage."""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    """The GPU when torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
