"""rules score, score_shard -> muse.stages.score"""

from muse import stages
from muse.errors import logged
from muse.gpus import claim

with logged(snakemake.log[0], snakemake.output):
    claim(snakemake.resources.gpu)
    i, p, s = snakemake.input, snakemake.params, snakemake.params.score
    stages.score(
        i.model,
        i.get("adapter"),
        i.features,
        p.C,
        snakemake.output[0],
        p.shard,
        s["engine"],
        s["batch"],
        prompt=snakemake.wildcards.prompt,
        logits=s["logits"],
    )
