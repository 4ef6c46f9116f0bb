"""Protocols of §5.1: names, kinds, training-set combination with offsets."""

import pandas as pd
import pytest

from muse import paper
from muse.data import protocols
from muse.errors import MuseError


def test_the_twelve_protocols():
    kinds = {}
    for name, p in protocols.PROTOCOLS.items():
        kinds.setdefault(p.kind, []).append(name)
        assert protocols.get(name) == p and p.name == name
        assert "CS" != p.target
    assert sorted(kinds["single-source"]) == sorted(["MA2MS", "MA2C3", "MS2C3", "C32MS", "MS2MA", "C32MA"])
    assert sorted(kinds["multi-source"]) == sorted(["MA+MS+CS2C3", "MA+C3+CS2MS", "MS+C3+CS2MA"])
    assert sorted(kinds["intra-domain"]) == ["C32C3", "MA2MA", "MS2MS"]
    for name in kinds["multi-source"]:  # leave-one-out: every other domain is a source
        p = protocols.get(name)
        assert set(p.sources) | {p.target} == set(protocols.DOMAINS)


def test_unknown_protocol():
    with pytest.raises(MuseError, match="unknown protocol 'MA2CS'"):
        protocols.get("MA2CS")


def test_adaptation_axis():
    p = protocols.get("MA+MS+CS2C3")
    assert paper.adaptation_domains(3, p) == ("MA",)
    assert paper.adaptation_domains(9, p) == ("MA", "MS", "CS")
    assert paper.adaptation_domains(10, protocols.get("MA2C3")) == ("MS",)
    assert paper.adaptation_domains(11, protocols.get("MA2MS")) == ("C3",)
    assert paper.adaptation_domains(6, protocols.get("MA2MS")) == ("MA",)
    with pytest.raises(MuseError, match="table 1 has no MLLM adaptation rule"):
        paper.adaptation_domains(1, p)


def manifest(domain, rows):
    return pd.DataFrame(
        [(f"{domain}/{i}.jpg", pid, cam, split, domain) for i, (pid, cam, split) in enumerate(rows)],
        columns=["path", "pid", "camid", "split", "domain"],
    )


def test_combine_train_offsets_ids_and_cameras():
    m = {
        "MA": manifest("MA", [(1, 1, "train"), (5, 6, "train"), (9, 2, "query")]),
        "MS": manifest("MS", [(0, 1, "train"), (3, 15, "train"), (0, 3, "gallery"), (2, 2, "val")]),
        "CS": manifest("CS", [(11422, 0, "train")]),
    }
    train = protocols.combine_train(m, ("MA", "MS", "CS"))
    assert list(train.domain) == ["MA", "MA", "MS", "MS", "MS", "CS"]  # MSMT17's val merged into training
    assert list(train.pid) == [1, 5, 6, 9, 8, 11422 + 10]
    assert list(train.camid) == [1, 6, 8, 22, 9, 0 + 23]
    assert set(train.split) == {"train"}
    assert train.groupby("pid").domain.nunique().max() == 1


def test_test_set_and_missing_domain():
    m = {"MA": manifest("MA", [(1, 1, "train"), (9, 2, "query"), (9, 3, "gallery")])}
    assert list(protocols.test_set(m, "MA").split) == ["query", "gallery"]
    with pytest.raises(MuseError, match="no manifest for target domain 'C3'"):
        protocols.test_set(m, "C3")
    with pytest.raises(MuseError, match="no manifest for source domain 'MS'"):
        protocols.combine_train(m, ("MA", "MS"))
