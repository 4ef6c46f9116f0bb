"""rule train_set -> muse.stages.train_set"""

from muse import stages
from muse.errors import logged

with logged(snakemake.log[0], snakemake.output):
    stages.train_set(list(snakemake.input), snakemake.wildcards.src.split("+"), snakemake.output[0])
