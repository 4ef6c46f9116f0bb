"""The paper's experiments: its tables, their protocols and rows, the judges of the ablations,
where the MLLM is adapted for each table, the fusion rate each table uses, and the setting the
sweeps and figures are run in. The workflow reads every such fact from here; :mod:`muse.experiments`
runs them.

A standard table (2, 3, 4, 8–13) has, for each of its protocols, the rows Baseline, + K-RNN,
+ ECN, + CAJ, and the same four on the μ-distance (+ MUSE); the MUSE rows fuse the stored MLLM
logits of the table's adaptation setting (α, τ, C from the config; Table 4 uses α_intra).

An ablation table (5–7) has the row Baseline + K-RNN and one + MUSE row (μ-distance, then
K-RNN) per :class:`Variant` of the judge: its prompt (Table 5), zero-shot or fine-tuned for
each MLLM (Table 6), the mining strategy of its training pairs (Table 7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from muse.data.protocols import DOMAINS, PROTOCOLS, TEST_DOMAINS, Protocol
from muse.errors import MuseError
from muse.mining import STRATEGIES
from muse.mllm import ARCHITECTURES
from muse.mllm.prompt import VARIANTS

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
STANDARD_TABLES = tuple(t for t in TABLES if t not in ABLATION_TABLES)
ABLATION_RERANK = "krnn"
METHOD_NAMES = {"none": "", "krnn": " + K-RNN", "ecn": " + ECN", "caj": " + CAJ"}

# Where the MLLM is fine-tuned, per table: a domain, or "source" (the protocol's own sources).
# The paper does not say for Table 4 (intra-domain); its own training domain is assumed. The
# ablations (Tables 5–7) vary Table 2's MA → C3, MA → MS setting: their QCHM/DAP rows equal Table 2's.
ADAPTATION = {
    2: "MA",
    3: "MA",
    4: "source",
    5: "MA",
    6: "MA",
    7: "MA",
    8: "source",
    9: "source",
    10: "MS",
    11: "C3",
    12: "MA",
    13: "MA",
}

# The paper's μ-fusion settings (§5.2): C candidates re-scored per query, the rate α (α_intra for
# the intra-domain Table 4) and the temperature τ; configs/paper.yaml's `muse` section (tested).
FUSION = {"C": 40, "alpha": 0.2, "tau": 5.0, "alpha_intra": 0.1}
INTRA_DOMAIN_TABLE = 4  # fuses with α_intra (§5.2), every other table with α
SWEEP_SETTING = 2  # the sweeps (Figure 3) and Figure 5 use the judge of Table 2's setting

# §5.4.4: Table 9's Baseline + MUSE on MS+C3+CS→MA once more with a smaller fusion rate
EXTRA_ROWS = {(9, "MS+C3+CS2MA"): (("Baseline + MUSE (α = 0.1)", 0.1),)}


def adaptation_domains(table: int, protocol: Protocol) -> tuple[str, ...]:
    """The domains whose training pairs fine-tune the MLLM used for ``protocol`` in ``table``."""
    if table not in ADAPTATION:
        raise MuseError(f"table {table} has no MLLM adaptation rule: expected one of {sorted(ADAPTATION)}")
    rule = ADAPTATION[table]
    return protocol.sources if rule == "source" else (rule,)


def alpha(table: int, muse: dict) -> float:
    """The fusion rate of ``table`` from the config's ``muse`` section."""
    return muse["alpha_intra"] if table == INTRA_DOMAIN_TABLE else muse["alpha"]


def stored_C(config: dict) -> int:
    """Candidates scored per query: the largest C any table (``muse.C``) or the C sweep uses."""
    return max(config["muse"]["C"], *config["sweeps"]["C"])


def extra_rows(table: int, protocol: str) -> tuple[tuple[str, float], ...]:
    """(row name, α) of the μ-distance rows (no re-ranking) a protocol of a table adds to the
    standard ones, as reported in the paper's text."""
    return EXTRA_ROWS.get((table, protocol), ())


def standard_rows() -> list[tuple[str, bool, str]]:
    """(row name, uses μ-fusion, re-ranking method) of a standard table, in the paper's order."""
    return [
        (f"Baseline{' + MUSE' if mu else ''}{METHOD_NAMES[m]}", mu, m)
        for mu in (False, True)
        for m in ("none", "krnn", "ecn", "caj")
    ]


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
        return [
            (f"+ MUSE ({m}, {'SFT' if sft else 'zero-shot'})", Variant(mllm=m, sft=sft))
            for sft in (False, True)
            for m in mllms
        ]
    if table == 7:
        return [("+ MUSE (random)", Variant(strategy="random")), ("+ MUSE (QCHM)", Variant())]
    raise MuseError(f"table {table} is not an ablation table: expected one of {ABLATION_TABLES}")


def _either(names) -> str:
    return "|".join(re.escape(str(n)) for n in names)


def wildcard_patterns() -> dict[str, str]:
    """Regular expressions of the workflow's wildcards that name the paper's objects."""
    domains = f"({_either(DOMAINS)})(\\+({_either(DOMAINS)}))*"
    return {
        "src": domains,
        "tgt": _either(TEST_DOMAINS),
        "protocol": _either(PROTOCOLS),
        "strategy": _either(STRATEGIES),
        "prompt": _either(VARIANTS),
        "tuning": f"zeroshot|{domains}_({_either(STRATEGIES)})",
        "table": _either(TABLES),
        "arch": _either(ARCHITECTURES),
    }
