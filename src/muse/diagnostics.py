"""What limits MUSE on a test set: the judge, or the candidates the base distance gives it.

The scored pairs of query i are its first C candidates j by the base distance, less those with
p_j = p_i and c_j = c_i (the evaluation removes them); y_ij = [p_j ≠ p_i] marks a different
identity. On them:

- ROC-AUC, pooled: P(x_a > x_b) over all scored pairs a with y = 1 and b with y = 0 (ties ½), for
  the judge's x = s_no − s_yes and for the base distance x = D(i, j);
- ROC-AUC within each query: the same over query i's own pairs, averaged over the queries whose
  pairs hold both classes (their count is ``auc_queries``). Re-ranking only reorders a query's
  own list, so this is the figure that bears on the ranking; the pooled one also compares pairs
  of different queries;
- recall@C: the share of the evaluated queries (those with a match p_j = p_i, c_j ≠ c_i in the
  gallery) that have one among their first C candidates: what any judge can lift;
- the logit gap |s_yes − s_no|: median and 90th percentile; at temperature τ,
  P_no = σ((s_no − s_yes)/τ) moves away from ½ only where the gap is comparable to τ.

The ceiling of a + MUSE row (:func:`muse.experiments.ceiling`) is its mAP with the
:func:`perfect_scores` of the same candidates: s_yes = +S, s_no = −S for p_j = p_i and the
reverse otherwise (S = :data:`PERFECT`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from muse.distance import Distance
from muse.io import Features, Scores

PERFECT = 20.0  # |s_yes| = |s_no| of the perfect judge: P_no = σ(∓2S/τ) ≈ 0 or 1 at the paper's τ = 5
CHUNK = 1024  # queries per block of the within-query comparison (a block holds CHUNK·C² entries)


def roc_auc(scores, positive) -> float:
    """ROC-AUC = P(score of a random positive > score of a random negative), ties counting ½
    (the Mann–Whitney U statistic over average ranks); NaN without both classes."""
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def per_query_auc(x: np.ndarray, positive: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row of ``x`` (Q, C) over its ``valid`` entries, ``positive`` marking the
    class scored high; NaN for a row without both classes. Counts the ordered pairs directly:
    Σ_{a pos, b neg} [x_a > x_b] + ½[x_a = x_b] / (n_pos · n_neg)."""
    out = np.full(len(x), np.nan)
    for s in range(0, len(x), CHUNK):
        xs, pos, ok = x[s : s + CHUNK], positive[s : s + CHUNK], valid[s : s + CHUNK]
        a, b = pos & ok, ~pos & ok
        both = a[:, :, None] & b[:, None, :]
        wins = (xs[:, :, None] > xs[:, None, :]) + 0.5 * (xs[:, :, None] == xs[:, None, :])
        n = a.sum(1) * b.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s : s + CHUNK] = np.where(n > 0, (wins * both).sum((1, 2)) / n, np.nan)
    return out


def has_match(q: Features, g: Features) -> np.ndarray:
    """Per query, whether the gallery holds its identity under another camera (the queries the
    evaluation counts), from counts per identity and per (identity, camera): no Q × G matrix."""
    by_id = Counter(g.pids.tolist())
    by_camera = Counter(zip(g.pids.tolist(), g.camids.tolist()))
    return np.array([by_id[p] > by_camera[p, c] for p, c in zip(q.pids.tolist(), q.camids.tolist())], dtype=bool)


def diagnose(q: Features, g: Features, scores: Scores, C: int) -> dict:
    """The judge's and the base distance's ROC-AUC (pooled and within each query), recall@C and
    the logit gap over the scored pairs of the first ``C`` candidates (module docstring)."""
    cand = np.asarray(scores.cand[:, :C], dtype=np.int64)
    gp, gc = g.pids[cand], g.camids[cand]
    valid = ~((gp == q.pids[:, None]) & (gc == q.camids[:, None]))
    different = gp != q.pids[:, None]
    judge = np.asarray(scores.s_no[:, :C], np.float64) - np.asarray(scores.s_yes[:, :C], np.float64)
    d = Distance(q.feats, g.feats)
    qi = torch.arange(len(cand)).repeat_interleave(C)
    base = d.pairs(qi, torch.as_tensor(cand.reshape(-1)) + d.Q).cpu().numpy().astype(np.float64).reshape(cand.shape)
    within = {name: per_query_auc(x, different, valid) for name, x in (("judge", judge), ("base", base))}
    both = ~np.isnan(within["judge"])
    matched = has_match(q, g)
    found = (valid & ~different).any(1)
    gap = np.abs(judge[valid])
    return {
        "judge_auc": roc_auc(judge[valid], different[valid]),
        "base_auc": roc_auc(base[valid], different[valid]),
        "judge_auc_query": float(within["judge"][both].mean()) if both.any() else float("nan"),
        "base_auc_query": float(within["base"][both].mean()) if both.any() else float("nan"),
        "auc_queries": int(both.sum()),
        "recall_C": float(found[matched].mean()) if matched.any() else float("nan"),
        "gap_median": float(np.median(gap)) if len(gap) else float("nan"),
        "gap_p90": float(np.percentile(gap, 90)) if len(gap) else float("nan"),
        "pairs": int(valid.sum()),
        "positives": int((valid & ~different).sum()),
    }


def perfect_scores(q: Features, g: Features, scores: Scores) -> Scores:
    """The logits of a judge that is always right, for the candidates of ``scores``:
    s_yes = +S, s_no = −S where p_j = p_i, the reverse elsewhere."""
    same = g.pids[np.asarray(scores.cand, np.int64)] == q.pids[:, None]
    s_yes = np.where(same, PERFECT, -PERFECT).astype(np.float32)
    return Scores(scores.cand, s_yes, -s_yes, scores.rows, scores.features)
