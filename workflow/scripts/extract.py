"""rules extract_test, extract_train -> muse.encoder.features.extract"""
from muse.data.formats import read_manifest
from muse.encoder.features import extract
from muse.encoder.model import ReIDEncoder
from muse.errors import logged
from muse.io import save_features

with logged(snakemake.log[0]):
    df = read_manifest(snakemake.input.manifest)
    df = df[df.split.isin(snakemake.params.splits)]
    model = ReIDEncoder.from_pretrained(snakemake.input.encoder)
    save_features(snakemake.output[0], extract(model, df, batch=snakemake.params.batch))
