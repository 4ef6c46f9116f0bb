"""rule table -> muse.intervals.annotate, muse.report.tables.assemble, markdown and its footnotes"""

import json

from muse.config import from_section
from muse.errors import logged
from muse.intervals import Bootstrap, annotate
from muse.io import atomic_path
from muse.report.tables import assemble, diagnostics_footnote, intervals_footnote, markdown

with logged(snakemake.log[0], snakemake.output):
    table = int(snakemake.wildcards.table)
    boot = from_section(Bootstrap, snakemake.params.intervals, "intervals")
    measured = [row for path in snakemake.input for row in annotate(json.loads(open(path).read()), boot)]
    df = assemble(table, measured)
    source = (
        "the embedded synthetic world (not the paper's data: compare trends, not values)"
        if snakemake.params.synthetic
        else "the configured datasets"
    )
    with atomic_path(snakemake.output.csv) as tmp:
        df.to_csv(tmp, index=False)
    notes = [n for n in (intervals_footnote(measured, boot), diagnostics_footnote(measured)) if n]
    with atomic_path(snakemake.output.md) as tmp:
        tmp.write_text(
            markdown(
                df,
                f"Table {table} — reproduced on {source} / as printed in the paper (mAP and R1, %).",
                "\n".join(notes),
            )
        )
