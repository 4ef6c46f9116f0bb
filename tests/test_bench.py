"""Benchmarks: the FLOP model of the scoring engines against torch's FLOP counter, and the GPU
benchmark's smoke mode end to end on the CPU."""

import json

import pytest
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from muse.bench import machine
from muse.bench.dg import dg_markdown
from muse.bench.rerank import bench_floor, bench_original, bench_rerank
from muse.bench.score import bench_score, judge_of, pair_flops, random_images
from muse.mllm.prompt import load_pair_image

from helpers import muse


def test_pair_flops_equal_the_counted_flops_of_both_engines(tmp_path):
    """Naive: one pair's forward; cached: 2 queries sharing 2 candidates (4 images' visual tokens,
    2 prefixes, 2 batched suffixes), per pair; counted by torch with dense (math) attention."""
    judge = judge_of("qwen2_vl", "tiny")
    ims = [load_pair_image(p) for p in random_images(tmp_path, 4)]
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as naive:
        judge.naive([ims[0]], [ims[1]])
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as cached:
        v = judge.visual(ims)
        for q in range(2):
            judge.suffix(judge.prefix(v[q]), v[2:])
    model = pair_flops(judge, queries=2, C=2)
    assert model["naive_gflop_per_pair"] == pytest.approx(naive.get_total_flops() / 1e9, rel=0.01)
    assert model["cached_gflop_per_pair"] == pytest.approx(cached.get_total_flops() / 4 / 1e9, rel=0.01)
    assert model["bound_cached_vs_naive"] == pytest.approx(
        naive.get_total_flops() / (cached.get_total_flops() / 4), rel=0.02
    )


def test_bench_score_compares_the_engines_on_one_model():
    out = bench_score(size="tiny", queries=2, C=4, batch=4)
    assert set(out["pairs_per_s"]) == {"naive_b1", "naive_b4", "cached_b4"}
    assert all(v > 0 for v in out["pairs_per_s"].values()) and out["max_abs_logit_diff"] <= 1e-4
    tok = out["tokens"]
    assert tok["vision"] == 100 and 0 < tok["prefix"] < tok["vision"] + tok["text"]
    assert tok["prompt_text"] + tok["suffix_text"] == tok["text"] and tok["prefix"] == tok["prompt_text"] + 50
    assert out["timed_pairs"] == 5 and all(out["one_pair_ms_std"][k] >= 0 for k in out["one_pair_ms"])
    assert out["flops"]["bound_cached_vs_naive"] > 1
    assert out["vocabulary"] == "small BPE of the prompts"


