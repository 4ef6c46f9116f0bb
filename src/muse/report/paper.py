"""The paper's numbers (Tables 2–13, as printed, in %) and the reproduced tables in long form.

``paper_numbers.csv`` holds every value of the paper's tables, including the literature rows it
quotes (columns ``table, protocol, row, metric, paper``). A reproduced table is the outer join of
those with our measurements: ``table, protocol, row, metric, reproduced, paper``.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

COLUMNS = ["table", "protocol", "row", "metric", "reproduced", "paper"]
METRICS = ("mAP", "R1")


def paper_numbers() -> pd.DataFrame:
    with resources.files("muse.report").joinpath("paper_numbers.csv").open() as fh:
        return pd.read_csv(fh)


def assemble(table: int, measured: list[dict]) -> pd.DataFrame:
    """Long-form table: every paper row, with our value (in %, as the paper) where we ran it.

    ``measured`` holds dicts with ``protocol``, ``row`` and the metrics as fractions."""
    paper = paper_numbers()
    paper = paper[paper.table == table]
    ours = pd.DataFrame(
        [
            {
                "table": table,
                "protocol": m["protocol"],
                "row": m["row"],
                "metric": k,
                "reproduced": round(100 * m[k], 2),
            }
            for m in measured
            for k in METRICS
        ],
        columns=["table", "protocol", "row", "metric", "reproduced"],
    )
    df = paper.merge(ours, on=["table", "protocol", "row", "metric"], how="outer")
    order = {r: i for i, r in enumerate(list(dict.fromkeys(list(paper.row) + list(ours.row))))}
    protocols = {p: i for i, p in enumerate(dict.fromkeys(list(paper.protocol) + list(ours.protocol)))}
    df = df.assign(_r=df.row.map(order), _p=df.protocol.map(protocols), _m=df.metric.map(METRICS.index))
    return df.sort_values(["_r", "_p", "_m"])[COLUMNS].reset_index(drop=True)


def markdown(df: pd.DataFrame, caption: str, footnote: str = "") -> str:
    """Rows × (protocol, metric) with "reproduced / paper" cells, then the ``footnote`` lines."""
    protocols = list(dict.fromkeys(df.protocol))
    head = "| row | " + " | ".join(f"{p} {m}" for p in protocols for m in METRICS) + " |"
    lines = [caption, "", head, "|---|" + "---|" * (2 * len(protocols))]
    cell = {(r.row, r.protocol, r.metric): r for r in df.itertuples()}
    fmt = lambda v: "–" if pd.isna(v) else f"{v:.1f}"  # noqa: E731
    for row in dict.fromkeys(df.row):
        vals = []
        for p in protocols:
            for m in METRICS:
                r = cell.get((row, p, m))
                vals.append("" if r is None else f"{fmt(r.reproduced)} / {fmt(r.paper)}")
        lines.append(f"| {row} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n" + (f"\n{footnote}" if footnote else "")


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
