"""What a target costs before it runs: jobs per rule, GPU-hours per stage, wall time, disk, memory.

The jobs are the workflow's own (its dry run, from scratch: :func:`parse_dry_run`). Each job's
work is counted in units from the sizes of the datasets (:func:`domain_sizes`: a domain's
manifest when it exists, else its dataset folder's lists and file names when it exists, else the
synthetic world's expected counts, else the release's published counts,
:attr:`muse.data.formats.Layout.published`) and the config:

- ``train_encoder``: epochs × the training images of its source domains;
- ``extract_train`` / ``extract_test``: the images it encodes (training / query + gallery);
- ``sft``: pairs × epochs, the pairs mined from the source's training images of the identities
  not held out (1 − ``mining.val_ids``): C_pos + C_neg per image (QCHM) or ``random_k``, times the
  ``fraction`` kept;
- ``score`` / ``score_shard``: the target's queries × the C stored (max of ``muse.C`` and the C
  sweep) / shards;
- memory: each model-loading job's ``mem_mb`` (:func:`muse.memory.job_mb`), the largest per rule;
- ``evaluate_*``: each row's re-ranking and evaluation at the target's size N = Q + G, scaled by
  (N / N_MSMT17)² from their time at MSMT17 size.

Rates per unit are data (``rates.csv``: stage, model, value, unit and where the figure comes
from, measured or estimated); the published judges and ViT-B/16 carry GPU rates (and, as
``<model>@cpu``, the 2-core CPU rates a ``gpu: 0`` run uses), the embedded default's small models
its 2-core CPU rates, and each job adds its start-up (``job_start``). GPU
jobs' hours are summed per stage; the wall time on n GPUs takes each stage in turn (encoders,
features, fine-tuning, scoring), as the longer of its hours / n and its longest job. Evaluation
runs on CPU cores and is reported apart. Disk: features (float32, d per image), scores (s_yes,
s_no and the candidate's index, 12 bytes per pair) and adapters (LoRA's A and B of every
targeted projection, float32).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from muse.data import protocols
from muse.data.formats import layout
from muse.errors import MuseError

RATES_FILE = Path(__file__).with_name("rates.csv")
MSMT17_N = 11_659 + 82_161  # the size the re-ranking rates were measured at
STAGES = {  # rule -> stage, in the order a target runs them
    "train_encoder": "encoders",
    "extract_train": "features",
    "extract_test": "features",
    "sft": "fine-tuning",
    "score": "scoring",
    "score_shard": "scoring",
}
GPU_STAGES = tuple(dict.fromkeys(STAGES.values()))
CPU_MODELS = ("embedded", "small")  # the embedded default's, whose rates are the 2-core CPU's
RERANK = {"none": None, "krnn": "rerank_krnn", "ecn": "rerank_ecn", "caj": "rerank_caj"}


@dataclass
class Job:
    """One job of the dry run: its rule, wildcards and GPUs."""

    rule: str
    wildcards: dict = field(default_factory=dict)
    gpus: int = 0


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of ``snakemake -n`` output: each ``rule``/``localrule`` block (indented within a
    group job) with its wildcards and its ``gpu`` resource."""
    jobs: list[Job] = []
    for line in text.splitlines():
        head = re.match(r"^\s*(?:local)?rule (\w+):$", line)
        field = re.match(r"^\s+(wildcards|resources): (.*)$", line)
        if head:
            jobs.append(Job(head[1]))
        elif jobs and field and field[1] == "wildcards":
            jobs[-1].wildcards = dict(kv.split("=", 1) for kv in field[2].split(", "))
        elif jobs and field:
            gpu = re.search(r"\bgpu=(\d+)", field[2])
            jobs[-1].gpus = int(gpu[1]) if gpu else 0
    return jobs


def dry_run(targets: list[str], configfiles=(), cwd=".") -> list[Job]:
    """The jobs that building ``targets`` from scratch runs (``snakemake -n --forceall``) with the
    config of ``configfiles`` (default: config.yaml), wherever they would run: this machine's
    memory does not limit them (a plan made on a laptop for a cluster)."""
    cmd = [sys.executable, "-m", "snakemake", *targets, "-n", "--forceall", "--cores", "1"]
    cmd += ["--resources", f"mem_mb={10**12}"]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if run.returncode != 0:
        lines = [x for x in (run.stderr + run.stdout).splitlines() if x.strip()]
        raise MuseError(f"the workflow's dry run failed: {lines[-1] if lines else run.returncode}")
    return parse_dry_run(run.stdout)


