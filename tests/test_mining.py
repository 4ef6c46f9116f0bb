"""Mining against a dense brute force; random sampling; identity-disjoint validation split."""

import json
import subprocess
import sys

import numpy as np
import pytest

from muse.errors import MuseError
from muse.io import Features, save_features
from muse.mining import mine, qchm, random_pairs, split_identities


def brute_force(feats, pids, cpos, cneg):
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    D = np.sqrt(np.maximum(0, 2 - 2 * f @ f.T))
    out = set()
    for i in range(len(f)):
        same = [j for j in range(len(f)) if pids[j] == pids[i] and j != i]
        other = [j for j in range(len(f)) if pids[j] != pids[i]]
        out |= {(i, j, "Yes") for j in sorted(same, key=lambda j: (-D[i, j], j))[:cpos]}
        out |= {(i, j, "No") for j in sorted(other, key=lambda j: (D[i, j], j))[:cneg]}
    return out


@pytest.mark.parametrize("seed", range(3))
def test_qchm_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    pids = rng.integers(0, 12, 90)
    pids[:1] = 99  # an identity with a single image: no positives
    feats = rng.normal(size=(12, 16))[pids % 12] + rng.normal(scale=1.0, size=(90, 16))
    got = list(qchm(feats.astype(np.float64), pids, cpos=5, cneg=5, block=16))
    assert len(got) == len(set(got))
    assert set(got) == brute_force(feats, pids, 5, 5)
    assert not any(i == j for i, j, _ in got)
    assert not any(i == 0 and label == "Yes" for i, _, label in got)


def test_random_pairs_uniform_and_labelled_by_identity():
    """As the release's create_random_dataset: k others drawn uniformly, each labelled by
    identity, so that the share of "Yes" is about (images of the identity − 1) / (N − 1)."""
    pids = np.repeat(np.arange(50), 4)  # 200 images, 3 same-identity others each
    pairs = list(random_pairs(pids, k=5, seed=5))
    assert pairs == list(random_pairs(pids, 5, seed=5)) != list(random_pairs(pids, 5, seed=6))
    assert len(pairs) == 200 * 5
    for i in range(len(pids)):
        js = [j for k, j, _ in pairs if k == i]
        assert len(set(js)) == 5 and i not in js
    assert all((lab == "Yes") == (pids[i] == pids[j]) for i, j, lab in pairs)
    yes = sum(lab == "Yes" for *_, lab in pairs) / len(pairs)
    assert yes == pytest.approx(3 / 199, abs=0.01)  # balanced sampling would give 0.5
    counts = np.bincount([j for _, j, _ in pairs], minlength=200)
    assert counts.max() < 18 and (counts > 0).mean() > 0.95  # none favoured (mean 5, Poisson-like)


def test_split_identities_is_identity_disjoint():
    pids = np.repeat(np.arange(20), 3)
    held = split_identities(pids, 0.25, seed=1)
    assert len(np.unique(pids[held])) == 5
    assert not set(pids[held]) & set(pids[~held])
    with pytest.raises(MuseError, match="--val-ids 1.0"):
        split_identities(pids, 1.0)


def test_mine_records_and_errors():
    feats, pids = np.eye(4), np.array([1, 1, 2, 2])
    recs = mine(feats, pids, np.array(["a", "b", "c", "d"]), "qchm", 1, 1)
    assert {"query": "a", "candidate": "b", "label": "Yes"} in recs and len(recs) == 8
    with pytest.raises(MuseError, match="unknown mining strategy 'hardest'"):
        mine(feats, pids, np.array(["a"] * 4), "hardest")
    assert len(mine(feats, pids, np.array(["a", "b", "c", "d"]), "random", 1, 1, random_k=2)) == 8
    with pytest.raises(MuseError, match="random_k = 0"):
        mine(feats, pids, np.array(["a"] * 4), "random", random_k=0)


def test_cli_mine_with_validation_split(tmp_path):
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(10), 4)
    n = len(pids)
    save_features(
        tmp_path / "f.npz",
        Features(
            feats=rng.normal(size=(n, 8)).astype(np.float32),
            pids=pids,
            camids=np.ones(n, int),
            paths=np.array([f"img{i}.jpg" for i in range(n)]),
            split=np.array(["train"] * n),
        ),
    )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "muse.cli",
            "mine",
            "--features",
            tmp_path / "f.npz",
            "--out",
            tmp_path / "p.jsonl",
            "--val-ids",
            "0.2",
            "--val-out",
            tmp_path / "v.jsonl",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    train = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    val = [json.loads(x) for x in (tmp_path / "v.jsonl").read_text().splitlines()]
    pid_of = {f"img{i}.jpg": p for i, p in enumerate(pids)}
    train_ids = {pid_of[r["query"]] for r in train}
    val_ids = {pid_of[r["query"]] for r in val}
    assert len(val_ids) == 2 and not train_ids & val_ids  # held out by the query's identity
    assert len(train) == 8 * 4 * (3 + 5) and len(val) == 2 * 4 * (3 + 5)
    assert {r["label"] for r in train} == {"Yes", "No"}
    whole = mine(rng.normal(size=(n, 8)), pids, np.array([f"img{i}.jpg" for i in range(n)]), "qchm")
    assert len(whole) == len(train) + len(val)  # mined over all identities, then split
