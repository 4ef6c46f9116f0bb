"""The paper's numbers (Tables 2–13, as printed, in %) and the reproduced tables in long form.

``paper_numbers.csv`` holds every value of the paper's tables, including the literature rows it
quotes (columns ``table, protocol, row, metric, paper``). A reproduced table is the outer join of
those with our measurements: ``table, protocol, row, metric, reproduced, paper``, then each
measured value's interval (:mod:`muse.intervals`): ``ci_low, ci_high``, and for a row with a base
row its paired difference from it: ``base_row, difference, difference_low, difference_high`` (all in %).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from muse.intervals import METRICS, Bootstrap, excludes_zero

COLUMNS = ["table", "protocol", "row", "metric", "reproduced", "paper"]
INTERVAL_COLUMNS = ["ci_low", "ci_high", "base_row", "difference", "difference_low", "difference_high"]


def paper_numbers() -> pd.DataFrame:
    with resources.files("muse.report").joinpath("paper_numbers.csv").open() as fh:
        return pd.read_csv(fh)


def _percent(value) -> float:
    return round(100 * value, 2)


def _measured(m: dict, metric: str) -> dict:
    """One long-form line of a measured row: its value, interval and paired difference, in %."""
    low, high = m["ci"][metric] if "ci" in m else (float("nan"),) * 2
    paired = m.get("paired")
    diff = paired[metric] if paired else (float("nan"),) * 3
    return {
        "reproduced": _percent(m[metric]),
        "ci_low": _percent(low),
        "ci_high": _percent(high),
        "base_row": paired["base"] if paired else None,
        **{k: _percent(v) for k, v in zip(("difference", "difference_low", "difference_high"), diff)},
    }


def assemble(table: int, measured: list[dict]) -> pd.DataFrame:
    """Long-form table: every paper row, with our value (in %, as the paper) where we ran it.

    ``measured`` holds dicts with ``protocol``, ``row`` and the metrics as fractions, and the
    ``ci`` and ``paired`` entries of :func:`muse.intervals.annotate` where computed."""
    paper = paper_numbers()
    paper = paper[paper.table == table]
    ours = pd.DataFrame(
        [
            {"table": table, "protocol": m["protocol"], "row": m["row"], "metric": k, **_measured(m, k)}
            for m in measured
            for k in METRICS
        ],
        columns=["table", "protocol", "row", "metric", "reproduced", *INTERVAL_COLUMNS],
    )
    df = paper.merge(ours, on=["table", "protocol", "row", "metric"], how="outer")
    order = {r: i for i, r in enumerate(list(dict.fromkeys(list(paper.row) + list(ours.row))))}
    protocols = {p: i for i, p in enumerate(dict.fromkeys(list(paper.protocol) + list(ours.protocol)))}
    df = df.assign(_r=df.row.map(order), _p=df.protocol.map(protocols), _m=df.metric.map(METRICS.index))
    return df.sort_values(["_r", "_p", "_m"])[COLUMNS + INTERVAL_COLUMNS].reset_index(drop=True)


def _cell(r) -> str:
    """ "reproduced / paper", and for a row with a base row "(difference [low, high])", with " *"
    where the interval excludes 0."""
    fmt = lambda v: "–" if pd.isna(v) else f"{v:.1f}"  # noqa: E731
    text = f"{fmt(r.reproduced)} / {fmt(r.paper)}"
    if pd.isna(r.base_row):
        return text
    mark = " *" if excludes_zero(r.difference_low, r.difference_high) else ""
    return f"{text} ({r.difference:+.1f} [{r.difference_low:+.1f}, {r.difference_high:+.1f}]{mark})"


def markdown(df: pd.DataFrame, caption: str, footnote: str = "") -> str:
    """Rows × (protocol, metric) with "reproduced / paper" cells (and the paired difference of a
    row with a base row), then the ``footnote`` lines."""
    protocols = list(dict.fromkeys(df.protocol))
    head = "| row | " + " | ".join(f"{p} {m}" for p in protocols for m in METRICS) + " |"
    lines = [caption, "", head, "|---|" + "---|" * (2 * len(protocols))]
    cell = {(r.row, r.protocol, r.metric): r for r in df.itertuples()}
    for row in dict.fromkeys(df.row):
        vals = [_cell(cell[row, p, m]) if (row, p, m) in cell else "" for p in protocols for m in METRICS]
        lines.append(f"| {row} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n" + (f"\n{footnote}" if footnote else "")


def intervals_footnote(measured: list[dict], boot: Bootstrap) -> str:
    """What the differences in parentheses are; empty when no row has a base row."""
    if not any("paired" in m for m in measured):
        return ""
    return (
        "In parentheses, beside each row that has a base row (a + MUSE row: the same row without MUSE; "
        "an ablation row: Baseline + K-RNN): its difference from the base row in points, with the "
        f"{100 * boot.level:g} % paired bootstrap interval over the test queries ({boot.resamples:,} resamples, "
        f"seed {boot.seed}; muse.intervals); * marks an interval that excludes 0, a difference beyond the noise "
        "of the test set. The CSV also holds each row's own interval (ci_low, ci_high).\n"
    )


DIAGNOSTICS = (
    'What limits MUSE, per + MUSE row (muse.diagnostics): the ROC-AUC of "different identity" over '
    "the scored pairs (each query's first C candidates) for the judge (s_no − s_yes) and the base "
    "distance, within each query (the mean over the queries whose candidates hold both classes, "
    "counted) and pooled; recall@C, the share of queries with a true match among their C candidates; "
    "the judge's logit gap |s_yes − s_no| (median / 90th percentile); the row's mAP next to its "
    "ceiling, the mAP (%) with a perfect judge."
)


def diagnostics_footnote(measured: list[dict]) -> str:
    """The diagnostics of each μ row (:data:`DIAGNOSTICS`) as a Markdown table; empty without μ rows."""
    lines = []
    for m in measured:
        if m.get("ceiling") is None:
            continue
        lines.append(
            f"| {m['protocol']} | {m['row']} | {m['judge_auc_query']:.3f} / {m['judge_auc']:.3f} "
            f"| {m['base_auc_query']:.3f} / {m['base_auc']:.3f} | {m['auc_queries']} | {m['C']} "
            f"| {100 * m['recall_C']:.0f} % | {m['gap_median']:.2f} / {m['gap_p90']:.2f} "
            f"| {100 * m['mAP']:.1f} / {100 * m['ceiling']:.1f} |"
        )
    if not lines:
        return ""
    head = (
        "| protocol | row | judge AUC: within query / pooled | base AUC: within query / pooled | queries | C "
        "| recall@C | gap: median / p90 | mAP / ceiling |\n|---|---|---|---|---|---|---|---|---|"
    )
    return f"{DIAGNOSTICS}\n\n{head}\n" + "\n".join(lines) + "\n"