def read_rates(path=RATES_FILE) -> dict[tuple[str, str], dict]:
    """(stage, model) -> {value, unit, source} of ``rates.csv``."""
    with open(path, newline="") as f:
        return {(r["stage"], r["model"]): {**r, "value": float(r["value"])} for r in csv.DictReader(f)}


def domain_sizes(config: dict, results="results") -> dict[str, dict]:
    """Per domain: images of each split (train, query, gallery) and where the counts come from."""
    sizes = {}
    for d, ds in config["datasets"].items():
        manifest = Path(results) / "data" / f"{d}.csv"
        if manifest.is_file():
            split = pd.read_csv(manifest, usecols=["split"]).split.value_counts()
            counts = {s: int(split.get(s, 0)) for s in ("train", "query", "gallery")}
            sizes[d] = {**counts, "from": str(manifest)}
        elif ds["root"] != "synthetic" and (counts := _dataset_counts(ds)):
            sizes[d] = {**counts, "from": f"{ds['root']} (read)"}
        elif ds["root"] == "synthetic":
            from muse.data.synthetic.world import Sizes

            s = Sizes.from_config(d, config["world"]["domains"].get(d, {}))
            test, train = s.per_identity(test=True), s.per_identity(test=False)
            tested = layout(ds["format"]).tested
            sizes[d] = {
                "train": round(s.train_ids * train["train"]),
                "query": round(s.test_ids * test["queries"]) if tested else 0,
                "gallery": round(s.test_ids * test["gallery"]) + s.distractors if tested else 0,
                "from": f"world.domains.{d} (expected)",
            }
        else:
            train, query, gallery = layout(ds["format"]).published
            sizes[d] = {"train": train, "query": query, "gallery": gallery, "from": f"{ds['format']} (published)"}
    return sizes


def _dataset_counts(ds: dict) -> dict | None:
    """Images per split of a real dataset's folder (its lists and file names, no image decoded), or
    None when the folder is absent or not (yet) in its layout."""
    from muse.data.formats import read

    options = {"variant": ds["variant"]} if ds.get("variant") else {}
    try:
        split = pd.Series([r.split for r in read(ds["format"], ds["root"], **options)]).value_counts()
    except MuseError:
        return None
    return {s: int(split.get(s, 0)) for s in ("train", "query", "gallery")}


def judge_model(config: dict, name: str) -> str:
    """The rate key of MLLM ``name``: ``small`` for the embedded default's, else the published size
    (``2b``, ``7b``) of its checkpoint's language-model width (config.json) or of its name."""
    path = str(config["mllm"]["models"][name])
    if path.startswith(("pretrained:", "tiny:")):
        return "small"
    config_json = Path(path) / "config.json"
    checkpoint = json.loads(config_json.read_text() or "{}") if config_json.is_file() else {}
    width = checkpoint.get("text_config", checkpoint).get("hidden_size")  # transformers 5 nests it
    size = _published(width, name)
    if size is None:
        raise MuseError(f"mllm.models.{name}: no published size of this width or name (muse.mllm.model.PUBLISHED)")
    return size


def _published(width: int | None, name: str) -> str | None:
    """The size of :data:`muse.mllm.model.PUBLISHED` whose language model has ``width``, or without
    a width the one in ``name`` (e.g. ``Qwen2-VL-2B``)."""
    from muse.mllm.model import PUBLISHED

    for (_, size), (_, text, *_) in PUBLISHED.items():
        if width == text["hidden_size"] or (width is None and size in name.lower()):
            return size
    return None


def encoder_model(config: dict) -> str:
    """The rate key of the encoder: ``ViT-B-16`` for the named CLIP ViT-B/16, else ``embedded``."""
    return "ViT-B-16" if "ViT-B-16" in str(config["encoder"]["clip"].get("name", "")) else "embedded"


