"""The open-world corpus: the embedded default's stand-in for an MLLM's web-scale pretraining.

A real MLLM has seen far more people and conditions than any Re-ID benchmark shows. Here the
synthetic world's generator plays that part: identities drawn from its cue space (disjoint from
the MA/MS/C3/CS worlds: their random streams are keyed by another role), each photographed under
nuisances drawn more broadly than any test domain's (every domain's clothing prior, scene kind,
wider ranges of illumination, colour cast, saturation, blur, noise, scale and occlusion).

Identities come in *groups*: the first is drawn from a wardrobe, the others are look-alikes that
keep each of its cues with probability ``share`` (same upper colour, same build, …). A group is
seen by ``cameras`` cameras of its own, and every identity of the group by every camera, so that

- a positive pair (same identity) always spans two cameras: background, cast and blur differ;
- a hard negative (another identity of the group) shares the anchor's camera: background, cast
  and blur are the same, only the person differs;
- an easy negative is an identity of another group.

Camera, background and nuisance therefore carry no information about the answer. Written as
``images/g<group>/<pid>_c<cam>_<k>.jpg``, a manifest ``manifest.csv`` (``path,pid,camid,split,domain``
with split ``train``/``val`` by group) and the pairs ``pairs_{train,val}.jsonl`` (``{"query",
"candidate", "label", "kind": "pos"|"hard"|"easy"}``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from muse.config import from_section
from muse.data.synthetic import STYLES, Person, Style, draw_camera, draw_person, draw_shot, render
from muse.errors import MuseError
from muse.io import atomic_path

DOMAIN = "OW"
_ROLE = 17  # random streams of the open world: (seed, _ROLE, group, ...)
_SCENES = ("outdoor", "indoor", "mixed", "street")


@dataclass(frozen=True)
class CorpusSpec:
    """Sizes and nuisance ranges of the corpus (config ``pretrain.corpus``)."""

    groups: int = 600
    group_size: int = 4  # identities per group (1 drawn + look-alikes)
    cameras: int = 3  # cameras per group; every identity is seen by each
    images_per_camera: tuple[int, int] = (1, 2)
    share: float = 0.6  # P(a look-alike keeps a cue of the group's first person)
    val_groups: float = 0.05  # share of groups held out for validation
    brightness: tuple[float, float] = (0.55, 1.35)
    cast: float = 0.25
    saturation: tuple[float, float] = (0.7, 1.25)
    blur: float = 1.3
    noise: float = 10.0
    occlusion: float = 0.4
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: dict) -> CorpusSpec:
        spec = from_section(cls, cfg, "pretrain.corpus")
        if spec.groups < 2 or spec.group_size < 2 or spec.cameras < 2:
            raise MuseError("pretrain.corpus: need groups >= 2, group_size >= 2 and cameras >= 2")
        if not 0 < spec.val_groups < 1:
            raise MuseError("pretrain.corpus.val_groups: expected a share in (0, 1)")
        return spec


def broad_style(spec: CorpusSpec, rng: np.random.Generator) -> Style:
    """A camera style drawn around a random domain's: any scene kind and the corpus's wide nuisance ranges."""
    base = STYLES[tuple(STYLES)[rng.integers(len(STYLES))]]
    lo, hi = spec.brightness
    gain = rng.uniform(lo, hi - 0.2)
    scale_lo = rng.uniform(0.62, 0.85)
    return replace(
        base,
        scene=_SCENES[rng.integers(len(_SCENES))],
        brightness=(gain, gain + 0.2),
        cast=float(rng.uniform(0, spec.cast)),
        saturation=float(rng.uniform(*spec.saturation)),
        blur=(0.0, float(rng.uniform(0.1, spec.blur))),
        noise=float(rng.uniform(0, spec.noise)),
        scale=(scale_lo, float(rng.uniform(max(scale_lo, 0.88), 1.0))),
        occlusion=float(rng.uniform(0, spec.occlusion)),
        views=tuple(rng.dirichlet((2, 2, 1))),
    )


def look_alike(anchor: Person, rng: np.random.Generator, share: float) -> Person:
    """Another person who keeps each cue of ``anchor`` with probability ``share`` (at least two differ)."""
    fresh = draw_person(rng, STYLES[tuple(STYLES)[rng.integers(len(STYLES))]].wardrobe)
    names = [f.name for f in fields(Person)]
    keep = rng.random(len(names)) < share
    differ = [n for n, k in zip(names, keep) if not k and getattr(fresh, n) != getattr(anchor, n)]
    if len(differ) < 2:
        return look_alike(anchor, rng, share)
    return replace(anchor, **{n: getattr(fresh, n) for n in differ})


def _group(spec: CorpusSpec, g: int):
    """(people, cameras with their styles) of group ``g``."""
    rng = np.random.default_rng([spec.seed, _ROLE, g])
    first = draw_person(rng, STYLES[tuple(STYLES)[rng.integers(len(STYLES))]].wardrobe)
    people = [first] + [look_alike(first, rng, spec.share) for _ in range(spec.group_size - 1)]
    styles = [broad_style(spec, rng) for _ in range(spec.cameras)]
    cams = [draw_camera(style, c + 1, rng) for c, style in enumerate(styles)]
    return people, list(zip(styles, cams))


def generate_corpus(
    out, spec: CorpusSpec = CorpusSpec(), pairs_per_image: tuple[int, int, int] = (2, 2, 2), progress: bool = True
) -> pd.DataFrame:
    """Write the corpus at ``out`` (atomically); returns its manifest. ``pairs_per_image`` =
    (positives, hard negatives, easy negatives) drawn per anchor image for the pair files."""
    out = Path(out)
    n_val = max(1, round(spec.val_groups * spec.groups))
    rows = []
    with atomic_path(out) as tmp:
        for g in tqdm(range(spec.groups), desc="open world", unit="group", disable=not progress):
            people, cams = _group(spec, g)
            folder = tmp / "images" / f"g{g:05d}"
            folder.mkdir(parents=True)
            rng = np.random.default_rng([spec.seed, _ROLE, g, 1])
            for i, person in enumerate(people):
                pid = g * spec.group_size + i + 1
                for style, cam in cams:
                    for k in range(int(rng.integers(spec.images_per_camera[0], spec.images_per_camera[1] + 1))):
                        name = f"{pid:06d}_c{cam.index}_{k}.jpg"
                        render(person, style, cam, draw_shot(style, cam, rng)).save(folder / name, quality=90)
                        rows.append(
                            (
                                str(out / "images" / f"g{g:05d}" / name),
                                pid,
                                cam.index,
                                "val" if g >= spec.groups - n_val else "train",
                                DOMAIN,
                                g,
                            )
                        )
        df = pd.DataFrame(rows, columns=["path", "pid", "camid", "split", "domain", "group"])
        df.drop(columns="group").to_csv(tmp / "manifest.csv", index=False)
        for split in ("train", "val"):
            write_pairs(
                df[df.split == split],
                tmp / f"pairs_{split}.jsonl",
                pairs_per_image,
                np.random.default_rng([spec.seed, _ROLE, spec.groups, int(split == "val")]),
            )
    return df.drop(columns="group")


def write_pairs(df: pd.DataFrame, path: Path, per_image: tuple[int, int, int], rng: np.random.Generator) -> int:
    """Pairs of every anchor image: positives of its identity under other cameras, hard negatives
    of its group under its camera, easy negatives of other groups (JSONL, see the module doc)."""
    import json

    paths, pids, cams, groups = (df[c].to_numpy() for c in ("path", "pid", "camid", "group"))
    lines = []
    for a in range(len(df)):
        pos = np.flatnonzero((pids == pids[a]) & (cams != cams[a]))
        hard = np.flatnonzero((groups == groups[a]) & (pids != pids[a]) & (cams == cams[a]))
        easy = np.flatnonzero(groups != groups[a])
        for kind, pool, n, label in (
            ("pos", pos, per_image[0], "Yes"),
            ("hard", hard, per_image[1], "No"),
            ("easy", easy, per_image[2], "No"),
        ):
            for b in rng.choice(pool, size=min(n, len(pool)), replace=False):
                lines.append(json.dumps({"query": paths[a], "candidate": paths[b], "label": label, "kind": kind}))
    path.write_text("".join(f"{line}\n" for line in lines))
    return len(lines)
