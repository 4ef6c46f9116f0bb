"""rule fig5_ranking -> muse.experiments.rankings, muse.report.figures.ranking_figure"""

from muse.errors import logged
from muse.experiments import rankings
from muse.fusion import Fusion
from muse.io import load_features, load_scores
from muse.report.figures import ranking_figure

with logged(snakemake.log[0], snakemake.output):
    f = load_features(snakemake.input.features)
    fusion = Fusion(load_scores(snakemake.input.scores, *f.test_sizes, features=f), **snakemake.params.fusion)
    method, queries = snakemake.params.sweeps["rerank"], snakemake.params.figure5["queries"]
    panels = rankings(f, fusion, method, snakemake.params.rerank, queries=queries)
    ranking_figure(panels, (method, f"MUSE + {method}"), snakemake.output[0])
