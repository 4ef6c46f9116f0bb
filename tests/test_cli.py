"""The `muse` command: outputs on good input, one clear line and no output on bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from muse.diagnostics import roc_auc
from muse.fusion import Fusion
from muse.io import Features, load_features, save_features

from helpers import fails_with_one_line, muse, random_case, reference, write_image


def test_manifest_writes_csv_and_sidecar(market, tmp_path):
    out = tmp_path / "ma.csv"
    res = muse("data", "manifest", "--format", "market1501", "--root", market, "--out", out)
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "path,pid,camid,split,domain" and len(lines) == 9
    meta = json.loads((tmp_path / "ma.csv.meta.json").read_text())
    assert meta["config"]["format"] == "market1501" and "numpy" in meta["packages"]


@pytest.mark.parametrize(
    "breakage, fragment",
    [
        ("missing_root", "missing dataset root"),
        ("bad_name", "0012-c1.jpg: file name does not follow"),
        ("corrupt", "0013_c1s1_000001_01.jpg: unreadable image"),
        ("empty_split", "empty split 'gallery'"),
    ],
)
def test_manifest_bad_input(market, tmp_path, breakage, fragment):
    root = market
    if breakage == "missing_root":
        root = tmp_path / "absent"
    elif breakage == "bad_name":
        write_image(market / "query" / "0012-c1.jpg")
    elif breakage == "corrupt":
        (market / "query" / "0013_c1s1_000001_01.jpg").write_bytes(b"garbage")
    else:
        for f in (market / "bounding_box_test").glob("*.jpg"):
            f.unlink()
    out = tmp_path / "ma.csv"
    fails_with_one_line(muse("data", "manifest", "--format", "market1501", "--root", root, "--out", out), fragment)
    assert not out.exists() and not list(tmp_path.glob(".ma.csv*"))


def write_features(path, rng):
    q, g, qp, qc, gp, gc = random_case(rng)
    feats = Features(
        feats=np.concatenate([q, g]).astype(np.float32),
        pids=np.concatenate([qp, gp]),
        camids=np.concatenate([qc, gc]),
        paths=np.array([f"img{i}.jpg" for i in range(len(q) + len(g))]),
        split=np.array(["query"] * len(q) + ["gallery"] * len(g)),
    )
    save_features(path, feats)
    return q, g, qp, qc, gp, gc


def test_evaluate_matches_reference(tmp_path):
    q, g, qp, qc, gp, gc = write_features(tmp_path / "f.npz", np.random.default_rng(7))
    res = muse("evaluate", "--features", tmp_path / "f.npz", "--json", "--out", tmp_path / "eval.json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert json.loads((tmp_path / "eval.json").read_text()) == got
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    ref = reference(np.linalg.norm(qn[:, None] - gn[None], axis=2), qp, qc, gp, gc)
    assert got["mAP"] == pytest.approx(ref["mAP"], abs=1e-6)
    assert got["R1"] == pytest.approx(ref["cmc"][0]) and got["R5"] == pytest.approx(ref["cmc"][4])
    assert got["mINP"] == pytest.approx(ref["mINP"], abs=1e-6)
    assert 0 <= got["mAP"] <= 1 and got["params"]["rerank"] == "none"


def test_evaluate_bad_features(tmp_path):
    fails_with_one_line(muse("evaluate", "--features", tmp_path / "none.npz"), "none.npz: features file not found")
    write_features(tmp_path / "f.npz", np.random.default_rng(1))
    f = load_features(tmp_path / "f.npz")
    f.feats[3, 2] = np.nan
    save_features(tmp_path / "nan.npz", f)
    fails_with_one_line(muse("evaluate", "--features", tmp_path / "nan.npz"), "nan.npz: 'feats' contains NaN")
    f = load_features(tmp_path / "f.npz")
    save_features(tmp_path / "noq.npz", Features(f.feats, f.pids, f.camids, f.paths, np.full(len(f.pids), "gallery")))
    fails_with_one_line(muse("evaluate", "--features", tmp_path / "noq.npz"), "no rows with split 'query'")
    np.savez(tmp_path / "short.npz", feats=f.feats, pids=f.pids)
    fails_with_one_line(muse("evaluate", "--features", tmp_path / "short.npz"), "missing array(s) camids, paths, split")


def test_synth_and_convert_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("world: {seed: 0, domains: {MA: {train_ids: 2, test_ids: 2, cameras: 2, cams_per_id: [1, 2]}}}\n")
    fails_with_one_line(
        muse("data", "synth", "--domain", "MA", "--out", tmp_path / "w", "--config", cfg),
        "world.domains.MA.cams_per_id",
    )
    fails_with_one_line(
        muse("data", "synth", "--domain", "MS", "--out", tmp_path / "w", "--config", cfg), "world.domains has no 'MS'"
    )
    fails_with_one_line(
        muse("data", "convert-cuhksysu", "--raw", tmp_path, "--out", tmp_path / "cs"), "Train.mat: missing"
    )
    assert not (tmp_path / "w").exists() and not (tmp_path / "cs").exists()


def test_synth_writes_a_readable_domain(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("world: {seed: 0, domains: {C3: {train_ids: 2, test_ids: 2, cameras: 2}}}\n")
    assert muse("data", "synth", "--domain", "C3", "--out", tmp_path / "c3", "--config", cfg).returncode == 0
    res = muse("data", "manifest", "--format", "cuhk03np", "--root", tmp_path / "c3", "--out", tmp_path / "c3.csv")
    assert res.returncode == 0, res.stderr
    assert "train" in res.stdout and "query" in res.stdout


def test_bench_evaluate_prints_figures():
    res = muse("bench", "evaluate", "--size", "market", "--dim", "64")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["Q"] == 3368 and out["G"] == 15913 and out["seconds"] > 0 and out["peak_rss_gb"] > 0


def write_rerank_case(tmp_path, seed=0, G=110):
    from muse.io import Scores, save_scores

    from helpers import clustered, scores_for

    q, g, qp, qc, gp, gc = clustered(seed, G=G)
    save_features(
        tmp_path / "f.npz",
        Features(
            feats=np.concatenate([q, g]).astype(np.float32),
            pids=np.concatenate([qp, gp]),
            camids=np.concatenate([qc, gc]),
            paths=np.array([f"{i}.jpg" for i in range(len(q) + len(g))]),
            split=np.array(["query"] * len(q) + ["gallery"] * len(g)),
        ),
    )
    cand, sy, sn = scores_for(q, g, 10, seed)
    save_scores(tmp_path / "s.npz", Scores(cand, sy, sn))
    return q, g, qp, qc, gp, gc, cand, sy, sn


def test_evaluate_rerank_with_fusion_matches_dense(tmp_path):
    from rerank_reference import dense_distance, krnn_dense, mu_fused

    q, g, qp, qc, gp, gc, cand, sy, sn = write_rerank_case(tmp_path)
    res = muse(
        "evaluate",
        "--features",
        tmp_path / "f.npz",
        "--rerank",
        "krnn",
        "--k1",
        10,
        "--k2",
        5,
        "--scores",
        tmp_path / "s.npz",
        "--alpha",
        0.3,
        "--tau",
        2,
        "--C",
        6,
        "--json",
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    fused = mu_fused(dense_distance(q, g), len(q), cand, sy.astype(np.float32), sn.astype(np.float32), 0.3, 2.0, 6)
    dense = krnn_dense(dense_distance(q, g, fused), len(q), k1=10, k2=5)
    assert got["mAP"] == pytest.approx(reference(dense, qp, qc, gp, gc)["mAP"], abs=1e-6)
    assert got["params"] == {
        "features": str(tmp_path / "f.npz"),
        "rerank": "krnn",
        "k1": 10,
        "k2": 5,
        "lam": 0.3,
        "scores": str(tmp_path / "s.npz"),
        "alpha": 0.3,
        "tau": 2.0,
        "C": 6,
    }
    pairs = [(i, j) for i in range(len(q)) for j in cand[i, :6] if not (qp[i] == gp[j] and qc[i] == gc[j])]
    different = np.array([qp[i] != gp[j] for i, j in pairs])
    gap = np.array([sn[i, list(cand[i]).index(j)] - sy[i, list(cand[i]).index(j)] for i, j in pairs])
    assert got["judge"]["pairs"] == len(pairs) and got["judge"]["positives"] == int((~different).sum())
    assert got["judge"]["judge_auc"] == pytest.approx(roc_auc(gap, different))
    assert {"judge_auc_query", "base_auc_query", "auc_queries", "recall_C", "gap_median", "gap_p90"} < got[
        "judge"
    ].keys()
    assert got["judge"]["gap_median"] == pytest.approx(np.median(np.abs(gap)), rel=1e-6)
    # the ceiling: the same evaluation with a perfect judge's scores file
    from muse.io import Scores, save_scores

    right = np.where(gp[cand] == qp[:, None], 20.0, -20.0)
    save_scores(tmp_path / "oracle.npz", Scores(cand, right, -right))
    oracle = muse(
        *("evaluate", "--features", tmp_path / "f.npz", "--rerank", "krnn", "--k1", 10, "--k2", 5),
        *("--scores", tmp_path / "oracle.npz", "--alpha", 0.3, "--tau", 2, "--C", 6, "--json"),
    )
    assert oracle.returncode == 0, oracle.stderr
    assert got["judge"]["ceiling"] == json.loads(oracle.stdout)["mAP"] > got["mAP"]
    assert json.loads(oracle.stdout)["judge"]["ceiling"] == got["judge"]["ceiling"]
    text = muse("evaluate", "--features", tmp_path / "f.npz", "--scores", tmp_path / "s.npz", "--C", 6)
    assert text.returncode == 0 and f"judge ROC-AUC {got['judge']['judge_auc']:.4f}" in text.stdout
    assert "recall@6" in text.stdout and "mAP with a perfect judge" in text.stdout


def test_evaluate_ci_answers_whether_the_judge_helps(tmp_path):
    """--ci: the row's intervals; with --scores also the row without fusion and the paired
    difference, equal to muse.intervals over the library's evaluation of both rows."""
    from muse.experiments import evaluate_rows
    from muse.intervals import Bootstrap, annotate
    from muse.io import load_features, load_scores

    write_rerank_case(tmp_path)
    f, s = tmp_path / "f.npz", tmp_path / "s.npz"
    args = ("evaluate", "--features", f, "--rerank", "krnn", "--k1", 10, "--k2", 5, "--scores", s, "--C", 6)
    res = muse(*args, "--ci", "--resamples", 300, "--seed", 3, "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    feats = load_features(f)
    rows = evaluate_rows(
        feats,
        Fusion(load_scores(s, *feats.test_sizes, features=feats), 0.2, 5.0, 6),
        [("plain", False, "krnn"), ("fused", True, "krnn")],
        {"krnn": {"k1": 10, "k2": 5}},
    )
    plain, fused = annotate(rows, Bootstrap(resamples=300, seed=3))
    assert got["mAP"] == fused["mAP"] and got["without_fusion"]["mAP"] == plain["mAP"]
    assert got["ci"] == fused["ci"] and got["without_fusion"]["ci"] == plain["ci"]
    assert got["paired"] == {m: fused["paired"][m] for m in ("mAP", "R1")}
    assert got["params"]["intervals"] == {"resamples": 300, "level": 0.95, "seed": 3}
    text = muse(*args, "--ci", "--resamples", 300, "--seed", 3)
    d, lo, hi = got["paired"]["mAP"]
    assert f"with - without: mAP {d:+.4f} [{lo:.4f}, {hi:.4f}]" in text.stdout
    alone = json.loads(muse("evaluate", "--features", f, "--ci", "--json").stdout)
    assert alone["ci"]["mAP"][0] < alone["mAP"] < alone["ci"]["mAP"][1]
    assert "paired" not in alone and "without_fusion" not in alone
    without = json.loads(muse("evaluate", "--features", f, "--json").stdout)
    assert "ci" not in without and without["mAP"] == alone["mAP"]
    fails_with_one_line(muse("evaluate", "--features", f, "--resamples", 10), "--resamples without --ci")
    for bad, fragment in (("--level", "1"), ("--resamples", "0"), ("--seed", "-2")):
        fails_with_one_line(muse("evaluate", "--features", f, "--ci", bad, fragment), f"argument {bad}")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--alpha", "1.2"], "alpha = 1.2: expected a value in [0, 1]"),
        (["--tau", "0"], "tau = 0.0: expected a positive temperature"),
        (["--C", "11"], "C = 11: expected 1 <= C <= 10"),
        (["--rerank", "krnn", "--k1", "200"], "krnn needs 200 neighbours but the gallery has only 110"),
        (["--rerank", "krnn", "--k1", "5", "--k2", "500"], "krnn needs 500 neighbours but the gallery has only 110"),
        (["--rerank", "ecn", "--k", "5", "--q", "400"], "ecn needs 401 neighbours"),
        (["--rerank", "caj", "--k1-intra", "2", "--k2-inter", "300"], "caj needs 300 neighbours"),
        (["--rerank", "ecn", "--k1", "5"], "re-ranking 'ecn' has no parameter 'k1'"),
    ],
)
def test_evaluate_bad_fusion_and_rerank_parameters(tmp_path, args, fragment):
    write_rerank_case(tmp_path)
    fails_with_one_line(
        muse("evaluate", "--features", tmp_path / "f.npz", "--scores", tmp_path / "s.npz", *args), fragment
    )


