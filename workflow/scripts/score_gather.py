"""rule score_gather -> muse.stages.score_merge"""

from muse import stages
from muse.errors import logged

with logged(snakemake.log[0], snakemake.output):
    stages.score_merge(snakemake.input.features, list(snakemake.input.shards), snakemake.output[0])
