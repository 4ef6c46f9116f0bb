"""rule train_set -> muse.data.protocols.combine_train"""

from muse.data.formats import read_manifest, write_manifest
from muse.data.protocols import combine_train
from muse.errors import logged

with logged(snakemake.log[0]):
    manifests = {df.domain.iloc[0]: df for df in map(read_manifest, snakemake.input)}
    train = combine_train(manifests, snakemake.wildcards.src.split("+"))
    write_manifest(train, snakemake.output[0])
