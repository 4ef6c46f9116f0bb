"""rule train_encoder -> muse.stages.train_encoder"""

from muse import stages
from muse.data.formats import check_paths, read_manifest
from muse.errors import logged
from muse.gpus import claim

with logged(snakemake.log[0], snakemake.output):
    claim(snakemake.resources.gpu)
    train = read_manifest(snakemake.input[0])
    check_paths(train, snakemake.input[0])
    stages.train_encoder(train, snakemake.params.encoder, snakemake.output[0], inputs=list(snakemake.input))
