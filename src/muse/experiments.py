"""The paper's experiments run: each row :mod:`muse.paper` defines re-ranks a test set's features
(:func:`muse.rerank.rerank_features`, on the μ-distance for a + MUSE row) and is evaluated
(:func:`muse.evaluate.evaluate`); the tables, sweeps and Figure 5's rankings are built on
:func:`evaluate_rows`. A + MUSE row also carries the diagnostics of its judge
(:mod:`muse.diagnostics`) and its :func:`ceiling`.
"""

from __future__ import annotations

import numpy as np
import torch

from muse.budget import MEMORY
from muse.diagnostics import diagnose, perfect_scores
from muse.errors import MuseError
from muse.evaluate import evaluate
from muse.fusion import SETTINGS, Fusion
from muse.io import Features
from muse.paper import ABLATION_RERANK, extra_rows, standard_rows
from muse.rerank import rerank_features


def ceiling(
    q: Features, g: Features, fusion: Fusion, method: str, params: dict | None, block: int = 256, memory: int = MEMORY
) -> float:
    """The mAP of μ-fusion + ``method`` with a perfect judge on the candidates of ``fusion``'s
    scores (:func:`muse.diagnostics.perfect_scores`): what any judge could reach at this C, α, τ."""
    perfect = fusion.with_(scores=perfect_scores(q, g, fusion.scores))
    blocks = rerank_features(q, g, method, params, perfect, block=block, memory=memory)
    return evaluate(blocks, q.pids, q.camids, g.pids, g.camids)["mAP"]


def evaluate_rows(features: Features, fusion: Fusion | None, rows, rerank_params: dict) -> list[dict]:
    """mAP, R1, … and the per-query results of each (name, μ, method) row on the query/gallery of
    ``features``, a μ row on the μ-distance of ``fusion``; a μ row also carries the diagnostics of
    its scored pairs (:func:`muse.diagnostics.diagnose`) and its ``ceiling`` (:func:`ceiling`)."""
    q, g = features.query_gallery()
    mus = any(mu for _, mu, _ in rows)
    if mus and fusion is None:
        raise MuseError("a + MUSE row needs the judge's scores and the fusion's settings")
    diagnostics = diagnose(q, g, fusion.scores, fusion.C) if mus else {}
    out = []
    for name, mu, method in rows:
        params = rerank_params.get(method)
        blocks = rerank_features(q, g, method, params, fusion if mu else None)
        m = evaluate(blocks, q.pids, q.camids, g.pids, g.camids)
        out.append(
            {
                "row": name,
                "mAP": m["mAP"],
                "R1": m["R1"],
                "R5": m["R5"],
                "R10": m["R10"],
                "mINP": m["mINP"],
                "rerank": method,
                "mu": mu,
                **(fusion.settings() if mu else dict.fromkeys(SETTINGS)),
                "per_query": {k: v.tolist() for k, v in m["per_query"].items()},
                **({**diagnostics, "ceiling": ceiling(q, g, fusion, method, params)} if mu else {}),
            }
        )
    return out


def evaluate_table(features: Features, fusion: Fusion, table: int, protocol: str, rerank_params: dict) -> list[dict]:
    """The standard rows of ``table`` on ``protocol``, then its :func:`extra_rows` at their own α."""
    rows = evaluate_rows(features, fusion, standard_rows(), rerank_params)
    for name, row_alpha in extra_rows(table, protocol):
        rows += evaluate_rows(features, fusion.with_(alpha=row_alpha), [(name, True, "none")], rerank_params)
    return rows


def evaluate_ablation(features: Features, fusions: dict[str, Fusion], rerank_params: dict) -> list[dict]:
    """Baseline + K-RNN, then one μ-distance + K-RNN row per (row name → the fusion of that judge)."""
    rows = evaluate_rows(features, None, [("Baseline + K-RNN", False, ABLATION_RERANK)], rerank_params)
    for name, fusion in fusions.items():
        rows += evaluate_rows(features, fusion, [(name, True, ABLATION_RERANK)], rerank_params)
    return rows


def sweep(features: Features, fusion: Fusion, param: str, values, method: str, rerank_params: dict) -> list[dict]:
    """mAP/R1 of the μ-distance + ``method`` as one of α, τ, C takes each of ``values`` (the others
    as in ``fusion``); only the stored logits are used, no MLLM call."""
    out = []
    for v in values:
        row = evaluate_rows(features, fusion.with_(**{param: v}), [(f"{param}={v}", True, method)], rerank_params)[0]
        out.append({"param": param, "value": v, **row})
    return out


def rankings(
    features: Features, fusion: Fusion, method: str, rerank_params: dict, k: int = 15, queries: int = 4
) -> list[dict]:
    """Figure 5's queries: the ``queries`` − 1 whose first true match MUSE moves up the most, then
    the one it moves down the most (the least helped if none is hurt), each as ``{"query": path,
    "rows": the top-k gallery (path, is-match) lists of method on the base distance and on the
    μ-distance, "first": the 0-based rank of the first true match in each (the gallery size if
    none)}``. With ``queries`` = 1 only the most helped."""
    q, g = features.query_gallery()
    junk = torch.as_tensor((q.pids[:, None] == g.pids[None]) & (q.camids[:, None] == g.camids[None]))
    tops, firsts = [], []
    for mu in (False, True):
        blocks = rerank_features(q, g, method, rerank_params.get(method), fusion if mu else None)
        d = torch.cat([b for _, b in blocks]).cpu().masked_fill(junk, float("inf"))
        order = torch.argsort(d, dim=1, stable=True).numpy()
        match = g.pids[order] == q.pids[:, None]
        firsts.append(np.where(match.any(1), match.argmax(1), len(g.pids)))
        tops.append(order[:, :k])
    gain = firsts[0] - firsts[1]
    by_gain = np.argsort(-gain, kind="stable")
    chosen = list(by_gain[: max(1, queries - 1)])
    if queries > 1:
        chosen += [i for i in by_gain[::-1] if i not in chosen][:1]
    return [
        {
            "query": str(q.paths[i]),
            "rows": [[(str(g.paths[j]), bool(g.pids[j] == q.pids[i])) for j in top[i]] for top in tops],
            "first": [int(firsts[0][i]), int(firsts[1][i])],
        }
        for i in chosen
    ]
