"""rule evaluate_table_protocol -> muse.experiments.evaluate_table"""

from muse.errors import logged
from muse.experiments import evaluate_table
from muse.fusion import Fusion
from muse.io import load_features, load_scores, write_json

with logged(snakemake.log[0], snakemake.output):
    f = load_features(snakemake.input.features)
    fusion = Fusion(load_scores(snakemake.input.scores, *f.test_sizes, features=f), **snakemake.params.fusion)
    protocol = snakemake.wildcards.protocol
    rows = evaluate_table(f, fusion, int(snakemake.wildcards.table), protocol, snakemake.params.rerank)
    write_json(snakemake.output[0], [{"protocol": protocol, **r} for r in rows])
