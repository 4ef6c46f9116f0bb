"""rule evaluate_table_protocol -> muse.report.tables.evaluate_rows"""
from muse.errors import logged
from muse.io import load_features, load_scores, write_json
from muse.report.tables import evaluate_rows, extra_rows, standard_rows

with logged(snakemake.log[0]):
    f = load_features(snakemake.input.features)
    scores = load_scores(snakemake.input.scores, *f.test_sizes, features=f)
    args = snakemake.params.rerank, snakemake.params.tau, snakemake.params.C
    rows = evaluate_rows(f, scores, standard_rows(), args[0], snakemake.params.alpha, *args[1:])
    for name, alpha in extra_rows(int(snakemake.wildcards.table), snakemake.wildcards.protocol):
        rows += evaluate_rows(f, scores, [(name, True, "none")], args[0], alpha, *args[1:])
    write_json(snakemake.output[0], [{"protocol": snakemake.wildcards.protocol, **r} for r in rows])
