"""Supervised fine-tuning of the judge with LoRA (paper §4.2.2, eq. 4).

The loss is the next-token prediction of the answer only: for the prompt of a pair ending with
the answer prompt (``<|im_start|>assistant\\n``), L_ntp = −log softmax(s^{L−1})[x^L] with x^L the
label "Yes" or "No" and s^{L−1} the logits at the last prompt position.

LoRA (r = 16, α = 32, dropout 0.05) adapts, as the release, the MLPs of the vision blocks
(``fc1``, ``fc2`` in Qwen2-VL; ``gate``, ``up``, ``down`` in Qwen2.5-VL) and the linear layers of the
language model (``q, k, v, o, gate, up, down`` projections); ``vision_attention`` also adapts the
vision blocks' attention (``qkv``, ``proj``). Modules are selected by a regular expression so that
the patch-embedding Conv3d (also named ``proj``) and the merger are left alone. AdamW, cosine
schedule from ``lr`` to ``lr_min`` over the optimizer steps; bf16 on GPU, fp32 on CPU; several GPUs
when launched with ``accelerate`` or ``torchrun``. Each optimizer step sees ``batch × grad_accum``
pairs per process (the release: 2 per GPU on four GPUs, 8 per step): ``grad_accum`` forward and
backward passes of ``batch`` pairs, each loss weighted by its share of the step's pairs, so that
the gradient is that of the mean loss of one batch of them all. ``gradient_checkpointing``
recomputes each vision block's and decoder layer's activations in the backward pass instead of
keeping them: the same gradients in about 1.4× the time (one step of the 2B in fp32 on a CPU:
14.3 GB peak without, 13.1 GB with, the latter set by loading the weights). A checkpoint after
every epoch (with the fingerprint of the model, the pairs and the recipe) lets a killed run resume
with the same result; another fingerprint starts over. With validation pairs, every ``val_every``
epochs the history records their L_ntp, the ROC-AUC of s_yes − s_no and the median |s_yes − s_no|
(:func:`validate`): the figures a recipe is chosen on.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sys
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from muse.diagnostics import roc_auc
from muse.errors import MuseError
from muse.io import atomic_path, digest, files_digest, one_writer, resumable
from muse.mllm.losses import answer_gap, answer_loss, answer_target_loss
from muse.mllm.prompt import ANSWERS, PairImages


def lora_targets(vision_attention: bool = False) -> str:
    """The regular expression of the adapted modules' names."""
    attention = r"attn\.(qkv|proj)|" if vision_attention else ""
    return (
        rf".*visual\.blocks\.\d+\.({attention}mlp\.(fc1|fc2|gate_proj|up_proj|down_proj))"
        r"|.*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
    )


@dataclass
class SFTConfig:
    """The fine-tuning recipe (config ``mllm.sft``, ``muse sft`` options); :data:`SFT_HELP` says
    what each field is."""

    epochs: int = 20
    lr: float = 5e-5
    lr_min: float = 1e-6
    weight_decay: float = 0.0
    batch: int = 2
    grad_accum: int = 1
    rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    prompt: str = "dap"
    fraction: float = 1.0
    val_every: int = 5
    vision_attention: bool = False
    gradient_checkpointing: bool = False
    seed: int = 0

    def __post_init__(self):
        for key in ("epochs", "batch", "grad_accum", "rank", "lora_alpha", "val_every"):
            if getattr(self, key) < 1:
                raise MuseError(f"sft {key} = {getattr(self, key)}: expected a positive integer")
        if not 0.0 < self.fraction <= 1.0:
            raise MuseError(f"sft fraction = {self.fraction}: expected a share in (0, 1]")
        if not self.lr > 0 or self.lr_min < 0 or not 0.0 <= self.lora_dropout < 1.0:
            raise MuseError(
                f"sft lr = {self.lr}, lr_min = {self.lr_min}, lora_dropout = {self.lora_dropout}: "
                "expected lr > 0, lr_min >= 0, 0 <= dropout < 1"
            )


