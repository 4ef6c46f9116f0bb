# MUSE pipeline. Targets: see README.md. The rules live in workflow/rules/.
from snakemake.utils import min_version

min_version("9.0")


# The config: config.yaml (the embedded default), or, when --configfile names files, those files
# alone, each overriding the one before (e.g. configs/paper.yaml, then a file of local paths): a
# real reproduction never inherits a key of the embedded default.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/encoder.smk"
include: "workflow/rules/mining.smk"
include: "workflow/rules/mllm.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        manifests=expand("results/data/{domain}.csv", domain=DOMAINS),
        tables=expand("results/table{table}.{ext}", table=config["tables"], ext=["csv", "md"]),
        sweeps=expand("sweeps/{param}.{ext}", param=["C", "alpha", "tau"], ext=["csv", "png"]),
        figures=["results/figures/fig4_timing.png", "results/figures/fig5_ranking.png"],
