"""Sparse re-ranking equals the dense textbook definitions, with and without μ-fusion."""

import numpy as np
import pytest
import torch

from muse.budget import MEMORY
from muse.distance import Distance, check_fusion
from muse.errors import MuseError
from muse.evaluate import evaluate
from muse.rerank import params_for, rerank
from muse.rerank.knn import knn

from helpers import clustered, scores_for
from helpers import reference as eval_reference
from rerank_reference import caj_dense, dense_distance, ecn_dense, krnn_dense, mu_fused, ranking


def fast_and_dense(method, seed, fused, dtype=torch.float64, memory=MEMORY, **params):
    q, g, qp, qc, gp, gc = clustered(seed)
    Q = len(q)
    D = Distance(q, g, dtype=dtype)
    overrides = None
    if fused:
        alpha, tau, C = 0.3, 2.0, 6
        cand, sy, sn = scores_for(q, g, 10, seed)
        D.fuse(cand, sy, sn, alpha, tau, C)
        overrides = mu_fused(dense_distance(q, g), Q, cand, sy, sn, alpha, tau, C)
    Dd = dense_distance(q, g, overrides)
    cams = np.concatenate([qc, gc])
    blocks = list(rerank(method, D, camids=cams, memory=memory, **params))
    fast = torch.cat([b for _, b in blocks]).double().numpy()
    dense = {
        "none": lambda: Dd[:Q, Q:],
        "krnn": lambda: krnn_dense(Dd, Q, **params),
        "ecn": lambda: ecn_dense(Dd, Q, **params),
        "caj": lambda: caj_dense(Dd, Q, cams, **params),
    }[method]()
    return fast, dense, blocks, (qp, qc, gp, gc)


PARAMS = {
    "none": {},
    "krnn": {"k1": 20, "k2": 6, "lam": 0.3},
    "ecn": {"k": 25, "t": 3, "q": 8},
    "caj": {"k1_intra": 5, "k1_inter": 20, "k2_intra": 3, "k2_inter": 3, "lam": 0.3},
}
RELEASED = {  # the values of MUSE's released evaluation script
    "krnn": {"k1": 10, "k2": 5, "lam": 0.3},
    "caj": {"k1_intra": 5, "k1_inter": 20, "qe": "plain", "k2": 5, "lam": 0.3},
}


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", list(PARAMS))
def test_equals_dense_reference(method, seed, fused):
    fast, dense, blocks, ids = fast_and_dense(method, seed, fused, **PARAMS[method])
    np.testing.assert_allclose(fast, dense, atol=1e-9)
    got = evaluate(iter(blocks), *ids)
    ref = eval_reference(dense, *ids)
    assert got["mAP"] == pytest.approx(ref["mAP"], abs=1e-12)
    np.testing.assert_allclose(got["cmc"], ref["cmc"])


@pytest.mark.parametrize("method", ["krnn", "ecn", "caj"])
def test_tiny_working_memory_is_unchanged(method, monkeypatch):
    """With 900 bytes of working memory every stage works in tiny blocks (4-item similarity tiles,
    one query per Jaccard block, 7 triples at a time, so each query row's non-zeros are split over
    many pieces): the distances equal those of the default memory and the dense reference."""
    whole, dense, _, _ = fast_and_dense(method, 4, True, **PARAMS[method])
    real, calls = np.bincount, []
    monkeypatch.setattr(np, "bincount", lambda *a, **k: calls.append(1) or real(*a, **k))
    pieces, _, blocks, _ = fast_and_dense(method, 4, True, memory=900, **PARAMS[method])
    Q = len(whole)
    if method != "ecn":
        assert len(calls) > 5 * Q  # several pieces per query row
    assert len(blocks) == Q  # one query per block
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pieces, dense, atol=1e-9)


@pytest.mark.parametrize("method", list(RELEASED))
def test_released_parameters(method):
    fast, dense, _, _ = fast_and_dense(method, 5, True, **RELEASED[method])
    np.testing.assert_allclose(fast, dense, atol=1e-9)


@pytest.mark.parametrize("k2", [1, 2, 5])
def test_caj_plain_query_expansion(k2):
    """qe = plain expands over the k2 nearest items of any camera (the release's clqe=False):
    equal to the dense reference, and not the camera-aware expansion."""
    params = {"k1_intra": 5, "k1_inter": 20, "lam": 0.3}
    plain, dense, _, _ = fast_and_dense("caj", 6, True, qe="plain", k2=k2, **params)
    np.testing.assert_allclose(plain, dense, atol=1e-9)
    camera, _, _, _ = fast_and_dense("caj", 6, True, qe="camera", k2_intra=2, k2_inter=4, **params)
    assert np.abs(plain - camera).max() > 1e-3


