"""Bootstrap intervals over queries: per-query results of the evaluation against hand-computed
ones, the resampling against a bootstrap written here, and the paired difference's properties."""

import numpy as np
import pytest
import torch

import muse.intervals
from muse.errors import MuseError
from muse.evaluate import evaluate
from muse.experiments import evaluate_rows
from muse.fusion import Fusion
from muse.intervals import Bootstrap, annotate, excludes_zero, interval_columns
from muse.io import Features, Scores
from muse.paper import standard_rows

from helpers import clustered, scores_for

RERANK = {"krnn": {"k1": 10, "k2": 5, "lam": 0.3}, "ecn": {"k": 25, "t": 3, "q": 8}, "caj": {}}


def reference_interval(values, resamples, seed, level):
    """The textbook percentile bootstrap: B index vectors drawn at once, the mean of each."""
    values = np.asarray(values, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    means = values[idx].mean(1)
    return np.percentile(means, [50 * (1 - level), 50 * (1 + level)])


# Three queries (ids 1, 2, 3, camera 1) over a gallery of 6; the distances rank each query's
# gallery in index order after removing its same-id-same-camera items.
#   gallery:  0: id1 cam1 (removed for q0)  1: id2 cam2  2: id1 cam2  3: id3 cam2  4: id1 cam3  5: id2 cam3
# q0 (id 1): valid ranking 1(neg) 2(pos) 3(neg) 4(pos) 5(neg) -> hits at 2, 4: AP = (1/2 + 2/4) / 2 = 1/2
# q1 (id 2): 0(neg) 1(pos) 2 3 4 5(pos)                       -> hits at 2, 6: AP = (1/2 + 2/6) / 2 = 5/12
# q2 (id 3): 0 1 2 3(pos) 4 5                                  -> hit at 4:     AP = 1/4
HAND = {"AP": [1 / 2, 5 / 12, 1 / 4], "first": [2, 2, 4]}
G_PIDS, G_CAMS = np.array([1, 2, 1, 3, 1, 2]), np.array([1, 2, 2, 2, 3, 3])


def hand_case():
    dist = torch.arange(6, dtype=torch.float64).repeat(3, 1) / 10
    return evaluate([(slice(0, 3), dist)], np.array([1, 2, 3]), np.array([1, 1, 1]), G_PIDS, G_CAMS)


def test_per_query_results_of_a_hand_computed_case():
    got = hand_case()
    assert got["per_query"]["query"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(got["per_query"]["AP"], HAND["AP"], rtol=1e-12)
    assert got["per_query"]["first"].tolist() == HAND["first"]
    assert got["mAP"] == pytest.approx(np.mean(HAND["AP"]))


def test_per_query_results_skip_queries_without_a_match_and_follow_blocks():
    """Query 1 (id 9) has no match: the per-query vectors hold the others, indexed by query."""
    rng = np.random.default_rng(0)
    dist = torch.tensor(rng.random((4, 6)))
    qp, qc = np.array([1, 9, 2, 3]), np.array([1, 1, 1, 1])
    got = evaluate([(slice(0, 2), dist[:2]), (slice(2, 4), dist[2:])], qp, qc, G_PIDS, G_CAMS)
    assert got["per_query"]["query"].tolist() == [0, 2, 3] and got["num_queries"] == 3
    assert got["mAP"] == pytest.approx(got["per_query"]["AP"].mean())
    assert got["R1"] == pytest.approx((got["per_query"]["first"] == 1).mean())


@pytest.mark.parametrize("resamples, seed, level", [(2000, 0, 0.95), (333, 7, 0.9)])
def test_bootstrap_matches_a_textbook_bootstrap(resamples, seed, level):
    boot = Bootstrap(resamples=resamples, seed=seed, level=level)
    low, high = boot.interval(boot.means(HAND["AP"]))[0]
    ref = reference_interval(HAND["AP"], resamples, seed, level)
    assert (low, high) == pytest.approx(tuple(ref), abs=1e-12)
    assert min(HAND["AP"]) <= low < np.mean(HAND["AP"]) < high <= max(HAND["AP"])


def test_resampling_in_pieces_draws_the_same_indices(monkeypatch):
    values = np.random.default_rng(1).random(37)
    whole = Bootstrap(resamples=500).means(values)
    monkeypatch.setattr(muse.intervals, "CELLS", 100)  # 2 resamples a piece
    np.testing.assert_allclose(Bootstrap(resamples=500).means(values), whole, rtol=1e-12)
    ref = reference_interval(values, 500, 0, 0.95)
    np.testing.assert_allclose(Bootstrap(resamples=500).interval(whole)[0], ref, atol=1e-12)


def rows_of(per_query_a, per_query_b, rerank="krnn"):
    """A + MUSE row and its base row, as the evaluation gives them."""
    return [
        {"row": "Baseline + K-RNN", "mu": False, "rerank": rerank, "per_query": per_query_b},
        {"row": "Baseline + MUSE + K-RNN", "mu": True, "rerank": rerank, "per_query": per_query_a},
    ]


def per_query(ap, first=None):
    ap = np.asarray(ap, np.float64)
    return {"query": np.arange(len(ap)), "AP": ap, "first": np.ones(len(ap), int) if first is None else first}


def test_a_row_against_itself_is_zero_and_swapping_negates():
    rng = np.random.default_rng(3)
    a = per_query(rng.random(50), rng.integers(1, 4, 50))
    b = per_query(rng.random(50), rng.integers(1, 4, 50))
    boot = Bootstrap()
    same = annotate(rows_of(a, a), boot)[1]["paired"]
    assert same["base"] == "Baseline + K-RNN" and same["mAP"] == [0.0, 0.0, 0.0] and same["R1"] == [0.0, 0.0, 0.0]
    ab = annotate(rows_of(a, b), boot)[1]["paired"]
    ba = annotate(rows_of(b, a), boot)[1]["paired"]
    point = {"mAP": a["AP"].mean() - b["AP"].mean(), "R1": (a["first"] == 1).mean() - (b["first"] == 1).mean()}
    for m in ("mAP", "R1"):
        d, lo, hi = ab[m]
        assert d == pytest.approx(point[m], abs=1e-12) and lo < d < hi
        assert ba[m] == pytest.approx([-d, -hi, -lo], abs=1e-12)
    # the paired interval is the textbook bootstrap of the per-query differences
    ref = reference_interval(a["AP"] - b["AP"], 2000, 0, 0.95)
    assert ab["mAP"][1:] == pytest.approx(list(ref), abs=1e-12)


def test_every_query_improving_gives_an_interval_above_zero():
    rng = np.random.default_rng(4)
    base = rng.random(40) * 0.8
    rows = annotate(rows_of(per_query(base + rng.uniform(0.001, 0.05, 40)), per_query(base)), Bootstrap())
    d, lo, hi = rows[1]["paired"]["mAP"]
    assert 0 < lo <= d <= hi and excludes_zero(lo, hi)
    assert "paired" not in rows[0] and rows[0]["ci"]["mAP"][0] < base.mean() < rows[0]["ci"]["mAP"][1]


def features_of(q, g, qp, qc, gp, gc) -> Features:
    return Features(
        np.concatenate([q, g]).astype(np.float32),
        np.concatenate([qp, gp]),
        np.concatenate([qc, gc]),
        np.array([f"{i}.jpg" for i in range(len(q) + len(g))]),
        np.array(["query"] * len(q) + ["gallery"] * len(g)),
    )


@pytest.fixture(scope="module")
def clustered_case():
    q, g, *ids = clustered(5, Q=60, G=240, ids=30)
    return features_of(q, g, *ids), q, g


def perfect(f, q, cand):
    right = np.where(f.pids[len(q) :][cand] == f.pids[: len(q), None], 20.0, -20.0)
    return Scores(cand, right, -right)


def test_a_perfect_judge_gives_an_interval_above_zero(clustered_case):
    f, q, g = clustered_case
    cand, _, _ = scores_for(q, g, 10, 2)
    rows = annotate(evaluate_rows(f, Fusion(perfect(f, q, cand), 0.2, 5.0, 10), standard_rows(), RERANK), Bootstrap())
    assert [rows[i]["paired"]["base"] for i in range(4, 8)] == [r["row"] for r in rows[:4]]
    assert all("paired" not in r for r in rows[:4]) and all("ci" in r for r in rows)
    for mu, plain in zip(rows[4:], rows[:4]):
        d, lo, hi = mu["paired"]["mAP"]
        assert d == pytest.approx(mu["mAP"] - plain["mAP"], abs=1e-12) and 0 < lo <= d <= hi


def test_a_random_fusion_on_features_without_identity_gives_an_interval_holding_zero():
    """Random features rank the gallery at random; an independent random judge re-orders it at
    random, so each query's AP is as likely to fall as to rise."""
    rng = np.random.default_rng(6)
    Q, G = 80, 400
    q, g = rng.normal(size=(Q, 16)), rng.normal(size=(G, 16))
    ids = (rng.integers(1, 40, Q), rng.integers(1, 4, Q), rng.integers(1, 40, G), rng.integers(1, 4, G))
    f = features_of(q, g, *ids)
    cand, sy, sn = scores_for(q, g, 10, 2)
    rows = annotate(
        evaluate_rows(f, Fusion(Scores(cand, sy, sn), 0.5, 1.0, 10), standard_rows()[::4], RERANK), Bootstrap()
    )
    d, lo, hi = rows[1]["paired"]["mAP"]
    assert d != 0 and lo < 0 < hi and not excludes_zero(lo, hi)


def test_intervals_are_deterministic(clustered_case):
    f, q, g = clustered_case
    scores = Scores(*scores_for(q, g, 10, 2))
    first = annotate(evaluate_rows(f, Fusion(scores, 0.2, 5.0, 10), standard_rows()[:6], RERANK), Bootstrap())
    again = annotate(evaluate_rows(f, Fusion(scores, 0.2, 5.0, 10), standard_rows()[:6], RERANK), Bootstrap())
    assert [(r["ci"], r.get("paired")) for r in first] == [(r["ci"], r.get("paired")) for r in again]
    other = annotate(evaluate_rows(f, Fusion(scores, 0.2, 5.0, 10), standard_rows()[:6], RERANK), Bootstrap(seed=1))
    assert [r["ci"] for r in other] != [r["ci"] for r in first]
    assert interval_columns(first[0]) == {
        "mAP_low": first[0]["ci"]["mAP"][0],
        "mAP_high": first[0]["ci"]["mAP"][1],
        "R1_low": first[0]["ci"]["R1"][0],
        "R1_high": first[0]["ci"]["R1"][1],
    }


def test_rows_of_different_queries_and_bad_settings_are_refused():
    a, b = per_query([0.5, 0.2, 0.1]), per_query([0.5, 0.2, 0.1])
    b["query"] = np.array([0, 1, 3])
    with pytest.raises(MuseError, match="evaluated on different queries"):
        annotate(rows_of(a, b), Bootstrap())
    for kwargs, key in (({"resamples": 0}, "resamples"), ({"level": 1.0}, "level"), ({"seed": -1}, "seed")):
        with pytest.raises(MuseError, match=f"intervals.{key}"):
            Bootstrap(**kwargs)
    with pytest.raises(MuseError, match="0 queries"):
        Bootstrap().means(np.zeros(0))
