"""rule mine -> muse.mining.mine_split"""

from muse.errors import logged
from muse.io import load_features
from muse.mining import mine_split, write_pairs

with logged(snakemake.log[0]):
    m = snakemake.params.mining
    pairs = mine_split(
        load_features(snakemake.input[0]),
        snakemake.wildcards.strategy,
        m["cpos"],
        m["cneg"],
        m.get("val_ids", 0.0),
        snakemake.params.seed,
    )
    for out, records in zip(snakemake.output, pairs):
        write_pairs(out, records)
