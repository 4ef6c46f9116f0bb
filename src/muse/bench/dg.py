"""The encoder's domain-generalisation matrix (``muse bench dg``)."""

from __future__ import annotations

from muse.bench import machine
from muse.evaluate import evaluate
from muse.rerank import rerank_features


def bench_dg(
    manifests: dict, encoder_cfg: dict, work_dir, krnn: dict | None = None, progress: bool = False
) -> list[dict]:
    """Train one encoder per domain (its training set, as the pipeline's) and test it on every
    test domain, with the base distance and with K-RNN (parameters ``krnn``, default the
    library's): the world's domain-generalisation matrix."""
    from pathlib import Path

    from muse.config import from_section
    from muse.data.protocols import combine_train
    from muse.encoder.features import extract
    from muse.encoder.model import clip_from_config
    from muse.encoder.train import TrainConfig, train_encoder

    rows = []
    for src in manifests:
        model = train_encoder(
            combine_train(manifests, [src]),
            clip_from_config(encoder_cfg),
            Path(work_dir) / src,
            from_section(TrainConfig, encoder_cfg["train"], "encoder.train"),
            weights=encoder_cfg["weights"],
            progress=progress,
        )
        for tgt, test in manifests.items():
            test = test[test.split.isin(["query", "gallery"])]
            if test.empty:
                continue
            f = extract(model, test, progress=False)
            q, g = f.query_gallery()
            for method in ("none", "krnn"):
                blocks = rerank_features(q, g, method, krnn if method == "krnn" else None)
                m = evaluate(blocks, q.pids, q.camids, g.pids, g.camids)
                rows.append({"train": src, "test": tgt, "rerank": method, "mAP": m["mAP"], "R1": m["R1"]})
    return rows


def dg_markdown(rows: list[dict]) -> str:
    """The matrix of :func:`bench_dg` as Markdown: a row per training domain, a column per test
    domain, cells "mAP / R1 (%) with the base distance → with K-RNN"."""
    sources = list(dict.fromkeys(r["train"] for r in rows))
    tests = list(dict.fromkeys(r["test"] for r in rows))
    cell = {(r["train"], r["test"], r["rerank"]): r for r in rows}

    def pair(r):
        return f"{100 * r['mAP']:.1f} / {100 * r['R1']:.1f}"

    lines = [
        f"mAP / R1 (%), base distance → with K-RNN; {machine()}",
        "",
        "| train \\ test | " + " | ".join(tests) + " |",
        "|---|" + "---|" * len(tests),
    ]
    for src in sources:
        cells = [f"{pair(cell[src, t, 'none'])} → {pair(cell[src, t, 'krnn'])}" for t in tests]
        lines.append(f"| {src} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
