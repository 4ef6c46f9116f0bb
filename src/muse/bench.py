"""Benchmarks that print measured figures (time, peak memory) at the real datasets' sizes."""

from __future__ import annotations

import platform
import resource
import time

import numpy as np
import torch

from muse.distance import Distance, base_distance_blocks
from muse.evaluate import evaluate
from muse.rerank import rerank, rerank_features

# Test-set sizes of the real datasets: queries, gallery images, test identities, cameras.
SIZES = {
    "market": dict(Q=3368, G=15913, ids=750, cams=6),
    "msmt17": dict(Q=11659, G=82161, ids=3060, cams=15),
}


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, {gpu}"


def random_test_set(size: str, d: int = 512, seed: int = 0):
    """Random features of a test set of the named size, with pids and cameras drawn uniformly."""
    s = SIZES[size]
    rng = np.random.default_rng(seed)
    feats = {k: rng.standard_normal((s[k], d), dtype=np.float32) for k in ("Q", "G")}
    ids = {k: rng.integers(1, s["ids"] + 1, s[k]) for k in ("Q", "G")}
    cams = {k: rng.integers(1, s["cams"] + 1, s[k]) for k in ("Q", "G")}
    return feats["Q"], feats["G"], ids["Q"], cams["Q"], ids["G"], cams["G"]


def bench_evaluate(size: str = "msmt17", d: int = 512, block: int = 256) -> dict:
    """Time the streaming evaluation of the base distance on a random test set of ``size``."""
    q, g, qp, qc, gp, gc = random_test_set(size, d)
    t0 = time.perf_counter()
    metrics = evaluate(base_distance_blocks(q, g, block=block), qp, qc, gp, gc)
    seconds = time.perf_counter() - t0
    return {"benchmark": "evaluate", "size": size, "Q": len(q), "G": len(g), "d": d,
            "seconds": round(seconds, 2), "peak_rss_gb": round(peak_rss_gb(), 3),
            "mAP": round(metrics["mAP"], 5), "machine": machine()}


def clustered_test_set(size: str, d: int = 512, seed: int = 0):
    """Features around one centre per identity with a per-camera bias, as trained Re-ID features
    are (neighbourhoods then have the structure re-ranking works on)."""
    s = SIZES[size]
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((s["ids"] + 1, d), dtype=np.float32)
    bias = 0.8 * rng.standard_normal((s["cams"] + 1, d), dtype=np.float32)
    out = []
    for k in ("Q", "G"):
        pids = rng.integers(1, s["ids"] + 1, s[k])
        cams = rng.integers(1, s["cams"] + 1, s[k])
        f = centres[pids] + bias[cams] + 1.8 * rng.standard_normal((s[k], d), dtype=np.float32)
        out += [f, pids, cams]
    return out


def bench_rerank(size: str = "market", method: str = "krnn", d: int = 512, fused: bool = True,
                 C: int = 40) -> dict:
    """Time μ-fusion + re-ranking + streaming evaluation, with the library's default parameters."""
    q, qp, qc, g, gp, gc = clustered_test_set(size, d)
    t0 = time.perf_counter()
    D = Distance(q, g)
    if fused:
        rng = np.random.default_rng(1)
        cand = D.top_candidates(C)
        D.fuse(cand, rng.normal(size=cand.shape), rng.normal(size=cand.shape), 0.2, 5.0, C)
    metrics = evaluate(rerank(method, D, camids=np.concatenate([qc, gc])), qp, qc, gp, gc)
    seconds = time.perf_counter() - t0
    return {"benchmark": "rerank", "method": method, "size": size, "Q": len(q), "G": len(g), "d": d,
            "fused": fused, "seconds": round(seconds, 1), "peak_rss_gb": round(peak_rss_gb(), 3),
            "mAP": round(metrics["mAP"], 4), "R1": round(metrics["R1"], 4), "machine": machine()}


