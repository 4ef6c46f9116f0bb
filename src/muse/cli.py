"""The ``muse`` command: one sub-command per pipeline stage, plus ``evaluate`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from muse.errors import MuseError, report


def _data_manifest(a):
    from muse.data.formats import manifest
    from muse.io import atomic_path, write_meta

    options = {"variant": a.variant} if a.format == "cuhk03np" else {}
    df = manifest(a.format, a.root, domain=a.domain, check=not a.no_check, **options)
    with atomic_path(a.out) as tmp:
        df.to_csv(tmp, index=False)
    write_meta(a.out, {"format": a.format, "root": str(a.root), **options})
    print(f"{a.out}: {len(df)} images, " + ", ".join(f"{s} {n}" for s, n in df.split.value_counts().items()))


def _data_convert_cuhksysu(a):
    from muse.data.convert import convert_cuhksysu

    n = convert_cuhksysu(a.raw, a.out)
    print(f"{a.out}/cropped_images: {n} crops")


def _data_synth(a):
    from muse.config import load_config
    from muse.data.synthetic import Sizes, generate_domain
    from muse.io import write_meta

    world = load_config(a.config)["world"]
    if a.domain not in world["domains"]:
        raise MuseError(f"{a.config}: world.domains has no '{a.domain}'")
    sizes = Sizes.from_config(a.domain, world["domains"][a.domain])
    seed = world["seed"] if a.seed is None else a.seed
    n = generate_domain(a.domain, a.out, sizes, seed=seed)
    write_meta(a.out, {"domain": a.domain, "seed": seed, "sizes": world["domains"][a.domain]})
    print(f"{a.out}: {n} images")


def _evaluate(a):
    from muse.distance import base_distance_blocks
    from muse.evaluate import evaluate
    from muse.io import load_features, write_json

    f = load_features(a.features)
    q, g = f.require("query", a.features), f.require("gallery", a.features)
    metrics = evaluate(base_distance_blocks(q.feats, g.feats, block=a.block), q.pids, q.camids, g.pids, g.camids)
    result = {k: metrics[k] for k in ("mAP", "R1", "R5", "R10", "mINP", "num_queries")}
    result["params"] = {"features": str(a.features), "rerank": "none"}
    if a.out:
        write_json(a.out, result)
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(" ".join(f"{k} {result[k]:.4f}" for k in ("mAP", "R1", "R5", "R10", "mINP")))


def _bench_evaluate(a):
    from muse.bench import bench_evaluate

    print(json.dumps(bench_evaluate(a.size, d=a.dim, block=a.block)))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="muse", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="datasets: manifests, conversion, the synthetic world")
    dsub = data.add_subparsers(dest="data_command", required=True)
    m = dsub.add_parser("manifest", help="write the manifest CSV (path,pid,camid,split,domain) of a dataset")
    m.add_argument("--format", required=True, choices=["market1501", "msmt17", "cuhk03np", "cuhksysu"])
    m.add_argument("--root", required=True, type=Path)
    m.add_argument("--out", required=True, type=Path)
    m.add_argument("--domain", help="domain label (default MA/MS/C3/CS by format)")
    m.add_argument("--variant", default="detected", help="cuhk03np boxes: detected (default) or labeled")
    m.add_argument("--no-check", action="store_true", help="skip decoding every image")
    m.set_defaults(func=_data_manifest)
    c = dsub.add_parser("convert-cuhksysu", help="build cropped_images/ from the official CUHK-SYSU release")
    c.add_argument("--raw", required=True, type=Path, help="folder with Image/SSM/ and annotation/Person.mat")
    c.add_argument("--out", required=True, type=Path)
    c.set_defaults(func=_data_convert_cuhksysu)
    s = dsub.add_parser("synth", help="write one domain of the synthetic world in its real layout")
    s.add_argument("--domain", required=True, choices=["MA", "MS", "C3", "CS"])
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--config", default=Path("config.yaml"), type=Path)
    s.add_argument("--seed", type=int, help="override world.seed")
    s.set_defaults(func=_data_synth)

    e = sub.add_parser("evaluate", help="mAP / CMC / mINP of a features file")
    e.add_argument("--features", required=True, type=Path)
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--out", type=Path, help="also write the JSON result here")
    e.add_argument("--block", type=int, default=256, help="queries per distance block")
    e.set_defaults(func=_evaluate)

    b = sub.add_parser("bench", help="benchmarks at the real datasets' sizes")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    be = bsub.add_parser("evaluate", help="evaluation of random features")
    be.add_argument("--size", choices=["market", "msmt17"], default="msmt17")
    be.add_argument("--dim", type=int, default=512)
    be.add_argument("--block", type=int, default=256)
    be.set_defaults(func=_bench_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except MuseError as e:
        report(e)
        return 2
    except KeyboardInterrupt:
        print("muse: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
