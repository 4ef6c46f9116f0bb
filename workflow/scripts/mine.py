"""rule mine -> muse.mining.mine"""
from muse.errors import logged
from muse.io import load_features
from muse.mining import mine, write_pairs

with logged(snakemake.log[0]):
    f = load_features(snakemake.input[0])
    m = snakemake.params.mining
    write_pairs(snakemake.output[0], mine(f.feats, f.pids, f.paths, snakemake.wildcards.strategy, m["cpos"],
                                          m["cneg"], snakemake.params.seed))