def test_caj_unknown_query_expansion():
    with pytest.raises(MuseError, match="caj qe = 'both': expected one of camera, plain"):
        params_for("caj", {"qe": "both"})


def test_caj_refuses_the_neighbour_counts_of_the_other_expansion():
    """k2 is read by the plain expansion only, k2_intra/k2_inter by the camera-aware one."""
    with pytest.raises(MuseError, match=r"caj k2 = 100000: read with qe = plain only \(qe = camera expands"):
        params_for("caj", {"k2": 100000})
    with pytest.raises(MuseError, match="caj k2_intra = 2: read with qe = camera only"):
        params_for("caj", {"qe": "plain", "k2_intra": 2})
    assert params_for("caj", {"qe": "plain", "k2": 7})["k2"] == 7
    assert params_for("caj", {"k2_intra": 2, "k2": None})["k2_intra"] == 2


@pytest.mark.parametrize("method", ["krnn", "ecn", "caj"])
def test_float32_within_1e5(method):
    fast, dense, blocks, ids = fast_and_dense(method, 3, True, dtype=torch.float32, **PARAMS[method])
    np.testing.assert_allclose(fast, dense, atol=1e-5, rtol=1e-6)
    assert evaluate(iter(blocks), *ids)["mAP"] == pytest.approx(eval_reference(dense, *ids)["mAP"], abs=1e-6)


def test_rerank_changes_the_ranking():
    """Not a no-op: re-ranked distances order the gallery differently from D."""
    fast, _, _, _ = fast_and_dense("krnn", 0, False, **PARAMS["krnn"])
    base, _, _, _ = fast_and_dense("none", 0, False)
    assert (np.argsort(fast, 1) != np.argsort(base, 1)).any()


def test_caj_spill_over_of_a_rare_camera():
    """Camera 9 has 2 images: their intra lists continue into other cameras, as with +999."""
    q, g, qp, qc, gp, gc = clustered(0)
    cams = np.concatenate([qc, gc])
    D = Distance(q, g, dtype=torch.float64)
    nb = knn(D, {"intra": 6, "inter": 21}, camids=cams)
    same = cams[:, None] == cams[None, :]
    ref_intra = ranking(dense_distance(q, g), penalty=999.0 * ~same)[:, :6]
    np.testing.assert_array_equal(nb["intra"].index.numpy(), ref_intra)
    rare = np.flatnonzero(cams == 9)
    assert set(nb["intra"].index[rare[0], :2].tolist()) == set(rare)
    assert (cams[nb["intra"].index[rare[0], 2:].numpy()] != 9).all()


def test_knn_self_first_and_sorted():
    q, g, *_ = clustered(4)
    D = Distance(q, g, dtype=torch.float64)
    nb = knn(D, 8, memory=17 * 17 * 42)
    assert (nb["all"].index[:, 0] == torch.arange(D.N)).all()
    assert (nb["all"].dist.diff(dim=1) >= 0).all()
    np.testing.assert_array_equal(nb["all"].index.numpy(), ranking(dense_distance(q, g))[:, :8])


def test_knn_screened_tiles_equal_the_dense_ranking(monkeypatch):
    """Tiles of 64 items screened in groups of 4 columns (the pre-screen runs, as its
    unsorted top-k over group maxima shows): every list equals the dense ranking's."""
    from muse.rerank import knn as K

    calls = []
    topk = torch.topk

    def spy(*args, **kw):
        calls.append(kw.get("sorted", True))
        return topk(*args, **kw)

    monkeypatch.setattr(K, "GROUP", 4)
    monkeypatch.setattr(K.torch, "topk", spy)
    q, g, qp, qc, gp, gc = clustered(8, Q=60, G=500, ids=40, cams=5)
    cams = np.concatenate([qc, gc])
    D = Distance(q, g, dtype=torch.float64)
    nb = knn(D, {"all": 9, "intra": 4, "inter": 12}, camids=cams, memory=64 * 64 * 42)
    assert False in calls
    Dd, same = dense_distance(q, g), cams[:, None] == cams[None, :]
    np.testing.assert_array_equal(nb["all"].index.numpy(), ranking(Dd)[:, :9])
    np.testing.assert_array_equal(nb["intra"].index.numpy(), ranking(Dd, penalty=999.0 * ~same)[:, :4])
    np.testing.assert_array_equal(nb["inter"].index.numpy(), ranking(Dd, penalty=999.0 * same)[:, :12])
    np.testing.assert_allclose(nb["row_max"].numpy(), Dd.max(1), atol=1e-12)


