"""rule evaluate_table_protocol -> muse.experiments.evaluate_table"""

from muse.errors import logged
from muse.experiments import evaluate_table
from muse.io import load_features, load_scores, write_json

with logged(snakemake.log[0], snakemake.output):
    f = load_features(snakemake.input.features)
    scores = load_scores(snakemake.input.scores, *f.test_sizes, features=f)
    protocol = snakemake.wildcards.protocol
    rows = evaluate_table(
        f,
        scores,
        int(snakemake.wildcards.table),
        protocol,
        snakemake.params.rerank,
        snakemake.params.alpha,
        snakemake.params.tau,
        snakemake.params.C,
    )
    write_json(snakemake.output[0], [{"protocol": protocol, **r} for r in rows])
