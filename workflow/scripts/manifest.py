"""rule manifest -> muse.data.formats.manifest"""

from muse.data.formats import manifest, write_manifest
from muse.errors import logged
from muse.io import write_meta

with logged(snakemake.log[0]):
    ds = snakemake.params.dataset
    options = {"variant": ds["variant"]} if "variant" in ds else {}
    df = manifest(
        ds["format"], snakemake.input.root, domain=snakemake.wildcards.domain, check=snakemake.params.check, **options
    )
    write_manifest(df, snakemake.output[0])
    write_meta(snakemake.output[0], {"dataset": ds})
