"""rule synth_world -> muse.stages.synth"""

from muse import stages
from muse.errors import logged

with logged(snakemake.log[0], snakemake.output):
    stages.synth(snakemake.wildcards.domain, snakemake.params.sizes, snakemake.params.seed, snakemake.output[0])
