# MUSE pipeline. Targets: see README.md. The rules live in workflow/rules/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


rule all:
    input:
        manifests=expand("results/data/{domain}.csv", domain=DOMAINS),
