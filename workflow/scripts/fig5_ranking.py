"""rule fig5_ranking -> muse.experiments.rankings, muse.report.figures.ranking_figure"""

from muse.errors import logged
from muse.experiments import rankings
from muse.io import load_features, load_scores
from muse.report.figures import ranking_figure

with logged(snakemake.log[0]):
    f = load_features(snakemake.input.features)
    scores = load_scores(snakemake.input.scores, *f.test_sizes, features=f)
    method, m = snakemake.params.sweeps["rerank"], snakemake.params.muse
    r = rankings(f, scores, method, snakemake.params.rerank, m["alpha"], m["tau"], m["C"])
    ranking_figure(r["query"], [(method, r["rows"][0]), (f"MUSE + {method}", r["rows"][1])], snakemake.output[0])