def test_bench_gpu_smoke_mode_runs_every_section_on_the_cpu(tmp_path):
    res = muse("bench", "gpu", "--device", "cpu", "--size", "tiny", "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "bench_gpu.json").read_text())
    sections = report["sections"]
    assert list(sections) == [
        "score qwen2_vl tiny",
        "score qwen2_5_vl tiny",
        "encoder",
        "evaluate tiny",
        "krnn tiny",
        "ecn tiny",
        "caj tiny",
    ]
    assert not any("error" in s for s in sections.values())
    score = sections["score qwen2_vl tiny"]
    assert set(score["ms_per_pair"]) == {"naive_b1", "naive_b4", "cached_b4", "cached_b8"}
    assert score["max_abs_logit_diff"] <= 1e-4 and score["attention"] == "sdpa"
    assert (
        score["vocabulary"] == "small BPE of the prompts"
        and "| vocabulary | small BPE" in (tmp_path / "bench_gpu.md").read_text()
    )
    assert sections["encoder"]["images_per_s"] > 0
    assert all(0 < sections[f"{m} tiny"]["mAP"] <= 1 for m in ("evaluate", "krnn", "ecn", "caj"))
    md = (tmp_path / "bench_gpu.md").read_text()
    assert "## score qwen2_vl tiny" in md and "| ms_per_pair.cached_b8 |" in md
    assert json.loads(res.stdout)["sections"] == sections


def test_bench_rerank_reports_the_jaccard_work_and_hubs_raise_it():
    """Hubs (gallery items near every other) are shared by many rows of V: its largest column
    and the Jaccard step's triples grow, and the result still equals the library's re-ranking."""
    from muse.bench.testsets import FEATURES
    from muse.distance import Distance
    from muse.evaluate import evaluate
    from muse.rerank import rerank

    runs = {f: bench_rerank("tiny", "krnn", features=f, fused=False) for f in FEATURES}
    assert runs["hubby"]["max_column_nnz"] > 3 * runs["clustered"]["max_column_nnz"]
    assert runs["hubby"]["triples"] > 3 * runs["clustered"]["triples"]
    q, qp, qc, g, gp, gc = FEATURES["hubby"]("tiny", 512)
    direct = evaluate(rerank("krnn", Distance(q, g)), qp, qc, gp, gc)
    assert runs["hubby"]["mAP"] == round(direct["mAP"], 4)


def test_bench_original_runs_a_given_re_ranking_file_on_the_same_features(tmp_path):
    """The file's re_ranking() gets the dense query–gallery, query–query and gallery–gallery
    distances of the bench's features; one that returns q_g_dist unchanged scores the base mAP."""
    from muse.bench.testsets import FEATURES
    from muse.distance import Distance
    from muse.evaluate import evaluate

    code = tmp_path / "re_ranking_ranklist.py"
    code.write_text(
        "def re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):\n"
        "    assert q_q_dist.shape == (100, 100) and g_g_dist.shape == (500, 500)\n"
        "    assert abs(q_q_dist.diagonal()).max() == 0 and (k1, k2, lambda_value) == (20, 6, 0.3)\n"
        "    return q_g_dist\n"
    )
    out = bench_original(code, "tiny")
    q, qp, qc, g, gp, gc = FEATURES["clustered"]("tiny", 512)
    assert out["mAP"] == round(evaluate(Distance(q, g).query_blocks(), qp, qc, gp, gc)["mAP"], 4)
    assert out["peak_rss_gb"] > 0 and out["fused"] is False


def test_bench_floor_times_the_products_of_all_pairs():
    out = bench_floor("tiny", d=64)
    assert out["N"] == 600 and out["gflops"] > 0


def test_dg_markdown_is_the_matrix_of_the_rows():
    rows = [
        {"train": t, "test": u, "rerank": m, "mAP": mp, "R1": r1}
        for t, u, m, mp, r1 in [
            ("MA", "MA", "none", 0.5, 0.25),
            ("MA", "MA", "krnn", 0.55, 0.3),
            ("MA", "MS", "none", 0.1, 0.05),
            ("MA", "MS", "krnn", 0.125, 0.0625),
            ("MS", "MA", "none", 0.2, 0.1),
            ("MS", "MA", "krnn", 0.3, 0.2),
            ("MS", "MS", "none", 0.4, 0.35),
            ("MS", "MS", "krnn", 0.45, 0.4),
        ]
    ]
    assert dg_markdown(rows).splitlines() == [
        f"mAP / R1 (%), base distance → with K-RNN; {machine()}",
        "",
        "| train \\ test | MA | MS |",
        "|---|---|---|",
        "| MA | 50.0 / 25.0 → 55.0 / 30.0 | 10.0 / 5.0 → 12.5 / 6.2 |",
        "| MS | 20.0 / 10.0 → 30.0 / 20.0 | 40.0 / 35.0 → 45.0 / 40.0 |",
    ]


def test_bench_dg_trains_per_domain_and_re_ranks_with_the_given_k_rnn(tmp_path):
    """Two domains: a row per (train, test, none|krnn); the K-RNN cell is the trained encoder's
    features re-ranked with the parameters passed (the config's), not the library defaults."""
    from muse.bench.dg import bench_dg
    from muse.data.formats import manifest
    from muse.data.synthetic import Sizes, generate_domain
    from muse.encoder.features import extract
    from muse.encoder.model import ReIDEncoder
    from muse.evaluate import evaluate
    from muse.rerank import rerank_features

    manifests = {}
    for domain, fmt in (("MA", "market1501"), ("C3", "cuhk03np")):
        sizes = Sizes(train_ids=4, test_ids=6, cameras=2, cams_per_id=(2, 2), images_per_camera=(2, 3))
        generate_domain(domain, tmp_path / domain, sizes, seed=1, progress=False)
        manifests[domain] = manifest(fmt, tmp_path / domain, check=False, progress=False)
    encoder = {
        "clip": {
            "embed_dim": 16,
            "vision_cfg": {"patch_size": 8, "width": 16, "layers": 1, "head_width": 8},
            "text_cfg": {"context_length": 4, "vocab_size": 16, "width": 16, "heads": 1, "layers": 1},
        },
        "image_size": [32, 16],
        "weights": None,
        "train": {"epochs": 1, "ids_per_batch": 2, "imgs_per_id": 2, "warmup_epochs": 1, "milestones": [5]},
    }
    krnn = {"k1": 3, "k2": 2, "lam": 0.5}
    rows = bench_dg(manifests, encoder, tmp_path / "work", krnn)
    assert [(r["train"], r["test"], r["rerank"]) for r in rows] == [
        (t, u, m) for t in ("MA", "C3") for u in ("MA", "C3") for m in ("none", "krnn")
    ]
    test = manifests["C3"][manifests["C3"].split.isin(["query", "gallery"])]
    q, g = extract(ReIDEncoder.from_pretrained(tmp_path / "work" / "MA"), test, progress=False).query_gallery()
    mAP = evaluate(rerank_features(q, g, "krnn", krnn), q.pids, q.camids, g.pids, g.camids)["mAP"]
    assert rows[3]["mAP"] == pytest.approx(mAP)
