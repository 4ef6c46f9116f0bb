"""rule fig4_timing -> muse.bench.score.bench_score, muse.report.figures.plot_timing"""

from muse.bench.score import bench_score
from muse.errors import logged
from muse.gpus import claim
from muse.io import write_json
from muse.report.figures import plot_timing

with logged(snakemake.log[0], snakemake.output):
    claim(snakemake.resources.gpu)
    bench = bench_score(snakemake.input.model, queries=2, C=snakemake.params.C, batch=snakemake.params.batch)
    write_json(snakemake.output.json, bench)
    plot_timing(bench, snakemake.output.png)
