"""Diagnostics of a + MUSE row: ROC-AUCs pooled and within each query, recall@C, the logit gap and
the ceiling (the mAP with a perfect judge), against hand-computed values and dense references."""

from itertools import product

import numpy as np
import pytest

from muse.diagnostics import diagnose, has_match, per_query_auc, perfect_scores, roc_auc
from muse.evaluate import evaluate
from muse.experiments import ceiling
from muse.fusion import Fusion
from muse.io import Features, Scores
from muse.rerank import rerank_features

from helpers import clustered, reference, scores_for
from rerank_reference import dense_distance, mu_fused


def features(angles, pids, camids, split):
    """Unit vectors at ``angles`` (degrees): D grows with the angle between two items."""
    a = np.radians(np.asarray(angles, float))
    n = len(a)
    return Features(
        np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32),
        np.asarray(pids),
        np.asarray(camids),
        np.array([f"{split}{i}" for i in range(n)]),
        np.array([split] * n),
    )


@pytest.fixture
def three_queries():
    """Queries (pid, cam) at 0°, 90°, 180°: q0 (1, 1), q1 (2, 1), q2 (3, 2). Gallery: g0 (1, 2) 20°,
    g1 (1, 1) 5°, g2 (2, 2) 80°, g3 (4, 1) 12°, g4 (5, 2) 105°, g5 (3, 2) 175°, g6 (3, 1) 300°.
    First three candidates: q0 [g1 removed, g3 −, g0 +], q1 [g2 +, g4 −, g0 −], q2 [g5 removed,
    g4 −, g2 −] (q2's match g6 lies beyond C = 3)."""
    q = features([0, 90, 180], [1, 2, 3], [1, 1, 2], "q")
    g = features([20, 5, 80, 12, 105, 175, 300], [1, 1, 2, 4, 5, 3, 3], [2, 1, 2, 1, 2, 2, 1], "g")
    cand = np.array([[1, 3, 0], [2, 4, 0], [5, 4, 2]], np.int32)
    s_yes = np.array([[3, 1, 2], [0, 0, 0], [5, -2, 1]], np.float32)
    s_no = np.array([[0, 0, -2], [1, -1, 1], [0, 0, 0]], np.float32)
    return q, g, Scores(cand, s_yes, s_no)


def test_roc_auc_counts_ordered_pairs_with_ties_as_half():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    positive = rng.random(60) < 0.4
    wins = sum((a > b) + 0.5 * (a == b) for a, b in product(scores[positive], scores[~positive]))
    assert roc_auc(scores, positive) == pytest.approx(wins / (positive.sum() * (~positive).sum()))
    assert roc_auc([0.1, 0.9], [False, True]) == 1.0 and roc_auc([3.0, 1.0], [False, True]) == 0.0
    assert np.isnan(roc_auc([1.0, 2.0], [True, True]))


def test_diagnostics_of_three_queries_by_hand(three_queries):
    q, g, s = three_queries
    d = diagnose(q, g, s, C=3)
    # s_no − s_yes on the kept pairs: q0 g3 −1 (different), g0 −4 (same) → 1; q1 g2 1 (same),
    # g4 −1, g0 1 (different) → (0 + ½)/2; q2 holds no match → not averaged.
    assert d["judge_auc_query"] == pytest.approx((1.0 + 0.25) / 2) and d["auc_queries"] == 2
    # D: q0's negative (12°) is nearer than its match (20°) → 0; q1's match (10°) is nearest → 1
    assert d["base_auc_query"] == pytest.approx(0.5)
    # pooled: different −1, −1, 1, 2, −1 against same −4, 1 → (5 + 1.5)/10; D: 12°, 15°, 70°, 75°,
    # 100° against 20°, 10° → (3 + 5)/10
    assert d["judge_auc"] == pytest.approx(0.65) and d["base_auc"] == pytest.approx(0.8)
    assert d["recall_C"] == pytest.approx(2 / 3)  # q2 has a match (g6), not among its candidates
    # |s_yes − s_no| over the 7 kept pairs: 1, 4, 1, 1, 1, 2, 1
    assert d["gap_median"] == 1.0 and d["gap_p90"] == pytest.approx(2.8)
    assert d["pairs"] == 7 and d["positives"] == 2
    assert diagnose(q, g, s, C=1)["recall_C"] == pytest.approx(1 / 3)  # only q1's first candidate


def test_per_query_auc_equals_roc_auc_row_by_row():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, (50, 9)).astype(float)  # ties
    positive, valid = rng.random((50, 9)) < 0.4, rng.random((50, 9)) < 0.8
    got = per_query_auc(x, positive, valid)
    want = [roc_auc(x[i][valid[i]], positive[i][valid[i]]) for i in range(50)]
    np.testing.assert_allclose(got, want, equal_nan=True)
    assert np.isnan(got).any() and not np.isnan(got).all()


def test_has_match_counts_other_cameras_only():
    q = features([0, 0, 0], [1, 2, 7], [1, 1, 1], "q")
    g = features([0, 0, 0, 0], [1, 1, 2, 7], [1, 3, 1, 2], "g")
    assert has_match(q, g).tolist() == [True, False, True]


def test_perfect_scores_say_yes_to_the_same_identity_only(three_queries):
    q, g, s = three_queries
    p = perfect_scores(q, g, s)
    same = g.pids[s.cand] == q.pids[:, None]
    assert (p.s_yes[same] == 20).all() and (p.s_no[same] == -20).all()
    assert (p.s_yes[~same] == -20).all() and (p.s_no[~same] == 20).all()
    assert p.cand is s.cand and diagnose(q, g, p, 3)["judge_auc_query"] == 1.0


@pytest.mark.parametrize("method", ["none", "krnn"])
def test_ceiling_is_the_map_of_the_perfect_scores(method):
    """The ceiling equals the evaluation with a perfect judge's logits built here, and (without
    re-ranking) the dense reference of the fused distance; it beats the random judge's."""
    qf, gf, qp, qc, gp, gc = clustered(5, G=120)
    n = len(qf) + len(gf)
    f = Features(
        np.concatenate([qf, gf]).astype(np.float32),
        np.concatenate([qp, gp]),
        np.concatenate([qc, gc]),
        np.array([str(i) for i in range(n)]),
        np.array(["query"] * len(qf) + ["gallery"] * len(gf)),
    )
    q, g = f.query_gallery()
    cand, sy, sn = scores_for(qf, gf, 10, 5)
    scores = Scores(cand, sy, sn)
    params = {"k1": 10, "k2": 5, "lam": 0.3} if method == "krnn" else {}
    got = ceiling(q, g, Fusion(scores, 0.2, 5.0, 10), method, params)
    right = np.where(gp[cand] == qp[:, None], 20.0, -20.0)
    oracle = Scores(cand, right, -right)
    blocks = rerank_features(q, g, method, params, Fusion(oracle, 0.2, 5.0, 10))
    assert got == evaluate(blocks, qp, qc, gp, gc)["mAP"]
    if method == "none":
        overrides = mu_fused(dense_distance(qf, gf), len(qf), cand, right, -right, 0.2, 5.0, 10)
        dense = dense_distance(qf, gf, overrides)[: len(qf), len(qf) :]
        assert got == pytest.approx(reference(dense, qp, qc, gp, gc)["mAP"], abs=1e-6)
    judged = evaluate(rerank_features(q, g, method, params, Fusion(scores, 0.2, 5.0, 10)), qp, qc, gp, gc)["mAP"]
    assert got > judged
