"""The evaluation and the re-ranking methods timed at the datasets' sizes (`muse bench evaluate`, `rerank`)."""

from __future__ import annotations

import time

import numpy as np
import torch

from muse.bench import machine, peak_rss_gb
from muse.bench.testsets import FEATURES, SIZES, random_test_set
from muse.budget import MEMORY
from muse.device import default_device
from muse.distance import Distance, base_distance_blocks
from muse.errors import MuseError
from muse.evaluate import evaluate
from muse.paper import FUSION
from muse.rerank import DEFAULTS, rerank
from muse.rerank.knn import TILE


def bench_evaluate(size: str = "msmt17", d: int = 512, block: int = 256) -> dict:
    """Time the streaming evaluation of the base distance on a random test set of ``size``."""
    q, g, qp, qc, gp, gc = random_test_set(size, d)
    t0 = time.perf_counter()
    metrics = evaluate(base_distance_blocks(q, g, block=block), qp, qc, gp, gc)
    seconds = time.perf_counter() - t0
    return {
        "benchmark": "evaluate",
        "size": size,
        "Q": len(q),
        "G": len(g),
        "d": d,
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(peak_rss_gb(), 3),
        "mAP": round(metrics["mAP"], 5),
        "machine": machine(),
    }


def bench_rerank(
    size: str = "market",
    method: str = "krnn",
    d: int = 512,
    fused: bool = True,
    C: int = 40,
    features: str = "clustered",
    memory: int = MEMORY,
) -> dict:
    """Time μ-fusion + re-ranking + streaming evaluation (what ``muse evaluate --scores --rerank``
    does once the files are read), with the library's default parameters and working ``memory``;
    for the Jaccard-based methods also the structure their Jaccard step's work depends on
    (:func:`muse.rerank.jaccard.overlap_stats`)."""
    q, qp, qc, g, gp, gc = FEATURES[features](size, d)
    if fused:  # what a scores file holds: each query's top-C candidates and random logits
        rng = np.random.default_rng(1)
        cand = Distance(q, g).top_candidates(C)
        logits = rng.normal(size=cand.shape), rng.normal(size=cand.shape)
    t0 = time.perf_counter()
    D = Distance(q, g)
    if fused:
        D.fuse(cand, *logits, FUSION["alpha"], FUSION["tau"], C)
    stats = {}
    metrics = evaluate(rerank(method, D, camids=np.concatenate([qc, gc]), stats=stats, memory=memory), qp, qc, gp, gc)
    seconds = time.perf_counter() - t0
    return {
        "benchmark": "rerank",
        "method": method,
        "size": size,
        "features": features,
        "Q": len(q),
        "G": len(g),
        "d": d,
        "fused": fused,
        "memory_gb": round(memory / 2**30, 3),
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(peak_rss_gb(), 3),
        "mAP": round(metrics["mAP"], 4),
        "R1": round(metrics["R1"], 4),
        **stats,
        "machine": machine(),
    }


def bench_floor(size: str = "market", d: int = 512) -> dict:
    """The floor of exact re-ranking: all N² products f̂_i·f̂_j (N = Q + G, N²·d multiply-adds) as
    matrix products of the similarity tiles of :func:`muse.rerank.knn.knn`, nothing else."""
    s = SIZES[size]
    N = s["Q"] + s["G"]
    f = torch.as_tensor(np.random.default_rng(0).standard_normal((N, d), dtype=np.float32), device=default_device())
    t0 = time.perf_counter()
    for a in range(0, N, TILE):
        for b in range(0, N, TILE):
            f[a : a + TILE] @ f[b : b + TILE].T
    if f.is_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {
        "benchmark": "rerank",
        "method": "floor (N² products)",
        "size": size,
        "N": N,
        "d": d,
        "seconds": round(seconds, 1),
        "gflops": round(2 * N * N * d / seconds / 1e9, 1),
        "machine": machine(),
    }


def bench_original(path, size: str = "market", d: int = 512, features: str = "clustered") -> dict:
    """Time the original k-reciprocal code (zhunzhong07/person-re-ranking, python version: the file
    at ``path`` defining ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)``) on the
    features of :func:`bench_rerank`: dense distance matrices, its re-ranking, the evaluation."""
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("original_re_ranking", str(path))
    try:
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
        loader.exec_module(module)
        re_ranking = module.re_ranking
    except Exception as e:  # whatever the file does, one line
        raise MuseError(f"{path}: not the original k-reciprocal code with re_ranking() ({e})") from None
    q, qp, qc, g, gp, gc = FEATURES[features](size, d)
    t0 = time.perf_counter()
    D = Distance(q, g, dev=torch.device("cpu"))
    Q, N = D.Q, D.N
    dense = [D.block(slice(0, Q), slice(Q, N)), D.block(slice(0, Q), slice(0, Q)), D.block(slice(Q, N), slice(Q, N))]
    p = DEFAULTS["krnn"]
    final = re_ranking(*(x.numpy() for x in dense), k1=p["k1"], k2=p["k2"], lambda_value=p["lam"])
    del dense
    metrics = evaluate([(slice(0, Q), torch.as_tensor(final))], qp, qc, gp, gc)
    seconds = time.perf_counter() - t0
    return {
        "benchmark": "rerank",
        "method": "original k-reciprocal",
        "size": size,
        "features": features,
        "Q": Q,
        "G": D.G,
        "d": d,
        "fused": False,
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(peak_rss_gb(), 3),
        "mAP": round(metrics["mAP"], 4),
        "R1": round(metrics["R1"], 4),
        "machine": machine(),
    }
