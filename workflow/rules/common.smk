# Validation of the config and input functions shared by the rules.
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

DOMAINS = list(config["datasets"])


wildcard_constraints:
    domain="|".join(DOMAINS),


def is_synthetic(domain):
    return config["datasets"][domain]["root"] == "synthetic"


def dataset_root(wildcards):
    """The folder a domain's manifest is read from: the generated world or the real dataset."""
    if is_synthetic(wildcards.domain):
        return f"data/synthetic/{wildcards.domain}"
    root = config["datasets"][wildcards.domain]["root"]
    if not Path(root).is_dir():
        raise WorkflowError(f"datasets.{wildcards.domain}.root: {root} is not a directory")
    return root


# -- protocols, adaptation settings and the tables ------------------------------------------
from muse.data.protocols import adaptation_domains, get as get_protocol
from muse.report.tables import TABLES


wildcard_constraints:
    src=r"(MA|MS|C3|CS)(\+(MA|MS|C3|CS))*",
    tgt="MA|MS|C3",
    protocol=r"[A-Z0-9+]+2(MA|MS|C3)",
    strategy="qchm|random",
    prompt="dap|task_resp|void",
    table=r"\d+",
    shard=r"\d+",


def encoder_of(protocol):
    """The encoder's training domains of a protocol, as a path component (e.g. MA+MS+CS)."""
    return "+".join(get_protocol(protocol).sources)


def target_of(protocol):
    return get_protocol(protocol).target


def adapter_of(table, protocol):
    """The LoRA adapter a table uses for a protocol: <adaptation domains>_qchm_<prompt>."""
    domains = "+".join(adaptation_domains(int(table), get_protocol(protocol)))
    return f"{domains}_qchm_{config['mllm']['sft'].get('prompt', 'dap')}"


def mllm_dir(wildcards=None):
    model = config["mllm"]["model"]
    return "results/mllm/tiny" if model == "tiny" else model


def alpha_of(table):
    return config["muse"]["alpha_intra"] if int(table) == 4 else config["muse"]["alpha"]


def stored_C():
    """Candidates scored per query: the largest C any table or sweep uses."""
    return max(config["muse"]["C"], *config["sweeps"]["C"])