SFT_HELP = {
    "epochs": "passes over the training pairs",
    "lr": "peak learning rate of AdamW",
    "lr_min": "learning rate the cosine schedule ends at",
    "weight_decay": "AdamW weight decay",
    "batch": "pairs per forward pass and process",
    "grad_accum": "batches per optimizer step (effective batch: batch × grad_accum × GPUs)",
    "rank": "LoRA rank r",
    "lora_alpha": "LoRA α (the update is scaled by α / r)",
    "lora_dropout": "dropout on the LoRA input",
    "prompt": "prompt variant of the pairs",
    "fraction": "random share of the training pairs kept (MUSE: 0.5)",
    "val_every": "validation loss, AUC and median logit gap every this many epochs, with validation pairs (MUSE: 5)",
    "vision_attention": "also adapt the vision blocks' attention (MUSE: no)",
    "gradient_checkpointing": "recompute activations in the backward pass: same gradients, less memory",
    "seed": "seed of the pair order, the kept share and LoRA dropout",
}


def read_pairs(path) -> list[dict]:
    """Records of a pairs JSONL file, checked: query, candidate, label ∈ {Yes, No}."""
    path = Path(path)
    if not path.is_file():
        raise MuseError(f"{path}: pairs file not found")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            r = json.loads(line)
            ok = r["label"] in ANSWERS and isinstance(r["query"], str) and isinstance(r["candidate"], str)
        except (json.JSONDecodeError, KeyError, TypeError):
            ok = False
        if not ok:
            raise MuseError(f'{path}:{n}: expected {{"query": path, "candidate": path, "label": "Yes"|"No"}}')
        records.append(r)
    if not records:
        raise MuseError(f"{path}: no pairs")
    return records


def check_pair_images(records: list[dict], path) -> None:
    """Every image of the pairs (read from ``path``) exists; the first that does not is named with
    its line, before any model loads (each image looked up once)."""
    exists = functools.cache(os.path.isfile)
    for n, r in enumerate(records, 1):
        for key in ("query", "candidate"):
            if not exists(r[key]):
                raise MuseError(f"{path}:{n}: {r[key]}: image not found")


