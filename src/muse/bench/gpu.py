"""Every benchmark in one command on a GPU machine (``muse bench gpu``)."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from muse.bench import machine
from muse.bench.rerank import bench_evaluate, bench_rerank
from muse.bench.score import engine_figures, judge_of, ms_per_pair, random_images
from muse.device import default_device


def _gpu_score(arch: str, size: str, device, queries: int, C: int, batches, naive_batches, paths) -> dict:
    """ms/pair of the engines for one judge built in bf16 on ``device`` (fp32 on a CPU), after a
    warm-up; naive batch 1 on one query and naive batch b on two (it is slow), cached on all."""
    from muse.mllm.model import vocabulary_name

    judge = judge_of(arch, size, None, device)
    gpu = judge.dev.type == "cuda"
    if gpu:
        torch.cuda.reset_peak_memory_stats(judge.dev)
    for engine, b in (("cached", max(batches)), ("naive", 1)):  # warm-up
        ms_per_pair(judge, paths[:1], np.array(paths[1 : 1 + b]), np.arange(b)[None], engine, b)
    runs = [("naive", b, 1 if b == 1 else min(queries, 2)) for b in naive_batches] + [
        ("cached", b, queries) for b in batches
    ]
    fig = engine_figures(judge, paths, queries, C, runs)
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
        paths = random_images(tmp, max(q for _, _, q, _, _ in judges) + C)
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
