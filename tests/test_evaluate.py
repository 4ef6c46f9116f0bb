"""Streaming evaluation against a dense textbook implementation of the Market protocol."""

import numpy as np
import pytest
import torch

from muse.distance import base_distance_blocks
from muse.errors import MuseError
from muse.evaluate import evaluate

from helpers import random_case, reference


@pytest.mark.parametrize("seed", range(6))
def test_matches_dense_reference(seed):
    rng = np.random.default_rng(seed)
    q, g, qp, qc, gp, gc = random_case(rng)
    dist = next(base_distance_blocks(q, g, block=len(q)))[1].numpy().astype(np.float64)
    ref = reference(dist, qp, qc, gp, gc)
    got = evaluate(base_distance_blocks(q, g, block=7), qp, qc, gp, gc)
    assert got["num_queries"] == ref["num_queries"]
    assert got["mAP"] == pytest.approx(ref["mAP"], abs=1e-9)
    assert got["mINP"] == pytest.approx(ref["mINP"], abs=1e-9)
    np.testing.assert_allclose(got["cmc"], ref["cmc"], atol=1e-12)
    assert got["R1"] == ref["cmc"][0] and got["R10"] == ref["cmc"][9]


@pytest.mark.parametrize("seed", range(4))
def test_ties_follow_gallery_order(seed):
    """Quantised distances make many ties: the stable (distance, index) order decides."""
    rng = np.random.default_rng(100 + seed)
    nq, ng = 30, 120
    qp, gp = rng.integers(1, 8, nq), rng.integers(0, 8, ng)
    qc, gc = rng.integers(1, 4, nq), rng.integers(1, 4, ng)
    dist = rng.integers(0, 4, (nq, ng)).astype(np.float32)
    ref = reference(dist.astype(np.float64), qp, qc, gp, gc)
    got = evaluate([(slice(0, 13), torch.tensor(dist[:13])), (slice(13, nq), torch.tensor(dist[13:]))], qp, qc, gp, gc)
    assert got["mAP"] == pytest.approx(ref["mAP"], abs=1e-9)
    assert got["mINP"] == pytest.approx(ref["mINP"], abs=1e-9)
    np.testing.assert_allclose(got["cmc"], ref["cmc"], atol=1e-12)


def test_hand_computed_case():
    """One query (id 1, camera 1); gallery ranked: [same cam id1 (removed), neg, pos, neg, pos]."""
    dist = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5]])
    g_pids, g_cams = np.array([1, 2, 1, 0, 1]), np.array([1, 2, 2, 3, 3])
    got = evaluate([(slice(0, 1), dist)], np.array([1]), np.array([1]), g_pids, g_cams)
    # valid ranking: neg(1), pos(2), neg(3), pos(4) -> AP = (1/2 + 2/4) / 2, INP = 2/4
    assert got["mAP"] == pytest.approx(0.5)
    assert got["mINP"] == pytest.approx(0.5)
    assert got["R1"] == 0.0 and got["R5"] == 1.0


def test_queries_without_match_are_skipped():
    dist = torch.tensor([[0.1, 0.2], [0.3, 0.1]])
    # query 0 (id 5) has only a same-camera match; query 1 (id 6) a cross-camera one at rank 1
    got = evaluate([(slice(0, 2), dist)], np.array([5, 6]), np.array([1, 1]), np.array([5, 6]), np.array([1, 2]))
    assert got["num_queries"] == 1 and got["mAP"] == 1.0


def test_no_valid_query_is_an_error():
    with pytest.raises(MuseError, match="no query has a valid match"):
        evaluate([(slice(0, 1), torch.tensor([[0.1]]))], np.array([1]), np.array([1]), np.array([1]), np.array([1]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_distance_is_an_error(bad):
    dist = torch.tensor([[0.3, bad, 0.1]], dtype=torch.float64)
    with pytest.raises(MuseError, match="NaN or inf"):
        evaluate([(slice(0, 1), dist)], np.array([1]), np.array([1]), np.array([1, 2, 1]), np.array([2, 2, 3]))
