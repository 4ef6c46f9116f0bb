"""The judges' scoring engines: ms/pair, FLOPs, Figure 4's split (``muse bench score``)."""

from __future__ import annotations

import time

import numpy as np
import torch

from muse.bench import machine


def judge_of(arch: str, size: str, model_dir=None, device=None, dtype=None):
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


def random_images(folder, n: int, seed: int = 0) -> list[str]:
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


def ms_per_pair(judge, q, g, cand, engine: str, batch: int) -> tuple[float, np.ndarray]:
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


def engine_figures(judge, paths, queries: int, C: int, runs) -> dict:
    """Figures of the scoring engines on ``queries`` queries (the first ``paths``) sharing their
    ``C`` candidates (the next ones): ms/pair of each (engine, batch, number of queries) of
    ``runs``, the max |Δ logit| of the later runs against the first naive one on the queries they
    share, the token composition, the FLOP model (:func:`pair_flops`) and the Figure 4 split."""
    q, g = paths[:queries], np.array(paths[queries : queries + C])
    cand = np.tile(np.arange(C), (queries, 1))
    ms, diffs, ref = {}, [], None
    for engine, b, rows in runs:
        ms[f"{engine}_b{b}"], logits = ms_per_pair(judge, q[:rows], g, cand[:rows], engine, b)
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

    judge = judge_of(arch, size, model_dir, device, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        fig = engine_figures(
            judge,
            random_images(tmp, queries + C, seed),
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
