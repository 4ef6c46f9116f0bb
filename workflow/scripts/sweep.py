"""rule sweep -> muse.experiments.sweep, muse.intervals.annotate, muse.report.figures.plot_sweep"""

import pandas as pd

from muse.config import from_section
from muse.errors import logged
from muse.experiments import sweep
from muse.fusion import Fusion
from muse.intervals import Bootstrap, annotate, interval_columns
from muse.io import atomic_path, load_features, load_scores
from muse.report.figures import plot_sweep

with logged(snakemake.log[0], snakemake.output):
    cfg, param = snakemake.params.sweeps, snakemake.wildcards.param
    boot = from_section(Bootstrap, snakemake.params.intervals, "intervals")
    f = load_features(snakemake.input.features)
    fusion = Fusion(load_scores(snakemake.input.scores, *f.test_sizes, features=f), **snakemake.params.fusion)
    rows = sweep(f, fusion, param, cfg[param], cfg["rerank"], snakemake.params.rerank)
    annotate(rows, boot)
    columns = ("param", "value", "mAP", "R1", "R5", "R10", "mINP", "ceiling")
    with atomic_path(snakemake.output.csv) as tmp:
        pd.DataFrame([{**{k: r[k] for k in columns}, **interval_columns(r)} for r in rows]).to_csv(tmp, index=False)
    plot_sweep(rows, param, snakemake.output.png, f"{cfg['protocol']}, MUSE + {cfg['rerank']}")
