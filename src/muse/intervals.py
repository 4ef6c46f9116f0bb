"""Confidence intervals over queries: is a difference between two rows more than noise?

A row evaluated on n queries has per-query values x_i (AP_i for mAP, [r_1 = 1] for R1,
:func:`muse.evaluate.evaluate`'s ``per_query``) and the metric x̄ = (1/n) Σ_i x_i. The percentile
bootstrap draws B resamples of n query indices with replacement, i_1 … i_n (numpy's PCG64 seeded
with ``seed``, drawn as one (B, n) matrix), takes each resample's mean x̄*_b = (1/n) Σ_k x_{i_k},
and reports the (1 − level)/2 and (1 + level)/2 percentiles of x̄*_1 … x̄*_B (linear
interpolation) as the interval of x̄.

Two rows evaluated on the same queries (a + MUSE row and the row without MUSE, say) are compared
*paired*: the interval of the difference x̄_a − x̄_b is that of the per-query differences
d_i = x_{a,i} − x_{b,i} over the same resamples, so the query-to-query spread both rows share
cancels. A difference whose interval excludes 0 is beyond what resampling the test queries
explains.

Every statistic of one test set is resampled with the same index matrix: a resample is the count
vector w_b (how often each query was drawn), and x̄*_b = w_b · x / n for all rows at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from muse.errors import MuseError

METRICS = ("mAP", "R1")
CELLS = 1 << 22  # resampled query indices drawn at a time (a (b, n) block of int64: 32 MB)


@dataclass(frozen=True)
class Bootstrap:
    """The percentile bootstrap over queries (module docstring): ``resamples`` = B, the central
    ``level`` of the resampled means, numpy's PCG64 seeded with ``seed``."""

    resamples: int = 2000
    level: float = 0.95
    seed: int = 0

    def __post_init__(self):
        if not (isinstance(self.resamples, int) and self.resamples >= 1):
            raise MuseError(f"intervals.resamples: expected an integer ≥ 1, got {self.resamples!r}")
        if not 0 < self.level < 1:
            raise MuseError(f"intervals.level: expected a number in (0, 1), got {self.level!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise MuseError(f"intervals.seed: expected an integer ≥ 0, got {self.seed!r}")

    def means(self, values) -> np.ndarray:
        """The resampled means (k, B) of each row of ``values`` (k, n), all over the same B
        resamples of the n columns."""
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        n = values.shape[1]
        if n == 0:
            raise MuseError("no query to resample: the interval of a mean over 0 queries is undefined")
        rng = np.random.default_rng(self.seed)
        out = np.empty((len(values), self.resamples))
        step = max(1, CELLS // n)
        for s in range(0, self.resamples, step):
            b = min(step, self.resamples - s)
            idx = rng.integers(0, n, size=(b, n))
            counts = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
            out[:, s : s + b] = values @ counts.T / n
        return out

    def interval(self, means: np.ndarray) -> np.ndarray:
        """The central ``level`` percentiles (…, 2) of resampled means (…, B)."""
        tail = 100 * (1 - self.level) / 2
        return np.moveaxis(np.percentile(means, [tail, 100 - tail], axis=-1), 0, -1)


def per_query_values(per_query: dict) -> dict[str, np.ndarray]:
    """The per-query value whose mean is each metric of :data:`METRICS`: AP_i, and [r_1 = 1]."""
    return {"mAP": np.asarray(per_query["AP"], np.float64), "R1": np.asarray(per_query["first"]) == 1}


def annotate(rows: list[dict], boot: Bootstrap) -> list[dict]:
    """Add to each row of one test set (dicts with ``row``, ``mu``, ``rerank`` and
    :func:`muse.evaluate.evaluate`'s ``per_query``) ``ci``: {metric: [low, high]}; and to each μ
    row whose base row is among ``rows`` — the row without μ-fusion and with the same re-ranking
    (+ MUSE + X against + X, an ablation's judges against Baseline + K-RNN) — ``paired``:
    {``base``: its name, metric: [difference, low, high]}. Returns ``rows``."""
    queries = [np.asarray(r["per_query"]["query"]) for r in rows]
    for r, q in zip(rows, queries):
        if not np.array_equal(q, queries[0]):
            raise MuseError(f"rows {rows[0]['row']!r} and {r['row']!r} were evaluated on different queries")
    values = np.stack([per_query_values(r["per_query"])[m] for r in rows for m in METRICS])
    means = boot.means(values).reshape(len(rows), len(METRICS), -1)
    point = values.mean(1).reshape(len(rows), len(METRICS))
    ci = boot.interval(means)
    base = {r["rerank"]: i for i, r in enumerate(rows) if not r["mu"]}
    for i, r in enumerate(rows):
        r["ci"] = {m: ci[i, k].tolist() for k, m in enumerate(METRICS)}
        j = base.get(r["rerank"]) if r["mu"] else None
        if j is not None:
            diff = boot.interval(means[i] - means[j])
            r["paired"] = {
                "base": rows[j]["row"],
                **{m: [point[i, k] - point[j, k], *diff[k].tolist()] for k, m in enumerate(METRICS)},
            }
    return rows


def interval_columns(row: dict) -> dict[str, float]:
    """An annotated row's intervals as flat columns: ``mAP_low``, ``mAP_high``, ``R1_low``, ``R1_high``."""
    return {f"{m}_{end}": row["ci"][m][i] for m in METRICS for i, end in enumerate(("low", "high"))}


def excludes_zero(low: float, high: float) -> bool:
    """Whether an interval [low, high] of a difference lies wholly above or below 0."""
    return low > 0 or high < 0