def lora_bytes(config: dict, name: str) -> int:
    """Bytes of a LoRA adapter of MLLM ``name``: rank r × (in + out) of every targeted projection
    (attention q, k, v, o and the MLP's gate, up, down in every layer), float32."""
    from muse.mllm.model import PUBLISHED

    key = judge_model(config, name)
    if key in CPU_MODELS:
        return 0  # the embedded default's adapters are a few hundred kB
    text = next(t for (_, size), (_, t, *_) in PUBLISHED.items() if size == key)
    h, m, kv = text["hidden_size"], text["intermediate_size"], text["num_key_value_heads"]
    kv_width = h // text["num_attention_heads"] * kv
    per_layer = (h + h) + 2 * (h + kv_width) + (h + h) + 2 * (h + m) + (m + h)
    return 4 * config["mllm"]["sft"].get("rank", 8) * per_layer * text["num_hidden_layers"]


def plan(jobs: list[Job], config: dict, sizes: dict, rates=None) -> dict:
    """The cost of ``jobs`` (module doc): jobs per rule, per stage GPU-hours and longest job, CPU
    hours of evaluation, disk and peak GPU memory per job."""
    from muse.memory import job_mb
    from muse.paper import ABLATION_RERANK, ABLATION_TABLES, ablation_rows, extra_rows, standard_rows, stored_C

    rates = rates or read_rates()

    def rate(stage, model):
        if (stage, model) not in rates or rates[(stage, model)]["value"] <= 0:
            raise MuseError(f"{RATES_FILE.name}: no rate for {stage} of {model}")
        return rates[(stage, model)]["value"]

    def peak_of(stage, model):
        r = rates.get((stage, model))
        return {"gb": r["value"], "measured": r["source"].startswith("measured")} if r else None

    def start(model):
        return rates.get(("job_start", model), {"value": 0.0})["value"]

    def timed(model):
        """The rate key of a published model's jobs: its CPU rates (``<model>@cpu``) with ``gpu: 0``."""
        return f"{model}@cpu" if not config["gpu"] and model not in CPU_MODELS else model

    encoder = encoder_model(config)
    C = stored_C(config)
    shards = config["mllm"]["score"]["shards"]
    sft = config["mllm"]["sft"]
    mining = config["mining"]
    dim = rate("feature_dim", encoder)
    per_rule: dict[str, int] = {}
    stages = {s: {"jobs": 0, "gpu_hours": 0.0, "longest_h": 0.0, "units": 0.0} for s in GPU_STAGES}
    disk = {"features": 0.0, "scores": 0.0, "adapters": 0.0}
    peak: dict[str, dict | None] = {}
    memory: dict[str, int] = {}  # rule -> the largest mem_mb its jobs ask for
    cpu_s = 0.0

    def train_images(src):
        return sum(sizes[d]["train"] for d in src.split("+"))

    def test_images(domain):
        return sizes[domain]["query"] + sizes[domain]["gallery"]

    def target(w):
        return protocols.get(w["protocol"]).target

    for job in jobs:
        per_rule[job.rule] = per_rule.get(job.rule, 0) + 1
        w = job.wildcards
        seconds, units = 0.0, 0.0
        if job.rule == "train_encoder":
            units = config["encoder"]["train"]["epochs"] * train_images(w["src"])
            seconds = start(timed(encoder)) + units / rate("encoder_train", timed(encoder))
            if config["gpu"] and encoder not in CPU_MODELS:
                peak["train_encoder"] = peak_of("peak_gpu_train", encoder)
        elif job.rule in ("extract_train", "extract_test"):
            units = train_images(w["src"]) if job.rule == "extract_train" else test_images(w["tgt"])
            seconds = start(timed(encoder)) + units / rate("encoder_extract", timed(encoder))
            disk["features"] += units * (4 * dim + 16)
        elif job.rule == "sft":
            per_image = mining["cpos"] + mining["cneg"] if w["strategy"] == "qchm" else mining["random_k"]
            pairs = train_images(w["src"]) * (1 - mining.get("val_ids", 0)) * per_image * sft.get("fraction", 1.0)
            units = pairs * sft["epochs"]
            model = judge_model(config, w["mllm"])
            seconds = start(timed(model)) + units * rate("sft", timed(model)) / 1000
            disk["adapters"] += lora_bytes(config, w["mllm"])
            if config["gpu"] and model not in CPU_MODELS:
                peak[f"sft {w['mllm']}"] = peak_of("peak_gpu_sft", model)
        elif job.rule in ("score", "score_shard"):
            units = sizes[target(w)]["query"] * C / (shards if job.rule == "score_shard" else 1)
            model = judge_model(config, w["mllm"])
            seconds = start(timed(model)) + units * rate("score", timed(model)) / 1000
            disk["scores"] += units * 12
            if config["gpu"] and model not in CPU_MODELS:
                peak[f"score {w['mllm']}"] = peak_of("peak_gpu", model)
        elif job.rule.startswith("evaluate_"):
            scale = (test_images(target(w)) / MSMT17_N) ** 2
            table = int(w["table"])
            if table in ABLATION_TABLES:
                methods = [ABLATION_RERANK] * (1 + len(ablation_rows(table, list(config["mllm"]["models"]))))
            else:
                methods = [m for _, _, m in standard_rows()] + ["none"] * len(extra_rows(table, w["protocol"]))
            cpu_s += (
                sum(rate("evaluate", "any") + (rate(RERANK[m], "any") if RERANK[m] else 0) for m in methods) * scale
            )
        stage = STAGES.get(job.rule)
        if stage:
            memory[job.rule] = max(memory.get(job.rule, 0), job_mb(job.rule, config, w, rates))
            gpus = max(1, job.gpus)
            st = stages[stage]
            st["jobs"] += 1
            st["units"] += units
            st["gpu_hours"] += seconds / 3600
            st["longest_h"] = max(st["longest_h"], seconds / 3600 / gpus)
    return {
        "jobs": per_rule,
        "total_jobs": sum(per_rule.values()),
        "stages": {s: {k: round(v, 3) for k, v in st.items()} for s, st in stages.items()},
        "gpu_hours": round(sum(st["gpu_hours"] for st in stages.values()), 3),
        "evaluation_cpu_hours": round(cpu_s / 3600, 3),
        "disk_gb": {k: round(v / 1e9, 3) for k, v in disk.items()},
        "peak_gpu": peak,  # {gb, measured}, or None where there is no figure
        "mem_mb": memory,
        "sizes": sizes,
    }


