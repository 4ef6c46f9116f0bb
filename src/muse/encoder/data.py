"""Images for the encoder: decoding, the (flip-only) transform, and the P×K identity sampler."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from muse.errors import readable_image

MEAN = STD = 0.5


def pixels(path: str, size: tuple[int, int], resample=Image.BILINEAR) -> np.ndarray:
    """(H, W, 3) uint8: the image at ``path`` as RGB, resized to ``size`` = (H, W) with ``resample``."""
    with readable_image(path), Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size[1], size[0]), resample))


class PixelCache(dict):
    """:func:`pixels` by (path, size, filter), kept while their bytes fit in ``budget``: a training
    run then decodes each image once per filter instead of once per epoch (with ``workers`` = 0;
    a loader's worker processes fill copies of their own). The tensors are those of the uncached
    path, bit for bit."""

    def __init__(self, budget: int = 2**30):
        super().__init__()
        self.budget, self.bytes = budget, 0

    def get_pixels(self, path: str, size: tuple[int, int], resample) -> np.ndarray:
        key = (path, tuple(size), resample)
        if key not in self:
            px = pixels(path, size, resample)
            if self.bytes + px.nbytes > self.budget:
                return px
            self[key], self.bytes = px, self.bytes + px.nbytes
        return self[key]


def load_image(
    path: str, size: tuple[int, int], resample=Image.BILINEAR, cache: PixelCache | None = None
) -> torch.Tensor:
    """(3, H, W) float tensor: RGB, resized to ``size`` = (H, W) (bilinear unless ``resample``),
    scaled to (x − 0.5)/0.5; the pixels come from ``cache`` (:class:`PixelCache`) when given."""
    px = pixels(path, size, resample) if cache is None else cache.get_pixels(path, size, resample)
    x = torch.from_numpy(px.astype(np.float32) / 255.0).permute(2, 0, 1)
    return (x - MEAN) / STD


class Images(Dataset):
    """``paths[i]`` → (image, i). With ``flip_seed`` (training) each image is resized bicubically,
    as the release's training transform, and mirrored with probability ½, decided by
    (flip_seed, i) so that an epoch's augmentation is fixed by its seed; without, bilinearly.
    Pixels are read through ``cache`` (:class:`PixelCache`) when given."""

    def __init__(self, paths, size: tuple[int, int], flip_seed: int | None = None, cache: PixelCache | None = None):
        self.paths, self.size, self.flip_seed, self.cache = list(paths), size, flip_seed, cache

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i: int):
        if self.flip_seed is None:
            return load_image(self.paths[i], self.size, cache=self.cache), i
        x = load_image(self.paths[i], self.size, Image.BICUBIC, self.cache)
        if np.random.default_rng([self.flip_seed, i]).random() < 0.5:
            x = x.flip(-1)
        return x, i


def identity_batches(labels: np.ndarray, ids_per_batch: int, imgs_per_id: int, seed: int) -> list[list[int]]:
    """One epoch of P×K batches (P identities, K images each).

    Every identity's images are shuffled and cut into groups of K (an identity with fewer than
    K images is topped up by sampling with replacement; a remainder smaller than K is dropped);
    batches take one group from each of P distinct identities picked at random among those with
    groups left, until fewer than P remain.
    """
    rng = np.random.default_rng(seed)
    groups: dict[int, list[list[int]]] = {}
    for pid in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == pid))
        if len(idx) < imgs_per_id:
            idx = rng.choice(idx, size=imgs_per_id, replace=True)
        groups[int(pid)] = [
            list(map(int, idx[s : s + imgs_per_id])) for s in range(0, len(idx) - imgs_per_id + 1, imgs_per_id)
        ]
    batches = []
    while True:
        alive = [p for p, g in groups.items() if g]
        if len(alive) < ids_per_batch:
            return batches
        chosen = rng.choice(alive, size=ids_per_batch, replace=False)
        batches.append([i for p in chosen for i in groups[int(p)].pop()])
