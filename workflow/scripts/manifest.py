"""rule manifest -> muse.stages.manifest"""

from muse import stages
from muse.errors import logged

with logged(snakemake.log[0], snakemake.output):
    ds = snakemake.params.dataset
    stages.manifest(
        ds["format"],
        snakemake.input.root,
        snakemake.wildcards.domain,
        snakemake.output[0],
        check=snakemake.params.check,
        variant=ds.get("variant"),
    )
