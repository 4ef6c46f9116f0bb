"""Figures: the parameter sweeps of Figure 3."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from muse.io import atomic_path  # noqa: E402

LABELS = {"C": "number of candidates C", "alpha": "fusion weight α", "tau": "temperature τ"}


def plot_sweep(rows: list[dict], param: str, out, title: str) -> None:
    """mAP and R1 (%) against the swept parameter, as Figure 3."""
    x = [r["value"] for r in rows]
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    for metric, style in (("mAP", "o-"), ("R1", "s--")):
        ax.plot(x, [100 * r[metric] for r in rows], style, label=metric)
    ax.set_xlabel(LABELS.get(param, param))
    ax.set_ylabel("%")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
