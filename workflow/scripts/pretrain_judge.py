"""rule pretrain_judge -> muse.mllm.pretrain.pretrain"""

from muse.errors import logged
from muse.gpus import claim
from muse.mllm.pretrain import PretrainConfig, pretrain

with logged(snakemake.log[0], snakemake.output):
    claim(snakemake.resources.gpu)
    pretrain(
        snakemake.input[0],
        snakemake.output[0],
        PretrainConfig.from_config(snakemake.params.recipe),
        command=f"snakemake rule pretrain_judge ({snakemake.output[0]})",
    )
