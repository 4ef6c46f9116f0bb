"""rule mine -> muse.stages.mine"""

from muse import stages
from muse.errors import logged

with logged(snakemake.log[0], snakemake.output):
    m = snakemake.params.mining
    train, val = snakemake.output
    stages.mine(
        snakemake.input[0],
        snakemake.wildcards.strategy,
        m["cpos"],
        m["cneg"],
        m.get("val_ids", 0.0),
        snakemake.params.seed,
        train,
        val,
        m["random_k"],
    )
