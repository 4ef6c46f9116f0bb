"""Evaluation protocols of the paper (§5.1) and the MLLM adaptation axis.

A protocol ``S1+S2+…2T`` trains the Re-ID encoder on the training splits of the source
domains S and tests on the query/gallery of the target domain T:

- single-source DG: MA2MS, MA2C3, MS2C3, C32MS, MS2MA, C32MA (tables 2, 8, 10, 11, 12);
- multi-source DG, leave-one-out with CS only ever a source: MA+MS+CS2C3, MA+C3+CS2MS,
  MS+C3+CS2MA (tables 3, 9, 13);
- intra-domain: MA2MA, C32C3, MS2MS (table 4).

The domain the MLLM is adapted on is a separate axis, fixed per table (:data:`muse.paper.ADAPTATION`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from muse.errors import MuseError

DOMAINS = ("MA", "MS", "C3", "CS")
TEST_DOMAINS = ("MA", "MS", "C3")


@dataclass(frozen=True)
class Protocol:
    sources: tuple[str, ...]
    target: str

    @property
    def name(self) -> str:
        return f"{'+'.join(self.sources)}2{self.target}"

    @property
    def kind(self) -> str:
        if len(self.sources) > 1:
            return "multi-source"
        return "intra-domain" if self.sources == (self.target,) else "single-source"


PROTOCOLS = {
    p.name: p
    for p in (
        Protocol(("MA",), "MS"),
        Protocol(("MA",), "C3"),
        Protocol(("MS",), "C3"),
        Protocol(("C3",), "MS"),
        Protocol(("MS",), "MA"),
        Protocol(("C3",), "MA"),
        Protocol(("MA", "MS", "CS"), "C3"),
        Protocol(("MA", "C3", "CS"), "MS"),
        Protocol(("MS", "C3", "CS"), "MA"),
        Protocol(("MA",), "MA"),
        Protocol(("C3",), "C3"),
        Protocol(("MS",), "MS"),
    )
}


def get(name: str) -> Protocol:
    """The protocol called ``name`` (e.g. ``MA2MS``, ``MA+MS+CS2C3``)."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise MuseError(f"unknown protocol '{name}': expected one of {', '.join(PROTOCOLS)}") from None


def combine_train(manifests: dict[str, pd.DataFrame], sources) -> pd.DataFrame:
    """The encoder's training set: the sources' ``train`` rows and their ``val`` rows (MSMT17's
    ``list_val``, merged into training as the release's list loader does), all marked ``train``,
    pids and camids offset per source.

    Source k's ids become ``pid + P_k`` and cameras ``camid + K_k`` with P_k, K_k the running
    totals of (max id + 1) and (max camera + 1) of the sources before it, so identities and
    cameras of different datasets never collide.
    """
    parts, pid_off, cam_off = [], 0, 0
    for d in sources:
        if d not in manifests:
            raise MuseError(f"no manifest for source domain '{d}'")
        train = manifests[d][manifests[d].split.isin(["train", "val"])].copy()
        train["split"] = "train"
        if train.empty:
            raise MuseError(f"domain '{d}' has no training images")
        train["pid"] += pid_off
        train["camid"] += cam_off
        pid_off, cam_off = train.pid.max() + 1, train.camid.max() + 1
        parts.append(train)
    return pd.concat(parts, ignore_index=True)


def test_set(manifests: dict[str, pd.DataFrame], target: str) -> pd.DataFrame:
    """The target's query and gallery rows."""
    if target not in manifests:
        raise MuseError(f"no manifest for target domain '{target}'")
    df = manifests[target]
    test = df[df.split.isin(["query", "gallery"])]
    for split in ("query", "gallery"):
        if not (test.split == split).any():
            raise MuseError(f"domain '{target}' has no {split} images")
    return test.reset_index(drop=True)
