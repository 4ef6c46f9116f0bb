"""rule openworld_corpus -> muse.stages.corpus"""

from muse import stages
from muse.errors import logged

with logged(snakemake.log[0], snakemake.output):
    stages.corpus(snakemake.params.corpus, snakemake.output[0])