def test_packed_keys_sort_by_similarity_then_index():
    """One top-k over the packed keys = the two-key order (σ descending, index ascending),
    with ties, −0 = +0, negative values and −∞."""
    from muse.rerank.knn import _packed

    rng = np.random.default_rng(3)
    s = rng.choice(np.float32([0.5, -0.25, 0.0, -0.0, 1e-30, -1e-30, -np.inf, 2.0, 0.75]), size=(50, 40))
    i = np.stack([rng.permutation(1000)[:40] for _ in range(50)])
    got = torch.topk(_packed(torch.as_tensor(s), torch.as_tensor(i)), 40, dim=1).indices.numpy()
    want = np.stack([np.lexsort((i[r], -s[r].astype(np.float64))) for r in range(50)])
    np.testing.assert_array_equal(np.take_along_axis(i, got, 1), np.take_along_axis(i, want, 1))


def test_knn_float32_screened_equals_unscreened(monkeypatch):
    """float32 features (the packed merge): the screened search gives the lists of the search
    that merges each tile's top-k."""
    from muse.rerank import knn as K

    q, g, qp, qc, gp, gc = clustered(9, Q=60, G=500, ids=40, cams=5)
    cams, memory = np.concatenate([qc, gc]), 64 * 64 * 22
    D = Distance(q, g, dtype=torch.float32)
    ks = {"all": 9, "intra": 4, "inter": 12}
    monkeypatch.setattr(K, "GROUP", 4)
    screened = knn(D, ks, camids=cams, memory=memory)
    monkeypatch.setattr(K, "GROUP", 10**6)
    plain = knn(D, ks, camids=cams, memory=memory)
    for name in ks:
        assert torch.equal(screened[name].index, plain[name].index)
        assert torch.equal(screened[name].dist, plain[name].dist)


def test_fusion_is_symmetric_and_local():
    q, g, *_ = clustered(6)
    cand, sy, sn = scores_for(q, g, 5, 6)
    D = Distance(q, g, dtype=torch.float64).fuse(cand, sy, sn, 0.2, 5.0, 5)
    full = torch.cat([D.block(slice(i, i + 7)) for i in range(0, D.N, 7)]).numpy()
    Dd = dense_distance(q, g, mu_fused(dense_distance(q, g), len(q), cand, sy, sn, 0.2, 5.0, 5))
    np.testing.assert_allclose(full, Dd, atol=1e-12)
    np.testing.assert_allclose(full, full.T, atol=1e-12)
    i = torch.tensor([0, 0, 30, len(q) + int(cand[2, 1])])
    j = torch.tensor([len(q) + int(cand[0, 0]), 5, 31, 2])
    np.testing.assert_allclose(D.pairs(i, j).numpy(), Dd[i.numpy(), j.numpy()], atol=1e-12)


def test_fusion_hand_computed():
    """α = 0.5, τ = 1, s_yes = s_no → P_no = ½: D' = ½·D + ½·2·½."""
    q, g = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0]])
    D = Distance(q, g, dtype=torch.float64).fuse(np.array([[1, 0]]), np.zeros((1, 2)), np.zeros((1, 2)), 0.5, 1.0, 1)
    block = D.block(slice(0, 3)).numpy()
    assert block[0, 2] == pytest.approx(0.5 * 0.0 + 0.5)  # fused: candidate 1 (identical)
    assert block[2, 0] == pytest.approx(0.5)
    assert block[0, 1] == pytest.approx(np.sqrt(2))  # not a candidate within C = 1


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"alpha": 1.5, "tau": 5, "C": 4}, "alpha = 1.5"),
        ({"alpha": -0.1, "tau": 5, "C": 4}, "alpha = -0.1"),
        ({"alpha": 0.2, "tau": 0, "C": 4}, "tau = 0"),
        ({"alpha": 0.2, "tau": 5, "C": 11}, "C = 11: expected 1 <= C <= 10"),
    ],
)
def test_fusion_parameter_errors(kwargs, fragment):
    with pytest.raises(MuseError, match=fragment):
        check_fusion(width=10, G=100, **kwargs)


def test_rerank_errors():
    q, g, *_ = clustered(0, G=12)
    D = Distance(q, g)
    with pytest.raises(MuseError, match="krnn needs 20 neighbours but the gallery has only 12"):
        rerank("krnn", D)
    with pytest.raises(MuseError, match="unknown re-ranking method 'fancy'"):
        rerank("fancy", D)
    with pytest.raises(MuseError, match="has no parameter 'k9'"):
        rerank("ecn", D, k9=3)
    with pytest.raises(MuseError, match="lambda = 2"):
        rerank("krnn", D, k1=5, lam=2)


