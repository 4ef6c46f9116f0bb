"""rule table -> muse.report.paper.assemble, markdown, diagnostics_footnote"""

import json

from muse.errors import logged
from muse.io import atomic_path
from muse.report.paper import assemble, diagnostics_footnote, markdown

with logged(snakemake.log[0]):
    table = int(snakemake.wildcards.table)
    measured = [row for path in snakemake.input for row in json.loads(open(path).read())]
    df = assemble(table, measured)
    source = (
        "the embedded synthetic world (not the paper's data: compare trends, not values)"
        if snakemake.params.synthetic
        else "the configured datasets"
    )
    with atomic_path(snakemake.output.csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(snakemake.output.md) as tmp:
        tmp.write_text(
            markdown(
                df,
                f"Table {table} — reproduced on {source} / as printed in the paper (mAP and R1, %).",
                diagnostics_footnote(measured),
            )
        )
