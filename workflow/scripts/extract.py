"""rules extract_test, extract_train -> muse.encoder.features.extract_splits"""

from muse.encoder.features import extract_splits
from muse.errors import logged
from muse.io import save_features

with logged(snakemake.log[0]):
    save_features(
        snakemake.output[0],
        extract_splits(
            snakemake.input.encoder, snakemake.input.manifest, snakemake.params.splits, snakemake.params.batch
        ),
    )