def wall_hours(p: dict, gpus: int) -> float:
    """Wall time on ``gpus`` GPUs (module doc): each GPU stage in turn, the longer of its hours
    spread over the GPUs and its longest job."""
    return round(sum(max(st["gpu_hours"] / gpus, st["longest_h"]) for st in p["stages"].values()), 3)


def report(p: dict, gpus: tuple[int, ...] = (1, 4)) -> str:
    """The plan as the terminal shows it: jobs per rule, the GPU stages, the totals."""
    lines = [
        "jobs per rule: " + ", ".join(f"{r} {n}" for r, n in p["jobs"].items()) + f" (total {p['total_jobs']})",
        "",
    ]
    lines += ["| stage | jobs | hours | longest job (h) |", "|---|---|---|---|"]
    for name, st in p["stages"].items():
        if st["jobs"]:
            lines.append(f"| {name} | {st['jobs']} | {st['gpu_hours']:.2f} | {st['longest_h']:.2f} |")
    lines.append(f"| total | | {p['gpu_hours']:.2f} | |")
    lines.append("(hours: GPU-hours at the rates of rates.csv; CPU hours for the embedded default's models or gpu: 0)")
    lines.append("wall time of the GPU stages: " + ", ".join(f"{wall_hours(p, n):.2f} h on {n} GPU(s)" for n in gpus))
    lines.append(f"evaluation and re-ranking: {p['evaluation_cpu_hours']:.2f} CPU-hours (2-core machine rates)")
    lines.append("disk: " + ", ".join(f"{k} {v:.2f} GB" for k, v in p["disk_gb"].items()))
    peaks = ", ".join(
        f"{k} " + ("not measured" if v is None else f"{v['gb']:g} GB" + ("" if v["measured"] else " (estimate)"))
        for k, v in p["peak_gpu"].items()
    )
    lines.append(f"peak GPU memory per job: {peaks or 'no GPU job'}")
    asked = ", ".join(f"{rule} {mb:,} MB" for rule, mb in p["mem_mb"].items())
    lines.append(f"memory per job (mem_mb, muse.memory): {asked or 'no model-loading job'}")
    lines.append(
        "sizes: "
        + "; ".join(f"{d} {s['train']}/{s['query']}/{s['gallery']} ({s['from']})" for d, s in p["sizes"].items())
    )
    return "\n".join(lines)
