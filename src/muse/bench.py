"""Benchmarks that print measured figures (time, peak memory) at the real datasets' sizes."""

from __future__ import annotations

import platform
import resource
import sys
import time

import numpy as np
import torch

from muse.budget import MEMORY
from muse.device import default_device
from muse.distance import Distance, base_distance_blocks
from muse.errors import MuseError
from muse.evaluate import evaluate
from muse.paper import FUSION
from muse.rerank import DEFAULTS, rerank, rerank_features
from muse.rerank.knn import TILE

# Test-set sizes of the real datasets: queries, gallery images, test identities, cameras.
SIZES = {
    "market": dict(Q=3368, G=15913, ids=750, cams=6),
    "msmt17": dict(Q=11659, G=82161, ids=3060, cams=15),
    "tiny": dict(Q=100, G=500, ids=50, cams=6),  # smoke tests
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


def identity_test_set(
    size: str, d: int = 512, seed: int = 0, bias: float = 0.8, noise: float = 1.8, ids: int | None = None
):
    """Features centre[id] + bias·b[camera] + noise·ε (centres, b, ε ~ N(0, 1)) with ids and
    cameras drawn uniformly: the structure of trained Re-ID features that re-ranking works on."""
    s = SIZES[size]
    ids = ids or s["ids"]
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids + 1, d), dtype=np.float32)
    b = bias * rng.standard_normal((s["cams"] + 1, d), dtype=np.float32)
    out = []
    for k in ("Q", "G"):
        pids = rng.integers(1, ids + 1, s[k])
        cams = rng.integers(1, s["cams"] + 1, s[k])
        f = centres[pids] + b[cams] + noise * rng.standard_normal((s[k], d), dtype=np.float32)
        out += [f, pids, cams]
    return out


def hubby_test_set(size: str, d: int = 512, share: float = 0.02, seed: int = 2):
    """:func:`identity_test_set` with a component u shared by all features (as the mean of
    trained features) and a ``share`` of gallery items made of u and noise alone: those hubs
    are near every item and appear in very many neighbour lists, as in poorly adapted features."""
    q, qp, qc, g, gp, gc = identity_test_set(size, d)
    rng = np.random.default_rng(seed)
    u = 1.2 * rng.standard_normal(d, dtype=np.float32)
    hubs = rng.random(len(g)) < share
    g = g + u
    g[hubs] = 4.0 * u + rng.standard_normal((int(hubs.sum()), d), dtype=np.float32)
    return q + u, qp, qc, g, gp, gc


FEATURES = {"clustered": identity_test_set, "hubby": hubby_test_set}  # feature kinds of `bench rerank`


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


def bench_dg(
    manifests: dict, encoder_cfg: dict, work_dir, krnn: dict | None = None, progress: bool = False
) -> list[dict]:
    """Train one encoder per domain (its training set, as the pipeline's) and test it on every
    test domain, with the base distance and with K-RNN (parameters ``krnn``, default the
    library's): the world's domain-generalisation matrix."""
    from pathlib import Path

    from muse.config import from_section
    from muse.data.protocols import combine_train
    from muse.encoder.features import extract
    from muse.encoder.model import clip_from_config
    from muse.encoder.train import TrainConfig, train_encoder

    rows = []
    for src in manifests:
        model = train_encoder(
            combine_train(manifests, [src]),
            clip_from_config(encoder_cfg),
            Path(work_dir) / src,
            from_section(TrainConfig, encoder_cfg["train"], "encoder.train"),
            weights=encoder_cfg["weights"],
            progress=progress,
        )
        for tgt, test in manifests.items():
            test = test[test.split.isin(["query", "gallery"])]
            if test.empty:
                continue
            f = extract(model, test, progress=False)
            q, g = f.query_gallery()
            for method in ("none", "krnn"):
                blocks = rerank_features(q, g, method, krnn if method == "krnn" else None)
                m = evaluate(blocks, q.pids, q.camids, g.pids, g.camids)
                rows.append({"train": src, "test": tgt, "rerank": method, "mAP": m["mAP"], "R1": m["R1"]})
    return rows


