"""The ``muse`` command: one sub-command per pipeline stage, plus ``evaluate`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from muse.budget import MEMORY
from muse.errors import MuseError, report

MEMORY_HELP = f"working memory of each re-ranking stage in GB (default {MEMORY / 2**30:g})"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error of muse."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive(text: str) -> int:
    """An argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def gigabytes(text: str) -> int:
    """An argparse type: a positive size in GB (2³⁰ bytes), returned in bytes."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value * 2**30 >= 1:
        raise argparse.ArgumentTypeError(f"expected a positive size in GB, got {text!r}")
    return int(value * 2**30)


def _data_manifest(a):
    from muse import stages

    variant = a.variant if a.format == "cuhk03np" else None
    df = stages.manifest(a.format, a.root, a.domain, a.out, check=not a.no_check, variant=variant)
    print(f"{a.out}: {len(df)} images, " + ", ".join(f"{s} {n}" for s, n in df.split.value_counts().items()))


def _data_convert_cuhksysu(a):
    from muse.data.convert import convert_cuhksysu

    n = convert_cuhksysu(a.raw, a.out, a.split)
    print(f"{a.out}/cropped_images: {n} crops ({a.split} split)")


def _data_synth(a):
    from muse import stages
    from muse.config import load_config

    world = load_config(a.config)["world"]
    if a.domain not in world["domains"]:
        raise MuseError(f"{a.config}: world.domains has no '{a.domain}'")
    seed = world["seed"] if a.seed is None else a.seed
    n = stages.synth(a.domain, world["domains"][a.domain], seed, a.out)
    print(f"{a.out}: {n} images")


_RERANK_OPTIONS = {
    "k1": int,
    "k2": int,
    "lam": float,
    "k": int,
    "t": int,
    "q": int,
    "k1_intra": int,
    "k1_inter": int,
    "k2_intra": int,
    "k2_inter": int,
    "qe": str,
}


def _evaluate(a):
    from muse.evaluate import evaluate, judge_auc
    from muse.io import load_features, load_scores, write_json
    from muse.paper import FUSION
    from muse.rerank import params_for, rerank_features

    f = load_features(a.features)
    q, g = f.query_gallery(a.features)
    overrides = {k: getattr(a, k) for k in _RERANK_OPTIONS if getattr(a, k) is not None}
    params = {"features": str(a.features), "rerank": a.rerank, **params_for(a.rerank, overrides)}
    fusion = None
    if a.scores is None:
        given = [f"--{k}" for k in ("alpha", "tau", "C") if getattr(a, k) is not None]
        if given:
            raise MuseError(f"{', '.join(given)} without --scores: μ-fusion needs the MLLM's scores")
    else:
        s = load_scores(a.scores, len(q.pids), len(g.pids), features=f)
        C = s.width if a.C is None else a.C
        alpha = FUSION["alpha"] if a.alpha is None else a.alpha
        tau = FUSION["tau"] if a.tau is None else a.tau
        fusion = (s, alpha, tau, C)
        params.update(scores=str(a.scores), alpha=alpha, tau=tau, C=C)
    blocks = rerank_features(q, g, a.rerank, overrides, fusion, block=a.block, memory=a.memory)
    metrics = evaluate(blocks, q.pids, q.camids, g.pids, g.camids)
    result = {k: metrics[k] for k in ("mAP", "R1", "R5", "R10", "mINP", "num_queries")}
    if fusion is not None:
        result["judge"] = judge_auc(q, g, s, C)
    result["params"] = params
    if a.out:
        write_json(a.out, result)
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(" ".join(f"{k} {result[k]:.4f}" for k in ("mAP", "R1", "R5", "R10", "mINP")))
        if fusion is not None:
            j = result["judge"]
            print(
                f"judge ROC-AUC {j['judge_auc']:.4f} (base distance {j['base_auc']:.4f}) over {j['pairs']} scored "
                f"pairs, {j['positives']} of the same identity"
            )


def _train_encoder(a):
    from muse import stages
    from muse.config import load_config
    from muse.data.formats import read_manifest
    from muse.data.protocols import combine_train

    enc = load_config(a.config)["encoder"]
    manifests = {}
    for path in a.manifest:
        df = read_manifest(path)
        domain = df.domain.iloc[0]
        if domain in manifests:
            raise MuseError(f"{path}: a second --manifest of domain {domain}")
        manifests[domain] = df
    train = combine_train(manifests, list(manifests))
    stages.train_encoder(train, enc, a.out, inputs=a.manifest)
    print(f"{a.out}: encoder trained on {len(train)} images of {train.pid.nunique()} identities")


def _extract(a):
    from muse import stages

    f = stages.extract(a.encoder, a.manifest, a.splits.split(","), a.batch, a.out)
    print(f"{a.out}: {len(f.pids)} features")


def _mine(a):
    from muse import stages

    if a.val_ids > 0 and a.val_out is None:
        raise MuseError("--val-ids > 0 needs --val-out for the held-out pairs")
    written = stages.mine(a.features, a.strategy, a.cpos, a.cneg, a.val_ids, a.seed, a.out, a.val_out)
    for out, n in written.items():
        print(f"{out}: {n} pairs")


def _mllm_init(a):
    from muse.mllm.model import init

    init(a.out, arch=a.arch, size=a.size, seed=a.seed)
    print(f"{a.out}: {a.size} {a.arch} checkpoint (random weights)")


def _mllm_corpus(a):
    from muse import stages
    from muse.config import load_config

    df = stages.corpus(load_config(a.config).get("pretrain", {}).get("corpus", {}), a.out)
    print(f"{a.out}: {df.pid.nunique()} identities, {len(df)} images")


def _mllm_pretrain(a):
    from muse.config import load_config
    from muse.mllm.pretrain import PretrainConfig, pretrain

    section = dict(load_config(a.config).get("pretrain", {}).get("recipe", {}))
    if a.arch:
        section["arch"] = a.arch
    record = pretrain(a.corpus, a.out, PretrainConfig.from_config(section))
    print(f"{a.out}: pretrained in {record['wall_time_s']:.0f} s, held out {json.dumps(record['held_out'])}")


# SFTConfig fields settable from the command line (the rest of the recipe: muse.mllm.sft)
SFT_OPTIONS = {
    "epochs": positive,
    "lr": float,
    "lr_min": float,
    "weight_decay": float,
    "batch": positive,
    "rank": positive,
    "lora_alpha": positive,
    "lora_dropout": float,
    "fraction": float,
    "val_every": positive,
    "seed": int,
}


def _sft(a):
    from muse import stages

    given = ("prompt", "vision_attention", "gradient_checkpointing", *SFT_OPTIONS)
    options = {k: getattr(a, k) for k in given if getattr(a, k) is not None}
    history = stages.sft(a.model, a.pairs, a.out, options, a.val_pairs)
    print(f"{a.out}: adapter after {len(history)} epochs, last {history[-1]}")


def _score(a):
    from muse import stages

    rows = stages.score(
        a.model, a.adapter, a.features, a.C, a.out, a.shard, a.engine, a.batch, a.swap, a.prompt, a.logits
    )
    print(f"{a.out}: queries {rows.start}..{rows.stop - 1}, C = {a.C}")


def _score_merge(a):
    from muse import stages

    merged = stages.score_merge(a.features, a.shards, a.out)
    print(f"{a.out}: {merged.cand.shape[0]} queries × {merged.width} candidates")


def _bench_score(a):
    from muse.bench import bench_score

    print(json.dumps(bench_score(a.model, a.arch, a.size, a.queries, a.C, a.batch, device=a.device)))


def _bench_gpu(a):
    from muse.bench import bench_gpu

    report = bench_gpu(a.device, a.size, a.out)
    print(json.dumps(report))
    if any("error" in s for s in report["sections"].values()):
        raise MuseError(f"bench gpu: a section failed (see {a.out / 'bench_gpu.md'})")


def _bench_evaluate(a):
    from muse.bench import bench_evaluate

    print(json.dumps(bench_evaluate(a.size, d=a.dim, block=a.block)))


def _bench_rerank(a):
    import subprocess

    from muse.bench import bench_floor, bench_original, bench_rerank

    if a.method == "floor":
        print(json.dumps(bench_floor(a.size, d=a.dim)), flush=True)
        return
    if a.method == "original":
        if a.original is None:
            raise MuseError("--method original needs --original PATH (the original code's re_ranking_ranklist.py)")
        print(json.dumps(bench_original(a.original, a.size, d=a.dim, features=a.features)), flush=True)
        return
    if a.method != "all":
        print(
            json.dumps(
                bench_rerank(a.size, a.method, d=a.dim, fused=not a.no_fusion, features=a.features, memory=a.memory)
            ),
            flush=True,
        )
        return
    methods = ("krnn", "original") if a.original else ("floor", "none", "krnn", "ecn", "caj")
    seconds = {}
    for method in methods:  # one process each, so peak RSS is per method
        cmd = [
            sys.executable,
            "-m",
            "muse.cli",
            "bench",
            "rerank",
            "--size",
            a.size,
            "--method",
            method,
            "--dim",
            str(a.dim),
            "--features",
            a.features,
            "--memory",
            str(a.memory / 2**30),
        ]
        cmd += (["--no-fusion"] if a.no_fusion or a.original else []) + (
            ["--original", str(a.original)] if a.original else []
        )
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        print(out, end="", flush=True)
        seconds[method] = json.loads(out)["seconds"]
    if a.original:
        print(json.dumps({"original_over_krnn": round(seconds["original"] / seconds["krnn"], 2)}))
    else:
        print(json.dumps({f"{m}_over_floor": round(seconds[m] / seconds["floor"], 2) for m in ("krnn", "ecn", "caj")}))


def _bench_dg(a):
    from muse.bench import bench_dg, machine
    from muse.config import load_config
    from muse.data.formats import read_manifest

    manifests = {d: read_manifest(a.manifests / f"{d}.csv") for d in a.domains.split(",")}
    rows = bench_dg(manifests, load_config(a.config)["encoder"], a.work)
    tests = [d for d in manifests if any(r["test"] == d for r in rows)]
    print(f"mAP / R1 (%), base distance → with K-RNN; {machine()}\n")
    print("| train \\ test | " + " | ".join(tests) + " |")
    print("|---|" + "---|" * len(tests))
    for src in manifests:
        cells = []
        for tgt in tests:
            base, krnn = (
                {r["rerank"]: r for r in rows if r["train"] == src and r["test"] == tgt}[k] for k in ("none", "krnn")
            )
            cells.append(
                f"{100 * base['mAP']:.1f} / {100 * base['R1']:.1f} → {100 * krnn['mAP']:.1f} / {100 * krnn['R1']:.1f}"
            )
        print(f"| {src} | " + " | ".join(cells) + " |")


def parser() -> argparse.ArgumentParser:
    from muse.mllm.prompt import VARIANTS

    p = _Parser(prog="muse", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="datasets: manifests, conversion, the synthetic world")
    dsub = data.add_subparsers(dest="data_command", required=True)
    m = dsub.add_parser("manifest", help="write the manifest CSV (path,pid,camid,split,domain) of a dataset")
    m.add_argument("--format", required=True, choices=["market1501", "msmt17", "cuhk03np", "cuhksysu"])
    m.add_argument("--root", required=True, type=Path)
    m.add_argument("--out", required=True, type=Path)
    m.add_argument("--domain", help="domain label (default MA/MS/C3/CS by format)")
    m.add_argument("--variant", default="detected", help="cuhk03np boxes: detected (default) or labeled")
    m.add_argument("--no-check", action="store_true", help="skip decoding every image")
    m.set_defaults(func=_data_manifest)
    c = dsub.add_parser("convert-cuhksysu", help="build cropped_images/ from the official CUHK-SYSU release")
    c.add_argument("--raw", required=True, type=Path, help="folder with Image/SSM/ and annotation/")
    c.add_argument(
        "--split",
        choices=["train", "all"],
        default="train",
        help="train: annotation/test/train_test/Train.mat (MUSE's release); all: annotation/Person.mat",
    )
    c.add_argument("--out", required=True, type=Path)
    c.set_defaults(func=_data_convert_cuhksysu)
    s = dsub.add_parser("synth", help="write one domain of the synthetic world in its real layout")
    s.add_argument("--domain", required=True, choices=["MA", "MS", "C3", "CS"])
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--config", default=Path("config.yaml"), type=Path)
    s.add_argument("--seed", type=int, help="override world.seed")
    s.set_defaults(func=_data_synth)

    e = sub.add_parser("evaluate", help="mAP / CMC / mINP of a features file")
    e.add_argument("--features", required=True, type=Path)
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--out", type=Path, help="also write the JSON result here")
    e.add_argument("--block", type=positive, default=256, help="queries per distance block")
    e.add_argument("--rerank", default="none", choices=["none", "krnn", "ecn", "caj"])
    e.add_argument("--memory", type=gigabytes, default=MEMORY, help=MEMORY_HELP)
    e.add_argument("--scores", type=Path, help="pair-scores file: apply μ-fusion before re-ranking")
    e.add_argument("--alpha", type=float, help="μ-fusion weight α (default 0.2; with --scores)")
    e.add_argument("--tau", type=float, help="temperature τ (default 5; with --scores)")
    e.add_argument("--C", type=positive, help="candidates fused per query (default: all stored; with --scores)")
    g = e.add_argument_group("re-ranking parameters (defaults: the original papers')")
    for name, kind in _RERANK_OPTIONS.items():
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
    e.set_defaults(func=_evaluate)

    t = sub.add_parser("train-encoder", help="train the baseline Re-ID encoder on manifests' train splits")
    t.add_argument(
        "--manifest",
        required=True,
        type=Path,
        action="append",
        help="a domain's manifest CSV; repeat for multi-source training (ids/cameras offset)",
    )
    t.add_argument("--config", default=Path("config.yaml"), type=Path, help="reads its `encoder` section")
    t.add_argument("--out", required=True, type=Path, help="encoder directory (model.safetensors + config.json)")
    t.set_defaults(func=_train_encoder)

    x = sub.add_parser("extract", help="features of a manifest's images (.npz)")
    x.add_argument("--encoder", required=True, type=Path)
    x.add_argument("--manifest", required=True, type=Path)
    x.add_argument("--splits", default="query,gallery", help="comma-separated splits (default query,gallery)")
    x.add_argument("--batch", type=positive, default=128)
    x.add_argument("--out", required=True, type=Path)
    x.set_defaults(func=_extract)

    mn = sub.add_parser("mine", help="query-candidate pairs for the MLLM (QCHM or random)")
    mn.add_argument("--features", required=True, type=Path, help="uses its train split, or all rows if none")
    mn.add_argument("--strategy", default="qchm", help="qchm or random")
    mn.add_argument("--cpos", type=int, default=5)
    mn.add_argument("--cneg", type=int, default=5)
    mn.add_argument("--val-ids", type=float, default=0.0, help="fraction of identities held out for validation")
    mn.add_argument("--val-out", type=Path, help="JSONL of the held-out identities' pairs")
    mn.add_argument("--seed", type=int, default=0)
    mn.add_argument("--out", required=True, type=Path)
    mn.set_defaults(func=_mine)

    ml = sub.add_parser("mllm", help="MLLM checkpoints")
    mlsub = ml.add_subparsers(dest="mllm_command", required=True)
    it = mlsub.add_parser(
        "init", help="write a Qwen2-VL or Qwen2.5-VL checkpoint with random weights (model + offline processor)"
    )
    it.add_argument("--out", required=True, type=Path)
    it.add_argument("--arch", default="qwen2_vl", help="qwen2_vl or qwen2_5_vl")
    it.add_argument(
        "--size",
        default="tiny",
        help="tiny (tests), small (the pretrained judges' size), or the "
        "published 2b (qwen2_vl) or 7b (qwen2_5_vl), laid out as a download",
    )
    it.add_argument("--seed", type=int, default=0)
    it.set_defaults(func=_mllm_init)
    oc = mlsub.add_parser("corpus", help="write the open-world pair corpus that the small judges are pretrained on")
    oc.add_argument("--config", default=Path("config.yaml"), type=Path, help="reads its `pretrain.corpus` section")
    oc.add_argument("--out", required=True, type=Path)
    oc.set_defaults(func=_mllm_corpus)
    pt = mlsub.add_parser("pretrain", help="pretrain a small judge on the open-world corpus (vision, then pairs)")
    pt.add_argument("--corpus", required=True, type=Path, help="folder written by `muse mllm corpus`")
    pt.add_argument("--arch", help="qwen2_vl or qwen2_5_vl (overrides pretrain.recipe.arch)")
    pt.add_argument("--config", default=Path("config.yaml"), type=Path, help="reads its `pretrain.recipe` section")
    pt.add_argument("--out", required=True, type=Path, help="checkpoint directory (model, processor, provenance.json)")
    pt.set_defaults(func=_mllm_pretrain)

    ft = sub.add_parser("sft", help="LoRA fine-tuning of the MLLM judge on query-candidate pairs")
    ft.add_argument("--model", required=True, type=Path, help="local model directory")
    ft.add_argument("--pairs", required=True, type=Path)
    ft.add_argument("--val-pairs", type=Path, help="held-out pairs for the validation loss")
    ft.add_argument("--prompt", choices=VARIANTS)
    for name, kind in SFT_OPTIONS.items():
        ft.add_argument(f"--{name.replace('_', '-')}", type=kind)
    ft.add_argument(
        "--vision-attention",
        action="store_true",
        default=None,
        help="also adapt the vision blocks' attention (the release adapts their MLPs only)",
    )
    ft.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        default=None,
        help="recompute activations in the backward pass (same gradients, less memory)",
    )
    ft.add_argument("--out", required=True, type=Path, help="adapter directory (peft)")
    ft.set_defaults(func=_sft)

    sc = sub.add_parser("score", help="MLLM logits for each query's top-C gallery candidates")
    sc.add_argument("--model", required=True, type=Path)
    sc.add_argument("--adapter", type=Path, help="LoRA adapter (none: zero-shot)")
    sc.add_argument("--features", required=True, type=Path, help="query/gallery features; image paths come from it")
    sc.add_argument("--C", type=positive, required=True, help="candidates per query (the largest any table needs)")
    sc.add_argument("--engine", choices=["cached", "naive"], default="cached")
    sc.add_argument("--batch", type=positive, default=8, help="pairs per forward")
    sc.add_argument("--shard", default="0/1", help="i/n: score the i-th of n query ranges")
    sc.add_argument("--swap", action="store_true", help="average with query and candidate swapped")
    sc.add_argument("--prompt", choices=VARIANTS, default="dap")
    sc.add_argument(
        "--logits",
        choices=["raw", "generate"],
        default="raw",
        help="raw: the model's logits; generate: as the release's generate().scores[0] (repetition penalty)",
    )
    sc.add_argument("--out", required=True, type=Path)
    sc.set_defaults(func=_score)
    sm = sub.add_parser("score-merge", help="merge score shards (in query order) into one file")
    sm.add_argument("--features", required=True, type=Path)
    sm.add_argument("--shards", required=True, type=Path, nargs="+")
    sm.add_argument("--out", required=True, type=Path)
    sm.set_defaults(func=_score_merge)

    b = sub.add_parser("bench", help="benchmarks at the real datasets' sizes")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    be = bsub.add_parser("evaluate", help="evaluation of random features")
    be.add_argument("--size", choices=["market", "msmt17"], default="msmt17")
    be.add_argument("--dim", type=int, default=512)
    be.add_argument("--block", type=positive, default=256)
    be.set_defaults(func=_bench_evaluate)
    br = bsub.add_parser("rerank", help="μ-fusion + re-ranking + evaluation of clustered random features")
    br.add_argument("--size", choices=["market", "msmt17"], default="market")
    br.add_argument(
        "--method",
        choices=["all", "floor", "none", "krnn", "ecn", "caj", "original"],
        default="all",
        help="all: the floor (N² products) and each method in its own process, with their ratios; "
        "with --original: K-RNN and the original code",
    )
    br.add_argument("--memory", type=gigabytes, default=MEMORY, help=MEMORY_HELP)
    br.add_argument(
        "--original",
        type=Path,
        help="the original k-reciprocal code's re_ranking_ranklist.py "
        "(zhunzhong07/person-re-ranking, python-version), run on the same features without fusion",
    )
    br.add_argument("--dim", type=int, default=512)
    br.add_argument("--no-fusion", action="store_true", help="skip μ-fusion (C = 40 random logits)")
    br.add_argument(
        "--features",
        choices=["clustered", "hubby"],
        default="clustered",
        help="clustered (default) or hubby: with items near every other (see docs/benchmarks.md)",
    )
    br.set_defaults(func=_bench_rerank)
    bd = bsub.add_parser("dg", help="train on each domain, test on each: the domain-generalisation matrix")
    bd.add_argument("--manifests", type=Path, default=Path("results/data"), help="folder of <domain>.csv")
    bd.add_argument("--domains", default="MA,MS,C3,CS")
    bd.add_argument("--config", type=Path, default=Path("config.yaml"), help="reads its `encoder` section")
    bd.add_argument("--work", type=Path, default=Path("results/bench_dg"), help="where the encoders go")
    bd.set_defaults(func=_bench_dg)
    bs = bsub.add_parser("score", help="pairs/s of the scoring engines and their max logit difference")
    bs.add_argument("--model", type=Path, help="model directory (default: one of --arch and --size built in memory)")
    bs.add_argument("--arch", default="qwen2_vl", help="qwen2_vl or qwen2_5_vl")
    bs.add_argument("--size", default="tiny", help="tiny, small, 2b (qwen2_vl) or 7b (qwen2_5_vl)")
    bs.add_argument("--device", help="cpu or cuda (default: cuda when there is one)")
    bs.add_argument("--queries", type=int, default=8)
    bs.add_argument("--C", type=positive, default=40)
    bs.add_argument("--batch", type=positive, default=8)
    bs.set_defaults(func=_bench_score)
    bg = bsub.add_parser("gpu", help="judges, re-ranking, evaluation and encoder on a GPU, as JSON + Markdown")
    bg.add_argument("--device", help="cuda (default when there is one) or cpu")
    bg.add_argument(
        "--size",
        choices=["full", "tiny"],
        default="full",
        help="full: Qwen2-VL-2B, Qwen2.5-VL-7B, MSMT17 size; tiny: a smoke test of the same steps",
    )
    bg.add_argument("--out", type=Path, default=Path("results/bench_gpu"), help="folder of bench_gpu.json and .md")
    bg.set_defaults(func=_bench_gpu)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except MuseError as e:
        report(e)
        return 2
    except KeyboardInterrupt:
        print("muse: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
