"""The paper's experiments in one place: every table's protocols and adaptation rule exist, the
wildcard patterns accept exactly the paper's names, Table 4 fuses with α_intra."""

import re

import pytest

from muse import paper
from muse.data.protocols import PROTOCOLS
from muse.report.tables import paper_numbers


def test_every_table_is_defined_with_known_protocols_and_an_adaptation_rule():
    printed = set(paper_numbers().table)
    for table, protocols in paper.TABLES.items():
        assert table in printed and table in paper.ADAPTATION
        assert set(protocols) <= set(PROTOCOLS)
    assert set(paper.STANDARD_TABLES) | set(paper.ABLATION_TABLES) == set(paper.TABLES)
    assert paper.SWEEP_SETTING in paper.STANDARD_TABLES


@pytest.mark.parametrize(
    "wildcard, good, bad",
    [
        ("protocol", list(PROTOCOLS), ["MA2CS", "MA+MS2C3", "ma2ms"]),
        ("src", ["MA", "MA+MS+CS", "C3"], ["MA+", "XX", "MA+XX"]),
        ("tgt", ["MA", "MS", "C3"], ["CS"]),
        ("tuning", ["zeroshot", "MA_qchm", "MA+MS+CS_random"], ["MA", "MA_other", "zeroshot_qchm"]),
        ("table", [str(t) for t in range(2, 14)], ["1", "14", "02"]),
        ("arch", ["qwen2_vl", "qwen2_5_vl"], ["qwen3_vl"]),
    ],
)
def test_wildcard_patterns_accept_exactly_the_papers_names(wildcard, good, bad):
    pattern = re.compile(paper.wildcard_patterns()[wildcard])
    assert all(pattern.fullmatch(name) for name in good)
    assert not any(pattern.fullmatch(name) for name in bad)


def test_alpha_of_a_table():
    muse = {"alpha": 0.2, "alpha_intra": 0.6}
    assert paper.alpha(paper.INTRA_DOMAIN_TABLE, muse) == 0.6
    assert {paper.alpha(t, muse) for t in paper.TABLES if t != 4} == {0.2}


def test_the_paper_fusion_settings_are_those_of_configs_paper_yaml():
    """§5.2's C = 40, α = 0.2, τ = 5 and α_intra = 0.1, in muse.paper and in the config that runs them."""
    import yaml

    from helpers import REPO

    assert paper.FUSION == {"C": 40, "alpha": 0.2, "tau": 5.0, "alpha_intra": 0.1}
    assert yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())["muse"] == paper.FUSION


def test_stored_C_is_the_largest_C_of_the_tables_and_the_sweep():
    assert paper.stored_C({"muse": {"C": 40}, "sweeps": {"C": [10, 20, 60]}}) == 60
    assert paper.stored_C({"muse": {"C": 40}, "sweeps": {"C": [10]}}) == 40
