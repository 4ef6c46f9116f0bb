"""rule openworld_corpus -> muse.data.openworld.generate_corpus"""

from muse.data.openworld import CorpusSpec, generate_corpus
from muse.errors import logged
from muse.io import write_meta

with logged(snakemake.log[0]):
    generate_corpus(snakemake.output[0], CorpusSpec.from_config(snakemake.params.corpus))
    write_meta(snakemake.output[0], {"corpus": snakemake.params.corpus})
