"""rules extract_test, extract_train -> muse.stages.extract"""

from muse import stages
from muse.errors import logged
from muse.gpus import claim

with logged(snakemake.log[0], snakemake.output):
    claim(snakemake.resources.gpu)
    i, p = snakemake.input, snakemake.params
    stages.extract(i.encoder, i.manifest, p.splits, p.batch, snakemake.output[0])