def dg_markdown(rows: list[dict]) -> str:
    """The matrix of :func:`bench_dg` as Markdown: a row per training domain, a column per test
    domain, cells "mAP / R1 (%) with the base distance → with K-RNN"."""
    sources = list(dict.fromkeys(r["train"] for r in rows))
    tests = list(dict.fromkeys(r["test"] for r in rows))
    cell = {(r["train"], r["test"], r["rerank"]): r for r in rows}

    def pair(r):
        return f"{100 * r['mAP']:.1f} / {100 * r['R1']:.1f}"

    lines = [
        f"mAP / R1 (%), base distance → with K-RNN; {machine()}",
        "",
        "| train \\ test | " + " | ".join(tests) + " |",
        "|---|" + "---|" * len(tests),
    ]
    for src in sources:
        cells = [f"{pair(cell[src, t, 'none'])} → {pair(cell[src, t, 'krnn'])}" for t in tests]
        lines.append(f"| {src} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _judge(arch: str, size: str, model_dir=None, device=None, dtype=None):
    """A judge of a model directory, or of a model of ``arch`` and ``size`` built in memory."""
    from muse.mllm.model import answer_ids, build, load, placement
    from muse.mllm.score import Judge

    if model_dir is not None:
        return Judge(*load(model_dir, dtype=dtype, device=device))
    device, dtype = placement(device, dtype)
    model, processor = build(arch, size, dtype=dtype, device=device)
    return Judge(model.eval(), processor, answer_ids(processor.tokenizer))


def _sync(judge) -> None:
    if judge.dev.type == "cuda":
        torch.cuda.synchronize(judge.dev)


def _random_images(folder, n: int, seed: int = 0) -> list[str]:
    """``n`` random 128×64 RGB images (a Re-ID crop's size) written as PNG files."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n):
        paths.append(f"{folder}/{k}.png")
        Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def pair_flops(judge, queries: int, C: int) -> dict:
    """Floating-point operations per pair of the two engines on ``queries`` queries that share
    their ``C`` candidates, from the parameter counts and the prompt's token layout (T tokens,
    P of them before the candidate image): a linear layer (or the patch embedding) costs 2 FLOPs
    per weight and token, attention 4·d per (token, context token) pair, computed densely (the
    causal mask and Qwen2.5-VL's windows are not skipped). Naive: 2 images and T tokens per pair.
    Cached: each image once, the prefix once per query, the T − P suffix tokens per pair. Their
    ratio bounds what reuse can save on a FLOP-bound machine."""
    core = judge.model.model
    vis, llm = core.visual, core.language_model
    tokens = len(judge.cand_pos)
    patches = tokens * vis.spatial_merge_size**2

    def n_params(module) -> int:
        return sum(p.numel() for p in module.parameters())

    v_width = vis.blocks[0].attn.qkv.in_features
    image = (
        2 * (n_params(vis.patch_embed) + n_params(vis.blocks)) * patches
        + 2 * n_params(vis.merger) * tokens
        + 4 * patches**2 * v_width * len(vis.blocks)
    )
    cfg = llm.config
    d_attn = cfg.num_attention_heads * (cfg.hidden_size // cfg.num_attention_heads)
    layers = n_params(llm.layers)

    def text(n: int, before: int) -> float:  # n tokens after `before` cached ones
        return 2 * layers * n + 4 * cfg.num_hidden_layers * d_attn * n * (before + n)

    T, P = judge.input_ids.shape[1], judge.P
    head = 2 * cfg.hidden_size * judge.model.lm_head.out_features
    naive = 2 * image + text(T, 0) + head
    pairs = queries * C
    cached = (queries + C) / pairs * image + queries / pairs * text(P, 0) + text(T - P, P) + head
    gflop = {
        "image_gflop": image,
        "llm_gflop_per_token": 2 * layers,
        "naive_gflop_per_pair": naive,
        "cached_gflop_per_pair": cached,
    }
    return {**{k: float(f"{v / 1e9:.4g}") for k, v in gflop.items()}, "bound_cached_vs_naive": round(naive / cached, 2)}


def _ms_per_pair(judge, q, g, cand, engine: str, batch: int) -> tuple[float, np.ndarray]:
    from muse.mllm.score import score_queries

    _sync(judge)
    t0 = time.perf_counter()
    logits = np.stack(score_queries(judge, q, g, cand, engine, batch, progress=False))
    _sync(judge)
    return (time.perf_counter() - t0) * 1000 / cand.size, logits


def _split_ms(judge, paths, pairs: int = 5) -> dict:
    """Figure 4: the vision encoder's (both images) and the LLM decoder's (prefix + suffix) time of
    one pair, each pair of ``pairs`` consecutive images timed once after a warm-up: mean and
    standard deviation (ms)."""
    from muse.mllm.prompt import load_pair_image

    times = {"vision_encoder": [], "llm_decoder": []}
    for k in range(-1, min(pairs, len(paths) - 1)):  # k = -1: the warm-up
        pair = [load_pair_image(p) for p in paths[max(k, 0) : max(k, 0) + 2]]
        images = [judge.visual([im]) for im in pair]
        for name in times:
            _sync(judge)
            t0 = time.perf_counter()
            if name == "vision_encoder":
                judge.visual(pair)
            else:
                judge.suffix(judge.prefix(images[0][0]), images[1])
            _sync(judge)
            if k >= 0:
                times[name].append((time.perf_counter() - t0) * 1000)
    return {
        "one_pair_ms": {k: round(float(np.mean(v)), 2) for k, v in times.items()},
        "one_pair_ms_std": {k: round(float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, 2) for k, v in times.items()},
        "timed_pairs": len(times["vision_encoder"]),
    }


def _engine_figures(judge, paths, queries: int, C: int, runs) -> dict:
    """Figures of the scoring engines on ``queries`` queries (the first ``paths``) sharing their
    ``C`` candidates (the next ones): ms/pair of each (engine, batch, number of queries) of
    ``runs``, the max |Δ logit| of the later runs against the first naive one on the queries they
    share, the token composition, the FLOP model (:func:`pair_flops`) and the Figure 4 split."""
    q, g = paths[:queries], np.array(paths[queries : queries + C])
    cand = np.tile(np.arange(C), (queries, 1))
    ms, diffs, ref = {}, [], None
    for engine, b, rows in runs:
        ms[f"{engine}_b{b}"], logits = _ms_per_pair(judge, q[:rows], g, cand[:rows], engine, b)
        if ref is not None:
            shared = min(rows, ref.shape[1])
            diffs.append(float(np.abs(logits[:, :shared] - ref[:, :shared]).max()))
        elif engine == "naive":
            ref = logits
    n_vision = len(judge.query_pos) + len(judge.cand_pos)
    n_text = judge.input_ids.shape[1] - n_vision
    prompt_text = judge.P - len(judge.query_pos)  # text before the candidate image: once per query when cached
    return {
        "ms_per_pair": ms,
        **({"max_abs_logit_diff": max(diffs)} if diffs else {}),
        "tokens": {
            "vision": n_vision,
            "text": n_text,
            "prefix": judge.P,
            "prompt_text": prompt_text,
            "suffix_text": n_text - prompt_text,
        },
        "flops": pair_flops(judge, queries, C),
        **_split_ms(judge, paths),
    }


def bench_score(
    model_dir=None,
    arch: str = "qwen2_vl",
    size: str = "tiny",
    queries: int = 8,
    C: int = 40,
    batch: int = 8,
    seed: int = 0,
    device=None,
    dtype=None,
) -> dict:
    """pairs/s of the scoring engines on the same model, machine and pairs — naive with batch 1
    (the paper's setting), naive at ``batch`` and cached at ``batch`` — their max logit
    difference, the FLOP bound of the cached engine's saving (:func:`pair_flops`), and the token
    composition and vision/LLM time split of one pair (Figure 4). The model is the directory
    ``model_dir`` or one of ``arch`` and ``size`` built in memory with random weights; the
    ``queries`` share their ``C`` candidates, as neighbouring queries of a test set largely do."""
    import tempfile

    from muse.mllm.model import vocabulary_name

    judge = _judge(arch, size, model_dir, device, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        fig = _engine_figures(
            judge,
            _random_images(tmp, queries + C, seed),
            queries,
            C,
            [("naive", 1, queries), ("naive", batch, queries), ("cached", batch, queries)],
        )
    ms = fig.pop("ms_per_pair")
    return {
        "benchmark": "score",
        "model": str(model_dir) if model_dir else f"{arch} {size} (random weights)",
        "vocabulary": vocabulary_name(judge.processor.tokenizer),
        "dtype": str(judge.model.dtype).removeprefix("torch."),
        "pairs": queries * C,
        "pairs_per_s": {k: float(f"{1000 / v:.4g}") for k, v in ms.items()},
        "ms_per_pair": {k: float(f"{v:.4g}") for k, v in ms.items()},
        "speedup_cached_vs_naive_b1": round(ms["naive_b1"] / ms[f"cached_b{batch}"], 2),
        "speedup_cached_vs_naive_same_batch": round(ms[f"naive_b{batch}"] / ms[f"cached_b{batch}"], 2),
        **fig,
        "machine": machine(),
    }


# -- one command for a GPU machine ----------------------------------------------------------------


def _gpu_score(arch: str, size: str, device, queries: int, C: int, batches, naive_batches, paths) -> dict:
    """ms/pair of the engines for one judge built in bf16 on ``device`` (fp32 on a CPU), after a
    warm-up; naive batch 1 on one query and naive batch b on two (it is slow), cached on all."""
    from muse.mllm.model import vocabulary_name

    judge = _judge(arch, size, None, device)
    gpu = judge.dev.type == "cuda"
    if gpu:
        torch.cuda.reset_peak_memory_stats(judge.dev)
    for engine, b in (("cached", max(batches)), ("naive", 1)):  # warm-up
        _ms_per_pair(judge, paths[:1], np.array(paths[1 : 1 + b]), np.arange(b)[None], engine, b)
    runs = [("naive", b, 1 if b == 1 else min(queries, 2)) for b in naive_batches] + [
        ("cached", b, queries) for b in batches
    ]
    fig = _engine_figures(judge, paths, queries, C, runs)
    fig["ms_per_pair"] = {k: round(v, 2) for k, v in fig["ms_per_pair"].items()}
    out = {
        "model": f"{arch} {size}",
        "vocabulary": vocabulary_name(judge.processor.tokenizer),
        "dtype": str(judge.model.dtype).removeprefix("torch."),
        "attention": judge.model.config._attn_implementation,
        "C": C,
        **fig,
    }
    if gpu:
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated(judge.dev) / 2**30, 2)
    del judge
    if gpu:
        torch.cuda.empty_cache()
    return out


def _gpu_rerank(size: str, method: str) -> dict:
    """Time of the evaluation (``method="evaluate"``) or of μ-fusion + re-ranking + evaluation."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    r = bench_evaluate(size) if method == "evaluate" else bench_rerank(size, method)
    out = {k: r[k] for k in ("Q", "G", "seconds", "mAP")}
    if torch.cuda.is_available():
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def _gpu_encoder(device, batch: int, steps: int) -> dict:
    """Feature extraction throughput of the Re-ID encoder with CLIP ViT-B/16 at 256×128 (random
    weights, images already in memory; bf16 autocast on a GPU, as :func:`muse.encoder.features.embed`)."""
    from muse.encoder.model import ReIDEncoder, clip_config

    dev = torch.device(device)
    model = ReIDEncoder(clip_config("ViT-B-16", (256, 128)), num_classes=751).to(dev).eval()
    x = torch.randn(batch, 3, 256, 128, device=dev)
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            f = model(x)
        float(f.float().sum())  # waits for the device
    return {
        "model": "ViT-B-16 at 256x128",
        "batch": batch,
        "images_per_s": round(batch * steps / (time.perf_counter() - t0), 1),
    }


GPU_PLANS = {
    # size: judges (arch, size, queries, batches, naive batches), re-ranking size, encoder (batch, steps)
    "full": ([("qwen2_vl", "2b", 4, (8, 16, 40), (1, 8)), ("qwen2_5_vl", "7b", 2, (40,), ())], "msmt17", (256, 20), 40),
    "tiny": ([("qwen2_vl", "tiny", 2, (4, 8), (1, 4)), ("qwen2_5_vl", "tiny", 2, (8,), ())], "tiny", (4, 2), 8),
}


def bench_gpu(device=None, size: str = "full", out=None) -> dict:
    """The GPU benchmark in one command: the judges' ms/pair (naive batch 1 and 8, cached at
    batches 8, 16 and C = 40; Qwen2-VL-2B and Qwen2.5-VL-7B built in bf16 directly on the device),
    peak GPU memory, the Figure 4 split, K-RNN, ECN and CA-Jaccard and the evaluation at MSMT17
    size, and the encoder's feature-extraction rate. ``size="tiny"`` runs the same steps with tiny
    models and a small test set (a smoke test that fits a CPU). Each section is written to
    ``out/bench_gpu.json`` and ``out/bench_gpu.md`` as soon as it is done; a section that fails
    (e.g. out of memory) records its error and the others still run."""
    import json
    import tempfile
    from pathlib import Path

    judges, rerank_size, (enc_batch, enc_steps), C = GPU_PLANS[size]
    device = str(device or default_device())
    report = {"benchmark": "gpu", "size": size, "machine": machine(), "device": device, "sections": {}}

    def run(name, fn, *args):
        t0 = time.perf_counter()
        try:
            report["sections"][name] = fn(*args)
        except Exception as e:  # recorded, and the next section runs
            report["sections"][name] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        report["sections"][name]["section_s"] = round(time.perf_counter() - t0, 1)
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "bench_gpu.json").write_text(json.dumps(report, indent=2))
            (Path(out) / "bench_gpu.md").write_text(gpu_markdown(report))
        print(f"{name}: {json.dumps(report['sections'][name])}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        paths = _random_images(tmp, max(q for _, _, q, _, _ in judges) + C)
        for arch, judge_size, queries, batches, naive_batches in judges:
            run(
                f"score {arch} {judge_size}",
                _gpu_score,
                arch,
                judge_size,
                device,
                queries,
                C,
                batches,
                naive_batches,
                paths,
            )
    run("encoder", _gpu_encoder, device, enc_batch, enc_steps)
    for method in ("evaluate", "krnn", "ecn", "caj"):
        run(f"{method} {rerank_size}", _gpu_rerank, rerank_size, method)
    return report


def gpu_markdown(report: dict) -> str:
    """The report as Markdown: one table of figures per section."""
    lines = [
        f"# GPU benchmark ({report['size']})",
        "",
        f"Machine: {report['machine']}; device: {report['device']}.",
        "",
    ]
    for name, figures in report["sections"].items():
        lines += [f"## {name}", "", "| figure | value |", "|---|---|"]
        flat = {}
        for k, v in figures.items():
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
        lines += [f"| {k} | {v} |" for k, v in flat.items()] + [""]
    return "\n".join(lines)
