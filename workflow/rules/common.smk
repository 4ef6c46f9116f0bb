# Validation of the config and input functions shared by the rules.
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

from muse.config import check_schema
from muse.errors import MuseError

try:
    check_schema(config, Path(workflow.current_basedir, "..", "schemas", "config.schema.yaml"))
except MuseError as e:
    raise WorkflowError(str(e))

DOMAINS = list(config["datasets"])

from muse.data.formats import LAYOUTS, check_layout
from muse.data.synthetic.world import Sizes
from muse.rerank import neighbourhood, params_for

_NEEDS = {}  # re-ranking method -> the neighbours it asks of a gallery
for _method, _params in config["rerank"].items():
    try:  # what the schema cannot say: options of the other mode
        _NEEDS[_method] = neighbourhood(_method, params_for(_method, _params))
    except MuseError as e:
        raise WorkflowError(f"rerank.{_method}: {e}")
for _d, _ds in config["datasets"].items():
    if _ds["root"] != "synthetic":
        continue
    _sizes = config["world"]["domains"].get(_d, {})
    _tested = LAYOUTS[_ds["format"]].tested
    if _tested and _sizes.get("test_ids", 0) < 1:
        raise WorkflowError(f"world.domains.{_d}.test_ids: expected >= 1 (a {_ds['format']} domain has a test set)")
    try:
        _most = Sizes.from_config(_d, _sizes).largest_gallery()  # checks the world's sizes too
    except MuseError as e:
        raise WorkflowError(str(e))
    for _method, _need in _NEEDS.items():
        if _tested and _need > _most:
            raise WorkflowError(
                f"rerank.{_method}: needs {_need} neighbours, but {_d}'s test gallery holds at most {_most} images"
            )


wildcard_constraints:
    domain="|".join(DOMAINS),


def is_synthetic(domain):
    return config["datasets"][domain]["root"] == "synthetic"


def dataset_root(wildcards):
    """The folder a domain's manifest is read from: the generated world or the real dataset."""
    if is_synthetic(wildcards.domain):
        return f"data/synthetic/{wildcards.domain}"
    ds = config["datasets"][wildcards.domain]
    if not Path(ds["root"]).is_dir():
        raise WorkflowError(f"datasets.{wildcards.domain}.root: {ds['root']} is not a directory")
    try:  # its layout, before any job runs
        check_layout(ds["format"], ds["root"], ds.get("variant"))
    except MuseError as e:
        raise WorkflowError(f"datasets.{wildcards.domain}.root: {e}")
    return ds["root"]


# -- protocols, adaptation settings, the MLLMs and the tables -------------------------------
import re

from muse.data.protocols import get as get_protocol
from muse.mllm import ARCHITECTURES
from muse.paper import (
    ABLATION_TABLES,
    STANDARD_TABLES,
    SWEEP_SETTING,
    TABLES,
    Variant,
    ablation_rows,
    adaptation_domains,
    alpha,
    stored_C,
    wildcard_patterns,
)

MLLMS = config["mllm"]["models"]
JUDGE = config["mllm"]["judge"]
if JUDGE not in MLLMS:
    raise WorkflowError(f"mllm.judge: {JUDGE} is not one of mllm.models ({', '.join(MLLMS)})")
_BUILT = [f"{kind}:{arch}" for kind in ("tiny", "pretrained") for arch in ARCHITECTURES]
for _name, _source in MLLMS.items():
    if _source.startswith(("tiny", "pretrained")) and _source not in _BUILT:
        raise WorkflowError(f"mllm.models.{_name}: {_source} is not one of {', '.join(_BUILT)} or a directory")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", _name):
        raise WorkflowError(f"mllm.models: name {_name!r} must be letters, digits, '.', '_' or '-' (it names folders)")
if config["encoder"].get("weights") and not Path(config["encoder"]["weights"]).is_file():
    raise WorkflowError(f"encoder.weights: {config['encoder']['weights']} is not a file")


wildcard_constraints:
    **wildcard_patterns(),
    mllm="|".join(re.escape(m) for m in MLLMS),
    shard=r"\d+",


def encoder_of(protocol):
    """The encoder's training domains of a protocol, as a path component (e.g. MA+MS+CS)."""
    return "+".join(get_protocol(protocol).sources)


def target_of(protocol):
    return get_protocol(protocol).target


def features_of(protocol):
    """The test features a protocol is evaluated on: its encoder applied to its target."""
    return f"results/features/{encoder_of(protocol)}/{target_of(protocol)}.npz"


