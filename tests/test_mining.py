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
    pids[:1] = 99                                   # an identity with a single image: no positives
    feats = rng.normal(size=(12, 16))[pids % 12] + rng.normal(scale=1.0, size=(90, 16))
    got = list(qchm(feats.astype(np.float64), pids, cpos=5, cneg=5, block=16))
    assert len(got) == len(set(got))
    assert set(got) == brute_force(feats, pids, 5, 5)
    assert not any(i == j for i, j, _ in got)
    assert not any(i == 0 and label == "Yes" for i, _, label in got)


def test_random_pairs_balance_and_determinism():
    pids = np.array([1, 1, 1, 2, 2, 3, 3, 3, 3, 4])
    pairs = list(random_pairs(pids, cpos=2, cneg=3, seed=5))
    assert pairs == list(random_pairs(pids, 2, 3, seed=5)) != list(random_pairs(pids, 2, 3, seed=6))
    for i in range(len(pids)):
        mine_i = [(j, lab) for k, j, lab in pairs if k == i]
        yes = [j for j, lab in mine_i if lab == "Yes"]
        no = [j for j, lab in mine_i if lab == "No"]
        assert len(yes) == min(2, (pids == pids[i]).sum() - 1) and len(no) == 3
        assert all(pids[j] == pids[i] and j != i for j in yes) and all(pids[j] != pids[i] for j in no)
        assert len(set(yes)) == len(yes) and len(set(no)) == len(no)


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


def test_cli_mine_with_validation_split(tmp_path):
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(10), 4)
    n = len(pids)
    save_features(tmp_path / "f.npz", Features(
        feats=rng.normal(size=(n, 8)).astype(np.float32), pids=pids, camids=np.ones(n, int),
        paths=np.array([f"img{i}.jpg" for i in range(n)]), split=np.array(["train"] * n)))
    res = subprocess.run([sys.executable, "-m", "muse.cli", "mine", "--features", tmp_path / "f.npz",
                          "--out", tmp_path / "p.jsonl", "--val-ids", "0.2", "--val-out", tmp_path / "v.jsonl"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    train = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    val = [json.loads(x) for x in (tmp_path / "v.jsonl").read_text().splitlines()]
    pid_of = {f"img{i}.jpg": p for i, p in enumerate(pids)}
    train_ids = {pid_of[r["query"]] for r in train} | {pid_of[r["candidate"]] for r in train}
    val_ids = {pid_of[r["query"]] for r in val} | {pid_of[r["candidate"]] for r in val}
    assert len(val_ids) == 2 and not train_ids & val_ids
    assert len(train) == 8 * 4 * (3 + 5) and {r["label"] for r in train} == {"Yes", "No"}
