"""rule score_gather -> muse.mllm.score.merge_shards"""

from muse.errors import logged
from muse.io import load_features
from muse.mllm.score import merge_shards

with logged(snakemake.log[0]):
    f = load_features(snakemake.input.features)
    merge_shards(snakemake.input.shards, snakemake.output[0], f)