def mllm_dir(name):
    """The checkpoint directory of MLLM ``name``: built here for a tiny one, the shipped checkpoint
    for a pretrained one, else the configured path (refused when a job needs it and it is not a
    model directory, so a target that does not use a configured MLLM runs without it)."""
    source = MLLMS[name]
    if source.startswith("tiny:"):
        return f"results/mllm/{name}"
    if source not in _BUILT and not (Path(source) / "config.json").is_file():  # checked where a job needs it
        raise WorkflowError(f"mllm.models.{name}: {source} is not a model directory (no config.json)")
    from muse.mllm.model import judge_dir

    return str(judge_dir(source))


def scores_of(table, protocol, variant=Variant()):
    """The stored logits a table uses for a protocol: results/scores/<MLLM>/<tuning>/<prompt>/<protocol>.npz,
    <tuning> being `zeroshot` or <adaptation domains>_<mining strategy> (the adapter's training pairs)."""
    domains = "+".join(adaptation_domains(int(table), get_protocol(protocol)))
    tuning = f"{domains}_{variant.strategy}" if variant.sft else "zeroshot"
    prompt = variant.prompt or config["mllm"]["sft"].get("prompt", "dap")
    return f"results/scores/{variant.mllm or JUDGE}/{tuning}/{prompt}/{protocol}.npz"


def ablation_inputs(wildcards):
    rows = ablation_rows(int(wildcards.table), MLLMS)
    return {
        "features": features_of(wildcards.protocol),
        "scores": [scores_of(wildcards.table, wildcards.protocol, v) for _, v in rows],
    }


def score_inputs(w):
    """A scoring job's MLLM and features, and its adapter unless it is zero-shot."""
    inputs = {"model": mllm_dir(w.mllm), "features": features_of(w.protocol)}
    if w.tuning != "zeroshot":
        inputs["adapter"] = f"results/adapters/{w.mllm}/{w.tuning}/{w.prompt}"
    return inputs


def sft_launch(gpus):
    """One process, or one per GPU through accelerate for a multi-GPU fine-tuning job, after
    claiming its GPUs (muse.gpus); the interpreter running the workflow (that of the rule's conda
    environment with --use-conda)."""
    with_conda = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    python = "python" if with_conda else shlex.quote(sys.executable)
    if gpus < 1:
        return python
    claim = f"{python} -m muse.gpus {gpus} -- {python}"
    return claim if gpus == 1 else f"{claim} -m accelerate.commands.launch --multi_gpu --num_processes {gpus}"


SFT_GPUS = config["mllm"].get("sft_gpus", 1) if config["gpu"] else 0


def fusion_of(table):
    """μ-fusion's settings of a table (muse.fusion.Fusion less its scores): α (α_intra for Table 4), τ, C."""
    return {"alpha": alpha(int(table), config["muse"]), "tau": config["muse"]["tau"], "C": config["muse"]["C"]}


# -- memory: each model-loading job asks for what its model needs (muse.memory) --------------
from muse.memory import job_mb, machine_mb

if workflow.local_exec and "mem_mb" not in workflow.global_resources:
    workflow.register_resource("mem_mb", machine_mb())  # local jobs run together only if they fit


def run_limit():
    """The memory a local run may use at once (MB), or None on a cluster."""
    limit = workflow.global_resources["mem_mb"] if workflow.local_exec else None
    return getattr(limit, "value", limit)


def asked(rule, wildcards):
    """The ``mem_mb`` a job of ``rule`` asks for (muse.memory), a refusal as one line."""
    try:
        return job_mb(rule, config, dict(wildcards))
    except MuseError as e:
        raise WorkflowError(str(e))


def memory(rule):
    """A rule's ``mem_mb``: its job's predicted peak (muse.memory); a local job that the machine's
    memory (or --resources mem_mb) cannot hold is refused before anything runs."""

    def mem_mb(wildcards):
        mb = asked(rule, wildcards)
        limit = run_limit()
        if limit is not None and mb > limit:
            what = ", ".join(f"{k}={v}" for k, v in dict(wildcards).items())
            raise WorkflowError(
                f"the {rule} job ({what}) needs {mb} MB of memory, this run has {limit} MB "
                "(muse.memory; --resources mem_mb, or a machine with more memory)"
            )
        return mb

    return mem_mb


def threads(rule):
    """A rule's threads: all the run's cores for a local job that cannot share the memory with a
    second one of its kind (a full-size judge on the CPU), else one."""

    def count(wildcards):
        limit = run_limit()
        if limit is None or 2 * asked(rule, wildcards) <= limit:
            return 1
        return workflow.cores

    return count
