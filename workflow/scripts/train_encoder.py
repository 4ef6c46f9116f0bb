"""rule train_encoder -> muse.encoder.train.train_encoder"""

from muse.config import from_section
from muse.data.formats import read_manifest
from muse.encoder.model import clip_from_config
from muse.encoder.train import TrainConfig, train_encoder
from muse.errors import logged
from muse.io import write_meta

with logged(snakemake.log[0]):
    enc = snakemake.params.encoder
    train_encoder(
        read_manifest(snakemake.input[0]),
        clip_from_config(enc),
        snakemake.output[0],
        from_section(TrainConfig, enc["train"], "encoder.train"),
        weights=enc["weights"],
    )
    write_meta(snakemake.output[0], enc, inputs=snakemake.input)
