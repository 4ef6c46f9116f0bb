"""rule score_shard -> muse.mllm.score.score_file"""
from muse.distance import Distance
from muse.errors import logged
from muse.io import load_features
from muse.mllm.model import load
from muse.mllm.score import Judge, score_file, shard_rows

with logged(snakemake.log[0]):
    f = load_features(snakemake.input.features)
    q, g = f.require("query", snakemake.input.features), f.require("gallery", snakemake.input.features)
    p = snakemake.params.score
    rows = shard_rows(len(q.pids), f"{snakemake.wildcards.shard}/{p['shards']}")
    judge = Judge(*load(snakemake.input.model, snakemake.input.adapter), variant=snakemake.params.prompt)
    score_file(judge, q.paths, g.paths, Distance(q.feats, g.feats).top_candidates(snakemake.params.C),
               snakemake.output[0], rows, p["engine"], p["batch"])
