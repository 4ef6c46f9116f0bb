"""The paper's tables as measurements: which rows each table has, and assembling them.

A standard table (2, 3, 4, 8–13) has, for each of its protocols, the rows Baseline, + K-RNN,
+ ECN, + CAJ, and the same four on the μ-distance (+ MUSE). Every row is one evaluation of
:mod:`muse.evaluate` on the target's test set; the MUSE rows fuse the stored MLLM logits of
the table's adaptation setting first (α, τ, C from the config; Table 4 uses α_intra).

An ablation table (5–7) has the row Baseline + K-RNN and one + MUSE row (μ-distance, then
K-RNN) per :class:`Variant` of the judge: its prompt (Table 5), zero-shot or fine-tuned for
each MLLM (Table 6), the mining strategy of its training pairs (Table 7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from muse.evaluate import evaluate, judge_auc
from muse.io import Features, Scores
from muse.rerank import rerank_features

# table -> protocols, in the paper's column order
TABLES = {
    2: ("MA2MS", "MA2C3", "MS2C3", "C32MS"),
    3: ("MA+MS+CS2C3", "MA+C3+CS2MS"),
    4: ("MA2MA", "C32C3", "MS2MS"),
    8: ("MS2MA", "MS2C3", "C32MA", "C32MS"),
    9: ("MA+MS+CS2C3", "MS+C3+CS2MA", "MA+C3+CS2MS"),
    10: ("MA2C3", "C32MA"),
    11: ("MA2MS", "MS2MA"),
    12: ("MS2MA", "C32MA"),
    13: ("MS+C3+CS2MA",),
    5: ("MA2C3", "MA2MS"),
    6: ("MA2C3", "MA2MS"),
    7: ("MA2C3", "MA2MS"),
}
ABLATION_TABLES = (5, 6, 7)
ABLATION_RERANK = "krnn"
METHOD_NAMES = {"none": "", "krnn": " + K-RNN", "ecn": " + ECN", "caj": " + CAJ"}


# §5.4.4: Table 9's Baseline + MUSE on MS+C3+CS→MA once more with a smaller fusion rate
EXTRA_ROWS = {(9, "MS+C3+CS2MA"): (("Baseline + MUSE (α = 0.1)", 0.1),)}


def extra_rows(table: int, protocol: str) -> tuple[tuple[str, float], ...]:
    """(row name, α) of the μ-distance rows (no re-ranking) a protocol of a table adds to the
    standard ones, as reported in the paper's text."""
    return EXTRA_ROWS.get((table, protocol), ())


def standard_rows() -> list[tuple[str, bool, str]]:
    """(row name, uses μ-fusion, re-ranking method) of a standard table, in the paper's order."""
    return [(f"Baseline{' + MUSE' if mu else ''}{METHOD_NAMES[m]}", mu, m)
            for mu in (False, True) for m in ("none", "krnn", "ecn", "caj")]


@dataclass(frozen=True)
class Variant:
    """The judge behind a + MUSE row: the MLLM (None: the configured judge), fine-tuned on pairs
    mined by ``strategy`` or zero-shot, prompted with ``prompt`` (None: the configured prompt)."""

    mllm: str | None = None
    sft: bool = True
    strategy: str = "qchm"
    prompt: str | None = None


def ablation_rows(table: int, mllms) -> list[tuple[str, Variant]]:
    """(row name, judge variant) of the + MUSE rows of ablation table 5, 6 or 7; Table 6 compares
    every MLLM in ``mllms`` (names as the rows print them, e.g. ``Qwen2-VL-2B``)."""
    if table == 5:
        return [(f"+ MUSE ({p})", Variant(prompt=p)) for p in ("void", "task_resp", "dap")]
    if table == 6:
        return [(f"+ MUSE ({m}, {'SFT' if sft else 'zero-shot'})", Variant(mllm=m, sft=sft))
                for sft in (False, True) for m in mllms]
    if table == 7:
        return [("+ MUSE (random)", Variant(strategy="random")), ("+ MUSE (QCHM)", Variant())]
    raise ValueError(f"table {table} is not an ablation table: expected one of {ABLATION_TABLES}")


