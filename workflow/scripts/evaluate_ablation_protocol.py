"""rule evaluate_ablation_protocol -> muse.experiments.evaluate_ablation"""

from muse.errors import logged
from muse.experiments import evaluate_ablation
from muse.fusion import Fusion
from muse.io import load_features, load_scores, write_json

with logged(snakemake.log[0], snakemake.output):
    f = load_features(snakemake.input.features)
    fusions = {
        row: Fusion(load_scores(path, *f.test_sizes, features=f), **snakemake.params.fusion)
        for row, path in zip(snakemake.params.rows, snakemake.input.scores)
    }
    rows = evaluate_ablation(f, fusions, snakemake.params.rerank)
    write_json(snakemake.output[0], [{"protocol": snakemake.wildcards.protocol, **r} for r in rows])
