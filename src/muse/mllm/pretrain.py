"""Pretraining of the embedded default's judges on the open-world corpus (:mod:`muse.data.openworld`).

A real MLLM comes to MUSE with open-world knowledge: its vision encoder was contrastively
pretrained, then the whole model trained on image-text data. The embedded default's small judges
get the same stages, full-parameter, from random weights (with ``tower``, the vision tower of a
trained judge instead: a language-model recipe can then be tried on a shipped tower in minutes):

1. **Vision** (``vision_steps`` steps): the vision tower alone, on batches of whole look-alike
   groups (``vision_groups`` groups × every identity × ``vision_imgs`` images, horizontally
   flipped at random). The embedding e_i of an image comes from its visual tokens as the
   language model receives them (:func:`embed`: stripe means, normalised). With
   s_ij = e_iᵀe_j / T and P(i) the other images of i's identity in the batch, the supervised
   contrastive loss is L_vis = −mean_i log( Σ_{p∈P(i)} exp s_ip / Σ_{j≠i} exp s_ij ).
2. **Language model** (``llm_steps`` steps of ``llm_batch`` pairs): the vision tower frozen, its
   visual tokens computed once per image, the rest of the judge learns to answer on the corpus's
   pair file with the prompt of fine-tuning (the variants of ``prompts`` in turn). Half of each
   batch is positive; each negative is hard (a look-alike under the anchor's camera) with a
   probability that grows linearly from ``hard_start`` to ``hard_end``, else easy (another
   group). For the first ``two_way`` share of the steps the softmax runs over the two answer
   logits only (−log softmax([s_yes, s_no])[label]), which leaves the 50/50 plateau sooner; then
   over the whole vocabulary, the answer-only loss of eq. 4 as fine-tuning uses it.
3. **Whole judge** (``pair_steps`` steps of ``pair_batch`` pairs): every parameter, full forwards
   from the images, the eq. 4 loss, negatives hard with probability ``hard_end``.

**Distillation** (``llm_distill`` > 0 in stage 2, ``pair_distill`` > 0 in stage 3): the frozen
tower of stage 1 already compares people well; the answer also learns to say what it knows. For a
pair (q, c) with embeddings e_q, e_c (:func:`embed`, from the tower as it ends stage 1) the
target of the logit gap is t = k·(e_qᵀe_c − b), with b and k₀ fitted once by a class-balanced
logistic regression of "same identity" on e_qᵀe_c over the training pairs (σ(t) is then a
calibrated P(yes) at k = k₀) and k = ``distill_scale``·k₀. The loss adds w · ℓ((s_yes − s_no) − t)
to the answer loss, w the stage's weight and ℓ the squared error (``distill_loss: mse``) or the
Huber loss with δ = 1 (``huber``).

AdamW with a linear warm-up over the first 5 % of each stage and a cosine decay to 1 % of the
rate, gradients clipped to norm 1. Every batch is drawn from a generator keyed by (seed, stage,
step), and a checkpoint ``<out>.ckpt`` is written every ``checkpoint_every`` steps with the
fingerprint of the corpus (sha256 of its files) and the recipe; a rerun resumes from it only if
both match, and ends with the same weights as an uninterrupted run. With ``eval_every`` > 0 the
held-out metrics (:func:`held_out`) are logged every ``eval_every`` steps of stages 2 and 3 and kept
in the history; they draw from no training generator, so the weights do not depend on them.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from muse.config import from_section
from muse.diagnostics import roc_auc
from muse.errors import MuseError
from muse.io import atomic_path, digest, files_digest, resumable, sha256
from muse.mllm.losses import (
    DISTILL_LOSSES,
    answer_loss,
    answer_target_loss,
    contrastive_loss,
    distillation,
    two_way_loss,
)
from muse.mllm.prompt import VARIANTS, PairImages
from muse.mllm.sft import read_pairs


@dataclass(frozen=True)
class PretrainConfig:
    """The recipe (config ``pretrain.recipe``; these defaults are the shipped judges')."""

    arch: str = "qwen2_vl"
    size: str = "small"
    llm_layers: int = 0  # decoder layers of the language model; 0: those of the size (small: 2)
    tower: str = ""  # a judge (directory or pretrained:<arch>) whose vision tower the run starts from; "": random
    seed: int = 0
    vision_steps: int = 600
    vision_groups: int = 6
    vision_imgs: int = 2
    vision_lr: float = 2e-3
    temperature: float = 0.1
    llm_steps: int = 2000
    llm_batch: int = 32
    llm_lr: float = 2e-3
    pair_steps: int = 200
    pair_batch: int = 8
    pair_lr: float = 1e-4
    two_way: float = 0.5
    hard_start: float = 0.2
    hard_end: float = 0.8
    prompts: tuple[str, ...] = ("dap", "task_resp", "void")
    weight_decay: float = 0.01
    llm_distill: float = 0.0
    pair_distill: float = 0.0
    distill_scale: float = 1.0
    distill_loss: str = "mse"
    checkpoint_every: int = 250
    eval_pairs: int = 600
    eval_every: int = 0

    @classmethod
    def from_config(cls, cfg: dict) -> PretrainConfig:
        c = from_section(cls, cfg, "pretrain.recipe")
        bad = [p for p in c.prompts if p not in VARIANTS]
        if bad:
            raise MuseError(f"pretrain.recipe.prompts: unknown prompt variant '{bad[0]}'")
        if (
            min(c.vision_steps, c.llm_steps, c.pair_steps) < 0
            or min(c.pair_batch, c.llm_batch, c.vision_groups, c.vision_imgs) < 1
        ):
            raise MuseError("pretrain.recipe: steps must be >= 0 and batch sizes >= 1")
        if c.distill_loss not in DISTILL_LOSSES:
            raise MuseError(f"pretrain.recipe.distill_loss: expected one of {', '.join(DISTILL_LOSSES)}")
        if min(c.llm_distill, c.pair_distill) < 0 or c.distill_scale <= 0:
            raise MuseError("pretrain.recipe: llm_distill and pair_distill must be >= 0 and distill_scale > 0")
        if c.llm_layers < 0:
            raise MuseError("pretrain.recipe.llm_layers: must be >= 0 (0: the size's own)")
        if c.eval_every < 0:
            raise MuseError("pretrain.recipe.eval_every: must be >= 0 (0: held-out metrics only at the end)")
        return c


def lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 5 % of ``total`` steps, then cosine from ``peak`` to peak/100."""
    warm = max(1, total // 20)
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


class _Corpus:
    """The corpus's manifest and pair files, with images loaded once (280×140, see PairImages)."""

    def __init__(self, root):
        root = Path(root)
        for name in ("manifest.csv", "pairs_train.jsonl", "pairs_val.jsonl"):
            if not (root / name).is_file():
                raise MuseError(f"{root}: not an open-world corpus (no {name}); build it with muse mllm corpus")
        self.root = root
        df = pd.read_csv(root / "manifest.csv")
        self.pairs = read_pairs(root / "pairs_train.jsonl")
        self.val = read_pairs(root / "pairs_val.jsonl")
        self.by_kind = {k: [r for r in self.pairs if r.get("kind") == k] for k in ("pos", "hard", "easy")}
        if not all(self.by_kind.values()):
            raise MuseError(f"{root}/pairs_train.jsonl: needs pairs of every kind (pos, hard, easy)")
        group = df.path.str.extract(r"/(g\d+)/")[0]
        self.groups = {
            split: {g: sorted(rows.pid.unique()) for g, rows in df[df.split == split].groupby(group)}
            for split in ("train", "val")
        }
        self.paths_of = {pid: rows.path.tolist() for pid, rows in df.groupby("pid")}
        self.images = PairImages()

    def fingerprint(self) -> str:
        return sha256(self.root)


def _vision_batch(corpus: _Corpus, cfg: PretrainConfig, rng: np.random.Generator, split: str = "train"):
    groups = corpus.groups[split]
    names = list(groups)
    chosen = rng.choice(len(names), size=min(cfg.vision_groups, len(names)), replace=False)
    images, labels = [], []
    for g in chosen:
        for pid in groups[names[g]]:
            paths = corpus.paths_of[pid]
            for k in rng.choice(len(paths), size=cfg.vision_imgs, replace=len(paths) < cfg.vision_imgs):
                im = corpus.images[paths[k]]
                images.append(im.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else im)
                labels.append(pid)
    return images, torch.tensor(labels)


def embed(model, processor, images: list[Image.Image], stripes: int = 5) -> torch.Tensor:
    """(n, stripes·H) embedding of each image from its visual tokens as the language model receives
    them (a row-major grid of h × w merged tokens): the mean of each of ``stripes`` horizontal
    stripes, L2-normalised, concatenated and divided by √stripes (so that e has unit norm). The
    vision tower has no absolute position embedding, so stripes keep the layout (upper body above
    lower body) that one global mean would lose."""
    pv = processor.image_processor(images=images, return_tensors="pt")
    dev = next(model.parameters()).device
    grid = pv["image_grid_thw"]
    out = model.model.get_image_features(pv["pixel_values"].to(dev), grid.to(dev)).pooler_output
    merge = model.config.vision_config.spatial_merge_size
    grids = [(h // merge, w // merge) for _, h, w in grid.tolist()]
    return torch.cat([stripe_embedding(t[None], *hw, stripes) for t, hw in zip(out, grids)])


def stripe_embedding(tokens: torch.Tensor, rows: int, cols: int, stripes: int = 5) -> torch.Tensor:
    """:func:`embed` from visual tokens (n, rows·cols, H) laid out row-major on a rows × cols grid."""
    r = tokens.float().reshape(len(tokens), rows, cols, -1).mean(2)  # (n, rows, H)
    parts = torch.stack([p.mean(1) for p in r.tensor_split(stripes, dim=1)], dim=1)  # (n, stripes, H)
    return F.normalize(parts, dim=2).flatten(1) / stripes**0.5


def _pair_batch(corpus: _Corpus, size: int, hard: float, rng: np.random.Generator) -> list[dict]:
    """``size`` pairs, half positive; each negative is hard with probability ``hard``, else easy."""
    kinds = ["pos" if k < size // 2 else ("hard" if rng.random() < hard else "easy") for k in range(size)]
    return [corpus.by_kind[k][rng.integers(len(corpus.by_kind[k]))] for k in kinds]


def fit_logistic(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """(k, b) of the class-balanced logistic regression P(y = 1 | x) = σ(k·(x − b)): Newton's method
    on the weighted log-likelihood, each class weighing ½ in all."""
    x, y = np.asarray(x, np.float64), np.asarray(y, bool)
    w = np.where(y, 0.5 / max(1, y.sum()), 0.5 / max(1, (~y).sum()))
    X = np.stack([x, np.ones_like(x)], axis=1)
    theta = np.zeros(2)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-X @ theta))
        grad = X.T @ (w * (y - p))
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta += step
        if np.abs(step).max() < 1e-10:
            break
    a, c = theta
    return float(a), float(-c / a)


class Teacher:
    """The distillation target t = k·(e_qᵀe_c − b) of a pair (module doc), from the stripe
    embeddings of the stored visual tokens (path → (T, H)) of the frozen tower."""

    def __init__(self, paths: list[str], e: torch.Tensor, k0: float, b: float, cfg: PretrainConfig):
        self.paths, self.e, self.k0, self.b = paths, e, k0, b
        self.index = {p: i for i, p in enumerate(paths)}
        self.k = cfg.distill_scale * k0

    @classmethod
    def fit(cls, judge, corpus: _Corpus, tokens: dict, cfg: PretrainConfig) -> Teacher:
        """The teacher of the tower that made ``tokens``, fitted on the corpus's training pairs."""
        grid = judge.processor.image_processor(images=[corpus.images[corpus.pairs[0]["query"]]], return_tensors="pt")
        _, h, w = grid["image_grid_thw"][0].tolist()
        merge = judge.model.config.vision_config.spatial_merge_size
        paths = list(tokens)
        e = stripe_embedding(torch.stack([tokens[p] for p in paths]), h // merge, w // merge)
        cosine = cls(paths, e, 1.0, 0.0, cfg).cosine(corpus.pairs)  # k0 and b are fitted on it
        k0, b = fit_logistic(cosine.numpy(), np.array([r["label"] == "Yes" for r in corpus.pairs]))
        return cls(paths, e, k0, b, cfg)

    def state(self) -> dict:
        """What a checkpoint keeps of it: stage 3 trains the tower, so a run resumed there cannot
        rebuild the teacher from it."""
        return {"paths": self.paths, "e": self.e, "k0": self.k0, "b": self.b}

    def cosine(self, records: list[dict]) -> torch.Tensor:
        q = self.e[[self.index[r["query"]] for r in records]]
        c = self.e[[self.index[r["candidate"]] for r in records]]
        return (q * c).sum(1)

    def target(self, records: list[dict]) -> torch.Tensor:
        return self.k * (self.cosine(records) - self.b)


def token_loss(judge, records: list[dict], tokens: dict, two_way: bool, teacher: Teacher | None, cfg) -> torch.Tensor:
    """Answer-only loss of a batch of pairs from the images' stored visual ``tokens`` (path → (T, H)):
    −log softmax at each pair's label over the two answer logits (``two_way``) or over the
    vocabulary (eq. 4, as :func:`muse.mllm.sft.answer_loss` on the images); plus the :func:`distillation` term."""
    logits = judge.logits_from_tokens(
        torch.stack([tokens[r["query"]] for r in records]), torch.stack([tokens[r["candidate"]] for r in records])
    )
    answer = (two_way_loss if two_way else answer_target_loss)(logits, judge, records)
    return answer + distillation(logits, judge, records, teacher, cfg.llm_distill, cfg.distill_loss)


def whole_judge_loss(judge, records: list[dict], images, teacher: Teacher | None, cfg) -> torch.Tensor:
    """Stage 3's loss on the images: eq. 4 (as :func:`muse.mllm.sft.answer_loss`) plus the :func:`distillation` term."""
    logits = judge.answer_logits([images[r["query"]] for r in records], [images[r["candidate"]] for r in records])
    return answer_target_loss(logits, judge, records) + distillation(
        logits, judge, records, teacher, cfg.pair_distill, cfg.distill_loss
    )


@torch.no_grad()
def visual_tokens(judge, corpus: _Corpus, batch: int = 64, progress: bool = True) -> dict:
    """Every pair image's visual tokens under the (frozen) vision tower, computed once."""
    paths = sorted({r[k] for r in corpus.pairs for k in ("query", "candidate")})
    judge.model.eval()
    tokens = {}
    for s in tqdm(range(0, len(paths), batch), desc="visual tokens", unit="batch", disable=not progress):
        chunk = paths[s : s + batch]
        tokens.update(zip(chunk, judge.visual([corpus.images[p] for p in chunk])))
    judge.model.train()
    return tokens


@torch.no_grad()
def held_out_loss(model, processor, answer, corpus: _Corpus, cfg: PretrainConfig, batch: int = 16) -> dict:
    """The two stages' losses on the held-out groups: L_vis of one fixed batch of their images and
    the full-vocabulary answer loss (``dap`` prompt) of their first ``eval_pairs`` pairs."""
    from muse.mllm.score import Judge

    model.eval()
    images, labels = _vision_batch(corpus, cfg, np.random.default_rng([cfg.seed, 98]), split="val")
    vision = float(contrastive_loss(embed(model, processor, images), labels, cfg.temperature))
    judge, val = Judge(model, processor, answer, "dap"), corpus.val[: cfg.eval_pairs]
    pairs = sum(
        float(answer_loss(judge, val[s : s + batch], corpus.images)) * len(val[s : s + batch])
        for s in range(0, len(val), batch)
    ) / len(val)
    model.train()
    return {"vision": round(vision, 4), "pairs": round(pairs, 4)}


def calibration(gap: np.ndarray, label: np.ndarray, bins: int = 10) -> list[dict]:
    """How well P(yes) = σ(s_yes − s_no) is calibrated: the pairs in each of ``bins`` equal-width
    bins of P(yes) on [0, 1] (the last closed), with their count, mean P(yes) and share of
    same-identity pairs; empty bins left out."""
    p = 1 / (1 + np.exp(-np.asarray(gap, dtype=np.float64)))
    which = np.minimum((p * bins).astype(int), bins - 1)
    return [
        {
            "bin": [k / bins, (k + 1) / bins],
            "pairs": int((which == k).sum()),
            "p_yes": round(float(p[which == k].mean()), 4),
            "same": round(float(label[which == k].mean()), 4),
        }
        for k in range(bins)
        if (which == k).any()
    ]


@torch.no_grad()
def held_out(
    model, processor, answer, corpus: _Corpus, cfg: PretrainConfig, batch: int = 16, calibrated: bool = False
) -> dict:
    """ROC-AUC on the held-out groups' pairs (``eval_pairs`` of them): of the judge's s_yes − s_no
    (``dap`` prompt) and of the embeddings' cosine similarity, on all pairs and on pos + hard only;
    the median logit gap |s_yes − s_no|; with ``calibrated``, the :func:`calibration` table."""
    from muse.mllm.score import Judge

    model.eval()
    rng = np.random.default_rng([cfg.seed, 99])
    val = [
        corpus.val[i] for i in sorted(rng.choice(len(corpus.val), min(cfg.eval_pairs, len(corpus.val)), replace=False))
    ]
    judge = Judge(model, processor, answer, "dap")
    gap, cos = [], []
    for s in range(0, len(val), batch):
        chunk = val[s : s + batch]
        q = [corpus.images[r["query"]] for r in chunk]
        c = [corpus.images[r["candidate"]] for r in chunk]
        logits = judge.naive(q, c)
        gap.extend((logits[:, 0] - logits[:, 1]).tolist())
        cos.extend((embed(model, processor, q) * embed(model, processor, c)).sum(1).tolist())
    label = np.array([r["label"] == "Yes" for r in val])
    hard = np.array([r.get("kind") != "easy" for r in val])
    out = {
        "pairs": len(val),
        "judge_auc": roc_auc(np.array(gap), label),
        "judge_auc_hard": roc_auc(np.array(gap)[hard], label[hard]),
        "embedding_auc": roc_auc(np.array(cos), label),
        "embedding_auc_hard": roc_auc(np.array(cos)[hard], label[hard]),
        "gap_median": float(np.median(np.abs(gap))),
    }
    model.train()
    out = {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
    return {**out, "calibration": calibration(np.array(gap), label)} if calibrated else out


def start_tower(model, tower: Path, cfg: PretrainConfig) -> None:
    """Give ``model`` the vision tower of the judge at ``tower`` (recipe ``tower``)."""
    from muse.mllm.model import load

    state = load(tower, device="cpu", dtype=torch.float32)[0].model.visual.state_dict()
    try:
        model.model.visual.load_state_dict(state)
    except RuntimeError:
        raise MuseError(
            f"pretrain.recipe.tower: {tower}'s vision tower does not fit a {cfg.arch} judge of size {cfg.size}"
        ) from None


def pretrain(
    corpus_dir, out, cfg: PretrainConfig = PretrainConfig(), progress: bool = True, command: str | None = None
) -> dict:
    """Pretrain a small judge of ``cfg.arch`` on the corpus at ``corpus_dir`` and write it at ``out``
    (model, processor, ``provenance.json``, whose ``command`` is ``command`` or the process's
    argv); returns the provenance record. Denormal floats are flushed to zero for the process:
    weights trained at a high rate hold them, and they made CPU steps 2–4× slower."""
    from muse.mllm.model import answer_ids, build, judge_dir
    from muse.mllm.score import Judge

    torch.set_flush_denormal(True)
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    corpus = _Corpus(corpus_dir)
    corpus_sha256 = corpus.fingerprint()
    tower = judge_dir(cfg.tower) if cfg.tower else None
    fingerprint = digest(corpus_sha256, asdict(cfg), files_digest(tower))
    model, processor = build(cfg.arch, cfg.size, cfg.seed, layers=cfg.llm_layers or None)
    if tower is not None:
        start_tower(model, tower, cfg)
    answer = answer_ids(processor.tokenizer)
    judges = {p: Judge(model, processor, answer, p) for p in cfg.prompts}
    visual = list(model.model.visual.parameters())
    ids = {id(p) for p in visual}
    stages = [
        ("vision", cfg.vision_steps, cfg.vision_lr, visual),
        ("llm", cfg.llm_steps, cfg.llm_lr, [p for p in model.parameters() if id(p) not in ids]),
        ("pairs", cfg.pair_steps, cfg.pair_lr, list(model.parameters())),
    ]
    out, ckpt = Path(out), Path(f"{out}.ckpt")
    start = (0, 0)
    history: list[dict] = []
    optimiser, tokens, teacher, distill_fit = None, None, None, None
    if (ckpt / "state.pt").is_file():
        state = torch.load(ckpt / "state.pt", weights_only=True)
        if resumable(ckpt, state.get("fingerprint"), fingerprint):
            model.load_state_dict(state["model"])
            start, history = (state["stage"], state["step"]), json.loads(state["history"])
            optimiser = state["optimizer"] or None
            if state.get("teacher"):
                teacher = Teacher(**state["teacher"], cfg=cfg)
            print(f"resuming {out} at stage {stages[min(start[0], 2)][0]}, step {start[1]}", file=sys.stderr)
    model.train()
    for si, (name, steps, peak, params) in enumerate(stages):
        if si < start[0] or steps == 0:
            continue
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=peak, weight_decay=cfg.weight_decay)
        first = start[1] if si == start[0] else 0
        if optimiser is not None and si == start[0]:
            opt.load_state_dict(optimiser)
        if name == "llm" or (name == "pairs" and cfg.pair_distill and teacher is None):
            tokens = visual_tokens(judges[cfg.prompts[0]], corpus, progress=progress)
        if name != "vision" and (cfg.llm_distill or cfg.pair_distill) and teacher is None:
            teacher = Teacher.fit(judges[cfg.prompts[0]], corpus, tokens, cfg)
        if teacher is not None and distill_fit is None:
            distill_fit = {"k0": round(teacher.k0, 4), "b": round(teacher.b, 4), "k": round(teacher.k, 4)}
            print(json.dumps({"distillation target": distill_fit}), file=sys.stderr, flush=True)
        if name == "pairs":
            tokens = None  # stage 3 works on the images; the teacher keeps only the embeddings
        bar = tqdm(range(first, steps), desc=f"pretrain {cfg.arch} ({name})", unit="step", disable=not progress)
        running = None
        for step in bar:
            rng = np.random.default_rng([cfg.seed, si, step])
            for g in opt.param_groups:
                g["lr"] = lr_at(step, steps, peak)
            judge = judges[cfg.prompts[step % len(cfg.prompts)]]
            if name == "vision":
                images, labels = _vision_batch(corpus, cfg, rng)
                loss = contrastive_loss(embed(model, processor, images), labels, cfg.temperature)
            elif name == "llm":
                hard = cfg.hard_start + (cfg.hard_end - cfg.hard_start) * step / max(1, steps - 1)
                batch = _pair_batch(corpus, cfg.llm_batch, hard, rng)
                loss = token_loss(judge, batch, tokens, step < cfg.two_way * steps, teacher, cfg)
            else:
                batch = _pair_batch(corpus, cfg.pair_batch, cfg.hard_end, rng)
                loss = whole_judge_loss(judge, batch, corpus.images, teacher, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            value = float(loss.detach())
            running = value if running is None else 0.98 * running + 0.02 * value
            bar.set_postfix(loss=f"{running:.4f}")
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == steps:
                history.append({"stage": name, "step": step + 1, "loss": round(running, 4)})
                print(json.dumps(history[-1]), file=sys.stderr, flush=True)
            if name != "vision" and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
                history.append({"stage": name, "step": step + 1, **held_out(model, processor, answer, corpus, cfg)})
                print(json.dumps(history[-1]), file=sys.stderr, flush=True)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == steps:
                done = (si + 1, 0) if step + 1 == steps else (si, step + 1)
                with atomic_path(ckpt) as tmp:
                    tmp.mkdir()
                    torch.save(
                        {
                            "stage": done[0],
                            "step": done[1],
                            "model": model.state_dict(),
                            "optimizer": opt.state_dict() if done[1] else {},
                            "fingerprint": fingerprint,
                            "history": json.dumps(history),
                            "teacher": teacher.state() if teacher else {},
                        },
                        tmp / "state.pt",
                    )
        bar.close()
        optimiser = None
    for p in model.parameters():
        p.requires_grad_(True)
    metrics = {
        **held_out(model, processor, answer, corpus, cfg, calibrated=True),
        "loss": held_out_loss(model, processor, answer, corpus, cfg),
    }
    record = {
        "command": command or " ".join(sys.argv),
        "corpus": str(corpus_dir),
        "corpus_sha256": corpus_sha256,
        "recipe": asdict(cfg),
        "history": history,
        "distillation": distill_fit,
        "held_out": metrics,
        "wall_time_s": round(time.time() - t0, 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {platform.processor() or 'cpu'}",
        "torch": torch.__version__,
    }
    model.eval()
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(ckpt, ignore_errors=True)
    return record
