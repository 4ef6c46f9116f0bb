"""rule sft -> muse.mllm.sft.sft"""
from muse.errors import logged
from muse.mllm.sft import SFTConfig, read_pairs, sft

with logged(snakemake.log[0]):
    sft(snakemake.input.model, read_pairs(snakemake.input.pairs), snakemake.output[0],
        SFTConfig(**snakemake.params.sft))
