"""Training the baseline encoder: L_reid = L_id + L_pcl (paper eq. 1–3), MUSE's released recipe.

- L_id: cross-entropy with label smoothing ε on the classifier logits;
- L_pcl = −log( exp(sim(f, M_y)/τ_reid) / Σ_j exp(sim(f, M_j)/τ_reid) ), f the L2-normalised
  BNNeck output f_bn (as both MUSE's and PCL-CLIP's code), M the memory of identity prototypes
  (eq. 1);
- M is rebuilt at the start of every epoch as the L2-normalised class centroids of the whole
  training set's test features (normalised f_bn, eval mode), and after every step each identity y
  of the batch is moved towards its hardest sample f* (the one least similar to M_y):
  M_y ← γ·M_y + (1 − γ)·f*, then renormalised (eq. 2);
- AdamW; the learning rate warms up linearly from ``warmup_factor`` over ``warmup_epochs`` and is
  multiplied by ``lr_gamma`` at each milestone; P×K batches; horizontal flip only.

A checkpoint is written after every epoch with the fingerprint of the training rows, the model
config, the recipe and the initial weights; a killed run resumes from it only if they are
unchanged and, since each epoch's batches and flips are drawn from (seed, epoch), ends with the
same weights.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from muse.device import default_device
from muse.encoder.data import Images, PixelCache, identity_batches
from muse.encoder.features import embed
from muse.encoder.model import ReIDEncoder, load_clip_visual
from muse.errors import MuseError
from muse.io import atomic_path, digest, files_digest, one_writer, resumable


@dataclass
class TrainConfig:
    epochs: int = 60
    lr: float = 5e-6
    weight_decay: float = 1e-4
    ids_per_batch: int = 8
    imgs_per_id: int = 4
    warmup_epochs: int = 10
    warmup_factor: float = 0.1
    milestones: tuple = (30, 50)
    lr_gamma: float = 0.1
    label_smoothing: float = 0.1
    pcl_temperature: float = 0.01
    pcl_momentum: float = 0.2
    seed: int = 0
    workers: int = 0


def id_loss(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Label-smoothing cross-entropy: targets (1 − ε)·onehot + ε/K."""
    return F.cross_entropy(logits, labels, label_smoothing=eps)


def pcl_loss(f: torch.Tensor, labels: torch.Tensor, memory: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 1 for L2-normalised features ``f`` against the prototype memory (K, d)."""
    return F.cross_entropy(f @ memory.T / temperature, labels)


@torch.no_grad()
def update_memory(memory: torch.Tensor, f: torch.Tensor, labels: torch.Tensor, gamma: float) -> None:
    """Eq. 2 in place: each identity of the batch moves towards its hardest sample, renormalised."""
    sim = (f * memory[labels]).sum(1)
    for y in labels.unique():
        members = (labels == y).nonzero(as_tuple=True)[0]
        hardest = f[members[sim[members].argmin()]]
        memory[y] = F.normalize(gamma * memory[y] + (1 - gamma) * hardest, dim=0)


def centroids(feats: torch.Tensor, labels: torch.Tensor, K: int) -> torch.Tensor:
    """L2-normalised mean feature of each of the K identities."""
    sums = torch.zeros(K, feats.shape[1], dtype=feats.dtype).index_add_(0, labels, feats)
    return F.normalize(sums / torch.bincount(labels, minlength=K).clamp_min(1)[:, None], dim=1)


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Warm-up then multi-step decay for the 0-based ``epoch``, counted from e = epoch + 1 as
    the release's scheduler: w + (1 − w)·e/E_warm while e < E_warm, times γ per milestone ≤ e."""
    e = epoch + 1
    if e < cfg.warmup_epochs:
        return cfg.warmup_factor + (1 - cfg.warmup_factor) * e / cfg.warmup_epochs
    return cfg.lr_gamma ** sum(e >= m for m in cfg.milestones)


def relabel(pids: np.ndarray) -> np.ndarray:
    """Identities → 0..K−1 in sorted order."""
    return np.searchsorted(np.unique(pids), pids)


@one_writer
def train_encoder(
    train: pd.DataFrame, clip: dict, out, cfg: TrainConfig, weights=None, progress: bool = True
) -> ReIDEncoder:
    """Train on the manifest rows ``train`` and save the encoder at ``out`` (directory).

    The checkpoint ``<out>.ckpt`` is kept while training and removed when ``out`` is written;
    one writer at a time (``<out>.lock``).
    """
    out, ckpt = Path(out), Path(f"{out}.ckpt")
    labels = relabel(train.pid.to_numpy())
    K = int(labels.max()) + 1
    if len(np.unique(labels)) < cfg.ids_per_batch:
        raise MuseError(f"{K} training identities: need at least ids_per_batch = {cfg.ids_per_batch}")
    dev = default_device()
    torch.manual_seed(cfg.seed)
    model = ReIDEncoder(clip, K)
    if weights:
        load_clip_visual(model.visual, weights)
    model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda")
    start = 0
    recipe = {k: v for k, v in asdict(cfg).items() if k != "workers"}
    fingerprint = digest(
        train.path.to_numpy(str),
        train.pid.to_numpy(np.int64),
        train.camid.to_numpy(np.int64),
        clip,
        recipe,
        files_digest(weights),
    )
    if ckpt.exists():
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        if resumable(ckpt, state.get("fingerprint"), fingerprint):
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            start = state["epoch"]
            print(f"resuming {out} after epoch {start}", file=sys.stderr)
    paths = train.path.tolist()
    y_all = torch.as_tensor(labels)
    cache = PixelCache()  # each image decoded once per filter, not once per epoch
    for epoch in range(start, cfg.epochs):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(epoch, cfg)
        feats = torch.as_tensor(embed(model, paths, workers=cfg.workers, progress=False, cache=cache))
        memory = centroids(feats, y_all, K).to(dev)
        epoch_seed = cfg.seed * 100_003 + epoch  # batches and flips of this epoch
        batches = identity_batches(labels, cfg.ids_per_batch, cfg.imgs_per_id, seed=epoch_seed)
        loader = DataLoader(
            Images(paths, model.image_size, epoch_seed, cache), batch_sampler=batches, num_workers=cfg.workers
        )
        model.train()
        total = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not progress)
        for x, idx in bar:
            y = y_all[idx].to(dev)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
                f_bn, logits = model(x.to(dev))
            f = F.normalize(f_bn.float(), dim=1)
            loss = id_loss(logits.float(), y, cfg.label_smoothing) + pcl_loss(f, y, memory, cfg.pcl_temperature)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            update_memory(memory, f.detach(), y, cfg.pcl_momentum)
            total += float(loss.detach())
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        print(
            f"epoch {epoch + 1}: mean loss {total / max(1, len(batches)):.4f}, lr {opt.param_groups[0]['lr']:.2e}",
            file=sys.stderr,
            flush=True,
        )
        with atomic_path(ckpt) as tmp:
            torch.save(
                {
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scaler": scaler.state_dict(),
                    "fingerprint": fingerprint,
                },
                tmp,
            )
    model.cpu().eval().save_pretrained(out)
    ckpt.unlink(missing_ok=True)
    return model
