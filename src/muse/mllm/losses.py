"""The judges' losses, shared by fine-tuning (:mod:`muse.mllm.sft`) and pretraining
(:mod:`muse.mllm.pretrain`).

- L_ntp (eq. 4), the answer-only loss: −log softmax(z)[x^L] over the vocabulary, z the logits at
  the answer position and x^L the token of the pair's label ("Yes" or "No");
- its two-way form: the softmax over [s_yes, s_no] only;
- L_vis, the supervised contrastive loss of the vision stage (:mod:`muse.mllm.pretrain`);
- the distillation of a teacher's target t into the logit gap: w · ℓ((s_yes − s_no) − t).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from muse.mllm.prompt import ANSWERS

DISTILL_LOSSES = {"mse": F.mse_loss, "huber": F.huber_loss}


def answer_loss(judge, records: list[dict], images) -> torch.Tensor:
    """Mean L_ntp of a batch of pairs (the answer token after the full prompt)."""
    logits = judge.answer_logits([images[r["query"]] for r in records], [images[r["candidate"]] for r in records])
    return answer_target_loss(logits, judge, records)


def answer_target_loss(logits: torch.Tensor, judge, records: list[dict]) -> torch.Tensor:
    """Mean −log softmax(logits)[x^L] over the vocabulary, x^L the token of each pair's label."""
    target = torch.tensor([judge.answer[ANSWERS.index(r["label"])] for r in records], device=logits.device)
    return F.cross_entropy(logits, target)


def two_way_loss(logits: torch.Tensor, judge, records: list[dict]) -> torch.Tensor:
    """Mean −log softmax([s_yes, s_no])[label] of each pair: L_ntp restricted to the two answers."""
    label = torch.tensor([ANSWERS.index(r["label"]) for r in records], device=logits.device)
    return F.cross_entropy(logits[:, judge.answer], label)


def contrastive_loss(e: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """L_vis over a batch of normalised embeddings ``e`` with identity ``labels``: with
    s_ij = e_iᵀe_j / T and P(i) the other images of i's identity,
    −mean_i log( Σ_{p∈P(i)} exp s_ip / Σ_{j≠i} exp s_ij )."""
    s = e @ e.T / temperature
    eye = torch.eye(len(e), dtype=torch.bool)
    s = s.masked_fill(eye, float("-inf"))
    pos = (labels[:, None] == labels[None, :]) & ~eye
    log_p = s.log_softmax(dim=1)
    keep = pos.any(1)
    return -(torch.logsumexp(log_p.masked_fill(~pos, float("-inf")), dim=1)[keep]).mean()


def answer_gap(logits: torch.Tensor, judge) -> torch.Tensor:
    """s_yes − s_no of each row of full-vocabulary logits at the answer position."""
    return logits[:, judge.answer[0]] - logits[:, judge.answer[1]]


def distillation(logits: torch.Tensor, judge, records: list[dict], teacher, weight: float, loss: str = "mse"):
    """w · ℓ((s_yes − s_no) − t) over a batch, w = ``weight``, t = ``teacher.target(records)``
    (:class:`muse.mllm.pretrain.Teacher`) and ℓ the ``loss`` of :data:`DISTILL_LOSSES`;
    0 without a teacher or at w = 0."""
    if teacher is None or not weight:
        return 0.0
    gap = answer_gap(logits, judge).float()
    return weight * DISTILL_LOSSES[loss](gap, teacher.target(records).to(gap.device))
