"""rule synth_world -> muse.data.synthetic.generate_domain"""

from muse.data.synthetic import Sizes, generate_domain
from muse.errors import logged
from muse.io import write_meta

with logged(snakemake.log[0]):
    domain, out = snakemake.wildcards.domain, snakemake.output[0]
    generate_domain(domain, out, Sizes.from_config(domain, snakemake.params.sizes), seed=snakemake.params.seed)
    write_meta(out, {"sizes": snakemake.params.sizes, "seed": snakemake.params.seed})
