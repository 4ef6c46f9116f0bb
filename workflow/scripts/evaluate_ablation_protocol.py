"""rule evaluate_ablation_protocol -> muse.experiments.evaluate_ablation"""

from muse.errors import logged
from muse.experiments import evaluate_ablation
from muse.io import load_features, load_scores, write_json

with logged(snakemake.log[0], snakemake.output):
    f = load_features(snakemake.input.features)
    scores = {
        row: load_scores(path, *f.test_sizes, features=f)
        for row, path in zip(snakemake.params.rows, snakemake.input.scores)
    }
    rows = evaluate_ablation(
        f, scores, snakemake.params.rerank, snakemake.params.alpha, snakemake.params.tau, snakemake.params.C
    )
    write_json(snakemake.output[0], [{"protocol": snakemake.wildcards.protocol, **r} for r in rows])