def test_evaluate_bad_scores_files(tmp_path):
    from muse.io import Scores, save_scores

    *_, cand, sy, sn = write_rerank_case(tmp_path)
    f = tmp_path / "f.npz"
    save_scores(tmp_path / "short.npz", Scores(cand[:-1], sy[:-1], sn[:-1]))
    fails_with_one_line(
        muse("evaluate", "--features", f, "--scores", tmp_path / "short.npz"),
        "'cand' has shape (23, 10), expected (24, C)",
    )
    bad = sy.copy()
    bad[2, 3] = np.inf
    save_scores(tmp_path / "inf.npz", Scores(cand, bad, sn))
    fails_with_one_line(
        muse("evaluate", "--features", f, "--scores", tmp_path / "inf.npz"), "'s_yes' contains NaN or inf"
    )
    save_scores(tmp_path / "mismatch.npz", Scores(cand, sy[:, :4], sn))
    fails_with_one_line(
        muse("evaluate", "--features", f, "--scores", tmp_path / "mismatch.npz"),
        "'s_yes' has shape (24, 4), expected (24, 10)",
    )
    out_of_range = cand.copy()
    out_of_range[0, 0] = 500
    save_scores(tmp_path / "oor.npz", Scores(out_of_range, sy, sn))
    fails_with_one_line(muse("evaluate", "--features", f, "--scores", tmp_path / "oor.npz"), "outside [0, 110)")
    save_scores(tmp_path / "reversed.npz", Scores(cand[:, ::-1].copy(), sy, sn))  # no fingerprint, wrong order
    fails_with_one_line(
        muse("evaluate", "--features", f, "--scores", tmp_path / "reversed.npz", "--alpha", "0.2"),
        f"{tmp_path / 'reversed.npz'}: the scores' candidates of query 0 are not in order of the base distance",
    )


