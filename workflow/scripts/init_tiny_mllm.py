"""rule init_tiny_mllm -> muse.mllm.model.init"""

from muse.errors import logged
from muse.mllm.model import init

with logged(snakemake.log[0], snakemake.output):
    init(snakemake.output[0], arch=snakemake.params.arch, size="tiny")
