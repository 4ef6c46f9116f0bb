"""rule init_tiny_mllm -> muse.mllm.model.init_tiny"""
from muse.errors import logged
from muse.mllm.model import init_tiny

with logged(snakemake.log[0]):
    init_tiny(snakemake.output[0], arch=snakemake.params.arch)