def test_train_encoder_extract_mine_from_the_cli(tmp_path):
    import yaml

    cfg = {
        "world": {"seed": 0, "domains": {"C3": {"train_ids": 8, "test_ids": 4, "cameras": 2}}},
        "encoder": {
            "clip": {
                "embed_dim": 16,
                "vision_cfg": {"patch_size": 8, "width": 16, "layers": 1, "head_width": 8},
                "text_cfg": {"context_length": 4, "vocab_size": 16, "width": 8, "heads": 1, "layers": 1},
            },
            "image_size": [32, 16],
            "weights": None,
            "batch": 16,
            "train": {"epochs": 1, "lr": 1e-3, "ids_per_batch": 4, "warmup_epochs": 0, "milestones": []},
        },
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert (
        muse("data", "synth", "--domain", "C3", "--out", tmp_path / "c3", "--config", tmp_path / "c.yaml").returncode
        == 0
    )
    assert (
        muse(
            "data", "manifest", "--format", "cuhk03np", "--root", tmp_path / "c3", "--out", tmp_path / "c3.csv"
        ).returncode
        == 0
    )
    res = muse(
        "train-encoder", "--manifest", tmp_path / "c3.csv", "--config", tmp_path / "c.yaml", "--out", tmp_path / "enc"
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "enc" / "model.safetensors").is_file() and (tmp_path / "enc.meta.json").is_file()
    res = muse(
        "extract",
        "--encoder",
        tmp_path / "enc",
        "--manifest",
        tmp_path / "c3.csv",
        "--splits",
        "train,query,gallery",
        "--out",
        tmp_path / "f.npz",
    )
    assert res.returncode == 0, res.stderr
    f = load_features(tmp_path / "f.npz")
    assert set(f.split) == {"train", "query", "gallery"} and f.feats.shape[1] == 16
    assert muse("evaluate", "--features", tmp_path / "f.npz").returncode == 0
    res = muse("mine", "--features", tmp_path / "f.npz", "--out", tmp_path / "pairs.jsonl")
    assert res.returncode == 0, res.stderr
    lines = (tmp_path / "pairs.jsonl").read_text().splitlines()
    assert all(json.loads(x)["query"].endswith(".png") for x in lines)
    fails_with_one_line(
        muse("extract", "--encoder", tmp_path / "c3", "--manifest", tmp_path / "c3.csv", "--out", tmp_path / "g.npz"),
        "config.json: missing",
    )


def test_sft_command_sets_every_field_of_the_recipe():
    from dataclasses import fields

    from muse.cli import parser
    from muse.mllm.sft import SFTConfig

    p = parser(["sft"])
    sft = p._subparsers._group_actions[0].choices["sft"]
    options = {a.dest for a in sft._actions} - {"help", "model", "pairs", "val_pairs", "out"}
    assert options == {f.name for f in fields(SFTConfig)}
    a = p.parse_args(
        [
            "sft",
            "--model",
            "m",
            "--pairs",
            "p",
            "--out",
            "o",
            "--fraction",
            "0.5",
            "--lr-min",
            "1e-6",
            "--lora-dropout",
            "0.1",
            "--vision-attention",
        ]
    )
    assert (a.fraction, a.lr_min, a.lora_dropout, a.rank, a.vision_attention) == (0.5, 1e-6, 0.1, None, True)


def test_command_choices_come_from_the_library():
    """Each command's choices are the library's constants, and building the parser for one
    command loads only that command's modules (``muse --help`` and ``muse data …`` no torch)."""
    from muse.cli import parser
    from muse.data.formats import LAYOUTS
    from muse.data.synthetic import STYLES
    from muse.mining import STRATEGIES
    from muse.mllm.score import ENGINES
    from muse.rerank import DEFAULTS, METHODS

    def choices(command, dest):
        p = parser(command.split())
        for word in command.split():
            p = p._subparsers._group_actions[0].choices[word]
        return next(a for a in p._actions if a.dest == dest)

    assert list(choices("evaluate", "rerank").choices) == list(METHODS)
    assert {choices("evaluate", k).type for k in DEFAULTS["caj"]} == {int, float, str}
    assert list(choices("mine", "strategy").choices) == list(STRATEGIES)
    assert list(choices("score", "engine").choices) == list(ENGINES)
    assert list(choices("data manifest", "format").choices) == list(LAYOUTS)
    assert list(choices("data synth", "domain").choices) == list(STYLES)
    code = (
        "import sys; from muse.cli import parser; parser(['data', 'synth']); parser([]); print('torch' in sys.modules)"
    )
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert light.stdout.strip() == "False"


def test_the_cli_takes_a_shipped_judge_as_the_config_does():
    from muse.cli import parser
    from muse.mllm.model import pretrained_dir

    argv = ["score", "--model", "pretrained:qwen2_5_vl", "--features", "f.npz", "--C", "3", "--out", "s.npz"]
    assert parser(argv).parse_args(argv).model == pretrained_dir("qwen2_5_vl")


def test_every_option_of_every_command_has_a_help_line():
    import argparse

    from muse.cli import COMMANDS, parser

    for name, *_ in COMMANDS:
        command = parser(name.split())
        for word in name.split():
            command = next(a for a in command._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
        bare = [a.option_strings or [a.dest] for a in command._actions if a.dest != "help" and not a.help]
        assert not bare, (name, bare)
