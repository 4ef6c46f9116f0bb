"""Feature extraction: the encoder's L2-normalised BN features of a manifest's images (the features
file of docs/architecture.md, "Artefact formats")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from muse.data.formats import check_paths, read_manifest
from muse.encoder.data import Images, PixelCache
from muse.encoder.model import ReIDEncoder
from muse.errors import MuseError
from muse.io import Features


@torch.no_grad()
def embed(
    model: ReIDEncoder,
    paths,
    batch: int = 128,
    workers: int = 0,
    progress: bool = True,
    cache: PixelCache | None = None,
) -> np.ndarray:
    """(N, d) float32 test features (L2-normalised f_bn) of the images at ``paths`` (eval mode,
    no augmentation; pixels through ``cache`` when given)."""
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = DataLoader(Images(paths, model.image_size, cache=cache), batch_size=batch, num_workers=workers)
    out = []
    for x, _ in tqdm(loader, desc="features", unit="batch", disable=not progress):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out.append(model(x.to(dev)).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.config["clip"]["embed_dim"]), np.float32)


def extract(
    model: ReIDEncoder, manifest: pd.DataFrame, batch: int = 128, workers: int = 0, progress: bool = True
) -> Features:
    """Features of every manifest row, with its pid, camera, path and split."""
    feats = embed(model, manifest.path.tolist(), batch, workers, progress)
    return Features(
        feats=feats,
        pids=manifest.pid.to_numpy(np.int64),
        camids=manifest.camid.to_numpy(np.int64),
        paths=manifest.path.to_numpy(str),
        split=manifest.split.to_numpy(str),
    )


def extract_splits(encoder_dir, manifest_path, splits, batch: int = 128) -> Features:
    """Features of the rows of the manifest at ``manifest_path`` whose split is one of ``splits``,
    by the saved encoder at ``encoder_dir``; no such row is an error naming the manifest."""
    df = read_manifest(manifest_path)
    df = df[df.split.isin(splits)]
    if df.empty:
        raise MuseError(f"{manifest_path}: no rows with split {' or '.join(splits)}")
    check_paths(df, manifest_path)
    return extract(ReIDEncoder.from_pretrained(encoder_dir), df, batch=batch)
