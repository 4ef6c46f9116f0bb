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


def judge_footnote(measured: list[dict]) -> str:
    """One line per protocol: the ROC-AUC of each judge over its scored pairs (s_no − s_yes for a
    different identity) next to the base distance's on the same pairs; empty without μ rows."""
    by_protocol: dict[str, dict[str, tuple]] = {}
    for m in measured:
        if m.get("judge_auc") is not None:
            by_protocol.setdefault(m["protocol"], {})[m["row"]] = (m["judge_auc"], m["base_auc"])
    lines = []
    for protocol, rows in by_protocol.items():
        values = set(rows.values())
        if len(values) == 1:
            ((j, b),) = values
            lines.append(f"- {protocol}: judge ROC-AUC {j:.3f} (base distance {b:.3f}) over the scored pairs")
        else:
            lines.append(
                f"- {protocol}: judge ROC-AUC "
                + ", ".join(f"{r} {j:.3f}" for r, (j, _) in rows.items())
                + f" (base distance {next(iter(values))[1]:.3f}) over the scored pairs"
            )
    return "The judge on its scored pairs:\n\n" + "\n".join(lines) + "\n" if lines else ""