def test_malformed_candidates_are_refused(tmp_path):
    """Reversed (not in base-distance order), repeated or non-integer candidates: one clear error."""
    from muse.io import Scores, load_scores, save_scores

    q, g, *_ = clustered(7)
    cand, sy, sn = scores_for(q, g, 5, 0)
    with pytest.raises(MuseError, match="candidates of query 0 are not in order of the base distance"):
        Distance(q, g).fuse(cand[:, ::-1].copy(), sy, sn, 0.2, 5.0, 5)
    Distance(q, g).fuse(cand, sy, sn, 0.2, 5.0, 5)  # in order: accepted
    repeated = cand.copy()
    repeated[3, 4] = repeated[3, 0]
    save_scores(tmp_path / "r.npz", Scores(repeated, sy, sn))
    with pytest.raises(MuseError, match="r.npz: 'cand' repeats a gallery index"):
        load_scores(tmp_path / "r.npz", len(q), len(g))
    np.savez(tmp_path / "f.npz", cand=cand.astype(np.float32), s_yes=sy, s_no=sn)
    with pytest.raises(MuseError, match="f.npz: 'cand' holds float32 values, expected gallery indices"):
        load_scores(tmp_path / "f.npz", len(q), len(g))


def test_similarity_is_the_square_root_free_key_of_the_distance():
    """σ = 1 − D²/2 on every entry, μ-fused overrides included, and 1 on the diagonal."""
    q, g, *_ = clustered(8)
    cand, sy, sn = scores_for(q, g, 5, 8)
    D = Distance(q, g, dtype=torch.float64).fuse(cand, sy, sn, 0.4, 2.0, 5)
    Dd = dense_distance(q, g, mu_fused(dense_distance(q, g), len(q), cand, sy, sn, 0.4, 2.0, 5))
    s = torch.cat([D.similarity(slice(i, i + 9), slice(5, 80)) for i in range(0, D.N, 9)]).numpy()
    np.testing.assert_allclose(s, 1 - Dd[:, 5:80] ** 2 / 2, atol=1e-12)
    assert (np.diag(s[5:80]) == 1).all()


def test_reordered_distance_is_the_permuted_matrix():
    q, g, *_ = clustered(9)
    cand, sy, sn = scores_for(q, g, 4, 9)
    D = Distance(q, g, dtype=torch.float64).fuse(cand, sy, sn, 0.3, 1.0, 4)
    order = torch.as_tensor(np.random.default_rng(0).permutation(D.N))
    full = D.block(slice(0, D.N)).numpy()
    np.testing.assert_allclose(D.reordered(order).block(slice(0, D.N)).numpy(), full[np.ix_(order, order)], atol=1e-12)


@pytest.mark.parametrize("share", [0.0, float("inf")])
def test_ecn_all_dense_or_all_sparse_equals_dense_reference(share, monkeypatch):
    """Every column multiplied densely (share 0) or sparsely (∞): the same exact ECN."""
    from muse.rerank import ecn as E

    monkeypatch.setattr(E, "_DENSE", share)
    fast, dense, _, _ = fast_and_dense("ecn", 2, True, **PARAMS["ecn"])
    np.testing.assert_allclose(fast, dense, atol=1e-9)


@pytest.mark.parametrize("share", [0.0, 0.04, float("inf")])
def test_ecn_torch_products_equal_scipy_ones(share, monkeypatch):
    """The block products in torch's sparse CSR kernels (the GPU's engine, here on the CPU backend)
    give exactly the scipy engine's distances, whichever columns are multiplied densely."""
    from muse.rerank import ecn as E

    monkeypatch.setattr(E, "_DENSE", share)
    q, g, *_ = clustered(4)
    cand, sy, sn = scores_for(q, g, 8, 4)
    D = Distance(q, g, dtype=torch.float64).fuse(cand, sy, sn, 0.3, 2.0, 8)
    scipy_blocks = list(E.ecn_blocks(D, **PARAMS["ecn"], memory=20_000, engine="scipy"))
    torch_blocks = list(E.ecn_blocks(D, **PARAMS["ecn"], memory=20_000, engine="torch"))
    assert len(scipy_blocks) > 1 and [r for r, _ in scipy_blocks] == [r for r, _ in torch_blocks]
    for (_, a), (_, b) in zip(scipy_blocks, torch_blocks):
        assert torch.equal(a, b)
    dense = ecn_dense(
        dense_distance(q, g, mu_fused(dense_distance(q, g), len(q), cand, sy, sn, 0.3, 2.0, 8)), len(q), **PARAMS["ecn"]
    )
    np.testing.assert_allclose(torch.cat([b for _, b in torch_blocks]).numpy(), dense, atol=1e-9)