def evaluate_rows(features: Features, scores: Scores | None, rows, rerank_params: dict, alpha: float,
                  tau: float, C: int) -> list[dict]:
    """mAP, R1, … of each (name, μ, method) row on the query/gallery of ``features``; a μ row also
    carries the judge's and the base distance's ROC-AUC over its scored pairs (:func:`judge_auc`)."""
    q, g = features.query_gallery()
    auc = judge_auc(q, g, scores, C) if any(mu for _, mu, _ in rows) else {}
    out = []
    for name, mu, method in rows:
        blocks = rerank_features(q, g, method, rerank_params.get(method), (scores, alpha, tau, C) if mu else None)
        m = evaluate(blocks, q.pids, q.camids, g.pids, g.camids)
        out.append({"row": name, "mAP": m["mAP"], "R1": m["R1"], "R5": m["R5"], "R10": m["R10"], "mINP": m["mINP"],
                    "rerank": method, "mu": mu, "alpha": alpha if mu else None, "tau": tau if mu else None,
                    "C": C if mu else None, **({"judge_auc": auc["judge_auc"], "base_auc": auc["base_auc"]}
                                                if mu else {})})
    return out


def evaluate_table(features: Features, scores: Scores, table: int, protocol: str, rerank_params: dict,
                   alpha: float, tau: float, C: int) -> list[dict]:
    """The standard rows of ``table`` on ``protocol``, then its :func:`extra_rows` at their own α."""
    rows = evaluate_rows(features, scores, standard_rows(), rerank_params, alpha, tau, C)
    for name, row_alpha in extra_rows(table, protocol):
        rows += evaluate_rows(features, scores, [(name, True, "none")], rerank_params, row_alpha, tau, C)
    return rows


def evaluate_ablation(features: Features, named_scores: dict[str, Scores], rerank_params: dict, alpha: float,
                      tau: float, C: int) -> list[dict]:
    """Baseline + K-RNN, then one μ-distance + K-RNN row per (row name → that judge's scores)."""
    rows = evaluate_rows(features, None, [("Baseline + K-RNN", False, ABLATION_RERANK)], rerank_params, alpha, tau, C)
    for name, scores in named_scores.items():
        rows += evaluate_rows(features, scores, [(name, True, ABLATION_RERANK)], rerank_params, alpha, tau, C)
    return rows


def sweep(features: Features, scores: Scores, param: str, values, base: dict, method: str,
          rerank_params: dict) -> list[dict]:
    """mAP/R1 of the μ-distance + ``method`` as one of α, τ, C takes each of ``values`` (the others
    at ``base``); only the stored logits are used, no MLLM call."""
    out = []
    for v in values:
        p = {**base, param: v}
        row = evaluate_rows(features, scores, [(f"{param}={v}", True, method)], rerank_params,
                            p["alpha"], p["tau"], p["C"])[0]
        out.append({"param": param, "value": v, **row})
    return out


def rankings(features: Features, scores: Scores, method: str, rerank_params: dict, alpha: float, tau: float,
             C: int, k: int = 15) -> dict:
    """For the query whose first true match moves up the most with MUSE: its path and the top-``k``
    gallery (path, is-match) lists of ``method`` on the base distance and on the μ-distance."""
    q, g = features.query_gallery()
    tops, firsts = [], []
    for mu in (False, True):
        blocks = rerank_features(q, g, method, rerank_params.get(method), (scores, alpha, tau, C) if mu else None)
        d = torch.cat([b for _, b in blocks]).cpu()
        valid = ~((q.pids[:, None] == g.pids[None]) & (q.camids[:, None] == g.camids[None]))
        d = d.masked_fill(torch.as_tensor(~valid), float("inf"))
        order = torch.argsort(d, dim=1, stable=True).numpy()
        match = g.pids[order] == q.pids[:, None]
        firsts.append(np.where(match.any(1), match.argmax(1), len(g.pids)))
        tops.append(order[:, :k])
    i = int(np.argmax(firsts[0] - firsts[1]))
    return {"query": str(q.paths[i]),
            "rows": [[(str(g.paths[j]), bool(g.pids[j] == q.pids[i])) for j in top[i]] for top in tops]}
