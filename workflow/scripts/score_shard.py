"""rules score, score_shard -> muse.mllm.score.score_features"""

from muse.errors import logged
from muse.io import load_features
from muse.mllm.score import load_judge, score_features

with logged(snakemake.log[0]):
    p = snakemake.params.score
    judge = load_judge(snakemake.input.model, snakemake.input.get("adapter"), snakemake.wildcards.prompt, p["logits"])
    score_features(
        judge,
        load_features(snakemake.input.features),
        snakemake.params.C,
        snakemake.output[0],
        snakemake.params.shard,
        p["engine"],
        p["batch"],
    )