def bench_dg(manifests: dict, encoder_cfg: dict, work_dir, progress: bool = False) -> list[dict]:
    """Train one encoder per domain (its training set, as the pipeline's) and test it on every
    test domain, with the base distance and with K-RNN: the world's domain-generalisation matrix."""
    from pathlib import Path

    from muse.data.protocols import combine_train
    from muse.encoder.features import extract
    from muse.encoder.model import clip_from_config
    from muse.encoder.train import config_from, train_encoder

    rows = []
    for src, df in manifests.items():
        model = train_encoder(combine_train(manifests, [src]), clip_from_config(encoder_cfg), Path(work_dir) / src,
                              config_from(encoder_cfg["train"]), weights=encoder_cfg["weights"], progress=progress)
        for tgt, test in manifests.items():
            test = test[test.split.isin(["query", "gallery"])]
            if test.empty:
                continue
            f = extract(model, test, progress=False)
            q, g = f.query_gallery()
            for method in ("none", "krnn"):
                m = evaluate(rerank_features(q, g, method), q.pids, q.camids, g.pids, g.camids)
                rows.append({"train": src, "test": tgt, "rerank": method, "mAP": m["mAP"], "R1": m["R1"]})
    return rows


def bench_score(model_dir=None, queries: int = 8, C: int = 40, batch: int = 8, seed: int = 0) -> dict:
    """pairs/s of the scoring engines on the same model, machine and pairs — naive with batch 1
    (the paper's setting), naive at ``batch`` and cached at ``batch`` — their max logit
    difference, and the token composition and vision/LLM time split of one pair (Figure 4)."""
    import tempfile
    from pathlib import Path

    from PIL import Image

    from muse.mllm.model import init_tiny, load
    from muse.mllm.prompt import load_pair_image
    from muse.mllm.score import Judge, score_queries

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if model_dir is None:
            model_dir = init_tiny(tmp / "tiny")
        rng = np.random.default_rng(seed)
        paths = []
        for k in range(queries + C):
            paths.append(str(tmp / f"{k}.png"))
            Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)).save(paths[-1])
        judge = Judge(*load(model_dir))
        q, g = paths[:queries], np.array(paths[queries:])
        cand = np.tile(np.arange(C), (queries, 1))
        runs, logits = {}, {}
        for name, engine, b in (("naive_b1", "naive", 1), (f"naive_b{batch}", "naive", batch),
                                (f"cached_b{batch}", "cached", batch)):
            t0 = time.perf_counter()
            logits[name] = np.stack(score_queries(judge, q, g, cand, engine, b, progress=False))
            runs[name] = round(queries * C / (time.perf_counter() - t0), 1)
        diff = max(float(np.abs(v - logits["naive_b1"]).max()) for v in logits.values())
        pair = [load_pair_image(p) for p in paths[:2]]
        images = [judge.visual([im]) for im in pair]
        t0 = time.perf_counter()
        for _ in range(5):
            judge.visual(pair)
        vision_ms = (time.perf_counter() - t0) / 5 * 1000
        t0 = time.perf_counter()
        for _ in range(5):
            judge.suffix(judge.prefix(images[0][0]), images[1])
        llm_ms = (time.perf_counter() - t0) / 5 * 1000
    n_vision = len(judge.query_pos) + len(judge.cand_pos)
    return {"benchmark": "score", "pairs": queries * C, "pairs_per_s": runs,
            "speedup_cached_vs_naive_b1": round(runs[f"cached_b{batch}"] / runs["naive_b1"], 2),
            "speedup_cached_vs_naive_same_batch": round(runs[f"cached_b{batch}"] / runs[f"naive_b{batch}"], 2),
            "max_abs_logit_diff": diff, "tokens": {"vision": n_vision, "text": judge.input_ids.shape[1] - n_vision},
            "one_pair_ms": {"vision_encoder": round(vision_ms, 2), "llm_decoder": round(llm_ms, 2)},
            "machine": machine()}
