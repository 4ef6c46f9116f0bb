"""The pipeline's stages as the CLI and the workflow both run them.

Each function reads its inputs, writes its artefact atomically (through the library function it
calls) with its provenance sidecar ``<artefact>.meta.json`` (:func:`muse.io.write_meta`: the
parameters below and the inputs' fingerprints), and returns what it wrote. The sidecar is
written after the artefact, and replacing an artefact removes its old sidecar first
(:func:`muse.io.atomic_path`), so a sidecar always describes the artefact beside it; in the
workflow a failed job's sidecars go with its outputs (:func:`muse.errors.logged`). ``muse <command>``
and the rule's script are adapters over the same function, so the two write the same files.
"""

from __future__ import annotations

import pandas as pd

from muse.io import Features, write_meta


def synth(domain: str, sizes: dict, seed: int, out) -> int:
    """One domain of the synthetic world in its real layout; returns its number of images."""
    from muse.data.synthetic import Sizes, generate_domain

    n = generate_domain(domain, out, Sizes.from_config(domain, sizes), seed=seed)
    write_meta(out, {"domain": domain, "seed": seed, "sizes": sizes})
    return n


def manifest(fmt: str, root, domain: str, out, check: bool = True, variant: str | None = None) -> pd.DataFrame:
    """A dataset's manifest CSV (path, pid, camid, split, domain) read from its folder."""
    from muse.data import formats

    options = {"variant": variant} if variant else {}
    df = formats.manifest(fmt, root, domain=domain, check=check, **options)
    formats.write_manifest(df, out)
    write_meta(out, {"format": fmt, "root": str(root), **options})
    return df


def corpus(section: dict, out) -> pd.DataFrame:
    """The open-world pair corpus the small judges are pretrained on (config ``pretrain.corpus``)."""
    from muse.data.openworld import CorpusSpec, generate_corpus

    df = generate_corpus(out, CorpusSpec.from_config(section))
    write_meta(out, {"corpus": section})
    return df


def train_set(manifests: list, sources: list[str], out) -> pd.DataFrame:
    """The encoder's training set of ``sources`` (ids and cameras offset per source)."""
    from muse.data.formats import read_manifest, write_manifest
    from muse.data.protocols import combine_train

    rows = combine_train({df.domain.iloc[0]: df for df in map(read_manifest, manifests)}, list(sources))
    write_manifest(rows, out)
    write_meta(out, {"sources": list(sources)}, inputs=manifests)
    return rows


def train_encoder(rows: pd.DataFrame, encoder: dict, out, inputs: list) -> None:
    """The baseline Re-ID encoder trained on the training rows with the config's ``encoder``."""
    from muse.config import from_section
    from muse.encoder import train
    from muse.encoder.model import clip_from_config

    cfg = from_section(train.TrainConfig, encoder["train"], "encoder.train")
    train.train_encoder(rows, clip_from_config(encoder), out, cfg, weights=encoder["weights"])
    write_meta(out, encoder, inputs=inputs)


def extract(encoder, manifest_csv, splits: list[str], batch: int, out) -> Features:
    """The encoder's features of a manifest's ``splits`` (.npz)."""
    from muse.encoder.features import extract_splits
    from muse.io import save_features

    f = extract_splits(encoder, manifest_csv, splits, batch)
    save_features(out, f)
    write_meta(out, {"splits": list(splits), "batch": batch}, inputs=[manifest_csv, encoder])
    return f


def mine(
    features, strategy: str, cpos: int, cneg: int, val_ids: float, seed: int, out, val_out=None, random_k: int = 5
) -> dict:
    """Query–candidate pairs of the training features (C_pos + C_neg per image by QCHM, ``random_k``
    by random sampling), and at ``val_out`` (if given) those of the ``val_ids`` fraction of
    identities held out; returns {path: number of pairs}."""
    from muse.io import load_features
    from muse.mining import mine_split, write_pairs

    train, val = mine_split(load_features(features), strategy, cpos, cneg, val_ids, seed, random_k)
    params = {"strategy": strategy, "cpos": cpos, "cneg": cneg, "random_k": random_k, "val_ids": val_ids, "seed": seed}
    written = {}
    for records, path in [(train, out)] + ([(val, val_out)] if val_out is not None else []):
        write_pairs(path, records)
        write_meta(path, params, inputs=[features])
        written[path] = len(records)
    return written


def sft(model, pairs, out, options: dict, val_pairs=None) -> list:
    """The judge's LoRA adapter fine-tuned on the mined pairs (``options``: :class:`SFTConfig`
    fields); returns the per-epoch history."""
    from muse.mllm import sft as tuning

    cfg = tuning.SFTConfig(**options)
    train, val = tuning.read_pairs(pairs), tuning.read_pairs(val_pairs) if val_pairs else None
    for records, path in ((train, pairs), (val or [], val_pairs)):
        tuning.check_pair_images(records, path)
    history = tuning.sft(model, train, out, cfg, val=val)
    write_meta(out, {"sft": cfg.__dict__}, inputs=[pairs] + ([val_pairs] if val_pairs else []))
    return history


def score(
    model,
    adapter,
    features,
    C: int,
    out,
    shard: str = "0/1",
    engine: str = "cached",
    batch: int = 8,
    swap: bool = False,
    prompt: str = "dap",
    logits: str = "raw",
) -> slice:
    """The judge's Yes/No logits of each query's top-C candidates (a shard of the queries)."""
    from muse.io import load_features
    from muse.mllm.score import load_judge, score_features, shard_candidates

    f = load_features(features)
    picked = shard_candidates(f, C, shard)  # a bad C or shard is refused before the weights load
    judge = load_judge(model, adapter, prompt, logits)
    rows = score_features(judge, f, C, out, shard, engine, batch, swap, candidates=picked)
    params = {
        "C": C,
        "engine": engine,
        "shard": shard,
        "swap": swap,
        "prompt": prompt,
        "logits": logits,
        "rows": [rows.start, rows.stop],
        "model": str(model),
        "adapter": adapter and str(adapter),
        "judge": judge.source,
    }
    write_meta(out, params, inputs=[features])
    return rows


def score_merge(features, shards: list, out):
    """One scores file of the shards, in query order (they must tile the queries exactly)."""
    from muse.io import load_features
    from muse.mllm.score import merge_shards

    merged = merge_shards(shards, out, load_features(features))
    write_meta(out, {"shards": len(shards)}, inputs=[features, *shards])
    return merged
