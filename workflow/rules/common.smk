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