def lora_model(model, cfg: SFTConfig):
    """The model wrapped with LoRA adapters on exactly the intended linear layers."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=lora_targets(cfg.vision_attention),
        bias="none",
    )
    return get_peft_model(model, config)


def cosine_lr(step: int, total: int, cfg: SFTConfig) -> float:
    """lr_min + ½(lr − lr_min)(1 + cos(π·step/total))."""
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * step / max(total, 1)))


def validate(judge, val: list[dict], images, batch: int) -> dict:
    """On the validation pairs: the mean L_ntp (``val_loss``), the ROC-AUC of s_yes − s_no for
    "same identity" (``val_auc``) and the median |s_yes − s_no| (``val_gap``), from one forward each."""
    judge.model.eval()
    loss, gap = 0.0, []
    with torch.no_grad():
        for s in range(0, len(val), batch):
            chunk = val[s : s + batch]
            logits = judge.answer_logits([images[r["query"]] for r in chunk], [images[r["candidate"]] for r in chunk])
            loss += float(answer_target_loss(logits, judge, chunk)) * len(chunk)
            gap.extend(answer_gap(logits, judge).tolist())
    label = np.array([r["label"] == ANSWERS[0] for r in val])
    gap = np.array(gap)
    auc = roc_auc(gap, label) if 0 < label.sum() < len(label) else float("nan")
    return {"val_loss": loss / len(val), "val_auc": auc, "val_gap": float(np.median(np.abs(gap)))}


def accumulate(acc, model, judge, records: list[dict], images, batch: int) -> float:
    """Backward of the mean L_ntp over ``records`` in passes of ``batch`` pairs, each pass's mean
    weighted by its share of the records (gradients add up in the parameters; DDP synchronises
    them on the last pass only); returns the mean loss."""
    value = 0.0
    for s in range(0, len(records), batch):
        chunk = records[s : s + batch]
        last = s + batch >= len(records)
        with nullcontext() if last else acc.no_sync(model):
            loss = answer_loss(judge, chunk, images) * (len(chunk) / len(records))
            acc.backward(loss)
        value += float(loss.detach())
    return value


@one_writer
def sft(
    model_dir, train: list[dict], out, cfg: SFTConfig, val: list[dict] | None = None, progress: bool = True
) -> list[dict]:
    """Fine-tune and save the LoRA adapter at ``out``; returns the per-epoch history
    (train loss, validation loss). The checkpoint ``<out>.ckpt`` is removed when ``out`` is written;
    one writer at a time (``<out>.lock``, held by rank 0 of a distributed launch)."""
    from accelerate import Accelerator
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from muse.mllm.model import load
    from muse.mllm.score import Judge

    acc = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no")
    torch.manual_seed(cfg.seed)
    base, processor, yes_no = load(model_dir, device=acc.device)
    if cfg.gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = lora_model(base, cfg)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    model, opt = acc.prepare(model, opt)
    judge = Judge(acc.unwrap_model(model).base_model.model, processor, yes_no, cfg.prompt)
    judge.model = model  # train through the (wrapped) adapter
    images = PairImages()
    fingerprint = digest(files_digest(model_dir), train, val, asdict(cfg))
    if cfg.fraction < 1.0:
        keep = np.random.default_rng([cfg.seed, 7]).permutation(len(train))[: max(1, round(cfg.fraction * len(train)))]
        train = [train[i] for i in sorted(keep)]
    out, ckpt = Path(out), Path(f"{out}.ckpt")
    per_step = cfg.batch * cfg.grad_accum
    steps_per_epoch = math.ceil(len(train) / (per_step * acc.num_processes))
    total = steps_per_epoch * cfg.epochs
    if acc.is_main_process:
        print(
            f"sft: effective batch {per_step * acc.num_processes} pairs per optimizer step "
            f"({cfg.batch} × {cfg.grad_accum} accumulated × {acc.num_processes} processes)",
            file=sys.stderr,
        )
    start, history = 0, []
    if ckpt.exists():
        state = torch.load(ckpt / "state.pt", map_location=acc.device, weights_only=True)
        if resumable(ckpt, state.get("fingerprint"), fingerprint):
            set_peft_model_state_dict(acc.unwrap_model(model), state["adapter"])
            opt.load_state_dict(state["optimizer"])
            start, history = state["epoch"], json.loads((ckpt / "history.json").read_text())
            print(f"resuming {out} after epoch {start}", file=sys.stderr)
    for epoch in range(start, cfg.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # LoRA dropout: fixed by (seed, epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train))
        mine = order[acc.process_index :: acc.num_processes]
        model.train()
        total_loss = 0.0
        bar = tqdm(
            range(0, len(mine), per_step),
            desc=f"sft epoch {epoch + 1}/{cfg.epochs}",
            unit="step",
            disable=not (progress and acc.is_main_process),
        )
        for k, s in enumerate(bar):
            for g in opt.param_groups:
                g["lr"] = cosine_lr(epoch * steps_per_epoch + k, total, cfg)
            opt.zero_grad(set_to_none=True)
            value = accumulate(acc, model, judge, [train[i] for i in mine[s : s + per_step]], images, cfg.batch)
            opt.step()
            total_loss += value
            bar.set_postfix(loss=f"{value:.4f}")
        record = {"epoch": epoch + 1, "train_loss": total_loss / max(1, len(bar))}
        if val and (epoch + 1) % cfg.val_every == 0:
            record.update(validate(judge, val, images, cfg.batch))
        history.append(record)
        print(json.dumps(record), file=sys.stderr, flush=True)
        if acc.is_main_process:
            with atomic_path(ckpt) as tmp:
                tmp.mkdir()
                torch.save(
                    {
                        "epoch": epoch + 1,
                        "adapter": get_peft_model_state_dict(acc.unwrap_model(model)),
                        "optimizer": opt.state_dict(),
                        "fingerprint": fingerprint,
                    },
                    tmp / "state.pt",
                )
                (tmp / "history.json").write_text(json.dumps(history))
        acc.wait_for_everyone()
    if acc.is_main_process:
        with atomic_path(out) as tmp:
            acc.unwrap_model(model).save_pretrained(tmp)
            (tmp / "sft_config.json").write_text(json.dumps({**asdict(cfg), "history": history}, indent=2))
        shutil.rmtree(ckpt)
    return history
