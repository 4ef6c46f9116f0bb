"""Images for the encoder: decoding, the (flip-only) transform, and the P×K identity sampler."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from muse.errors import readable_image

MEAN = STD = 0.5


def load_image(path: str, size: tuple[int, int], resample=Image.BILINEAR) -> torch.Tensor:
    """(3, H, W) float tensor: RGB, resized to ``size`` = (H, W) (bilinear unless ``resample``),
    scaled to (x − 0.5)/0.5."""
    with readable_image(path), Image.open(path) as im:
        im = im.convert("RGB").resize((size[1], size[0]), resample)
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - MEAN) / STD


class Images(Dataset):
    """``paths[i]`` → (image, i). With ``flip_seed`` (training) each image is resized bicubically,
    as the release's training transform, and mirrored with probability ½, decided by
    (flip_seed, i) so that an epoch's augmentation is fixed by its seed; without, bilinearly."""

    def __init__(self, paths, size: tuple[int, int], flip_seed: int | None = None):
        self.paths, self.size, self.flip_seed = list(paths), size, flip_seed

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i: int):
        if self.flip_seed is None:
            return load_image(self.paths[i], self.size), i
        x = load_image(self.paths[i], self.size, Image.BICUBIC)
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
