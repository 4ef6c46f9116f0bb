"""Tables and sweeps: rows, the paper's numbers, long form, Markdown, sweep semantics."""

import numpy as np
import pandas as pd
import pytest

from muse.errors import MuseError
from muse.experiments import evaluate_ablation, evaluate_rows, evaluate_table, rankings, sweep
from muse.fusion import Fusion
from muse.intervals import Bootstrap, annotate
from muse.io import Features, Scores
from muse.paper import ABLATION_TABLES, TABLES, Variant, ablation_rows, extra_rows, standard_rows
from muse.report.tables import (
    INTERVAL_COLUMNS,
    assemble,
    diagnostics_footnote,
    intervals_footnote,
    markdown,
    paper_numbers,
)

from helpers import clustered, scores_for

RERANK = {
    "krnn": {"k1": 10, "k2": 5, "lam": 0.3},
    "ecn": {"k": 25, "t": 3, "q": 8},
    "caj": {"k1_intra": 5, "k1_inter": 20, "k2_intra": 2, "k2_inter": 4, "lam": 0.3},
}


@pytest.fixture(scope="module")
def case():
    q, g, qp, qc, gp, gc = clustered(2)
    f = Features(
        np.concatenate([q, g]).astype(np.float32),
        np.concatenate([qp, gp]),
        np.concatenate([qc, gc]),
        np.array([f"{i}.jpg" for i in range(len(q) + len(g))]),
        np.array(["query"] * len(q) + ["gallery"] * len(g)),
    )
    cand, sy, sn = scores_for(q, g, 10, 2)
    return f, Scores(cand, sy, sn)


def test_paper_numbers_cover_every_table():
    df = paper_numbers()
    assert sorted(df.table.unique()) == list(range(2, 14))
    for t, protocols in TABLES.items():
        assert list(dict.fromkeys(df[df.table == t].protocol)) == list(protocols)
        if t in ABLATION_TABLES:
            rows = ["Baseline + K-RNN"] + [r for r, _ in ablation_rows(t, ("Qwen2-VL-2B", "Qwen2.5-VL-7B"))]
        else:
            rows = [r for r, _, _ in standard_rows()]
        ours = df[(df.table == t) & df.row.isin(rows)]
        assert len(ours) == len(rows) * 2 * len(protocols)  # every row we run has a paper value
    row = df[(df.table == 2) & (df.protocol == "MA2C3") & (df.row == "Baseline + MUSE + CAJ")]
    assert dict(zip(row.metric, row.paper)) == {"mAP": 57.3, "R1": 53.4}


def test_rows_and_alpha_zero_equals_no_fusion(case):
    f, s = case
    rows = evaluate_rows(f, Fusion(s, 0.0, 5.0, 10), standard_rows(), RERANK)
    assert [r["row"] for r in rows][:2] == ["Baseline", "Baseline + K-RNN"]
    for plain, fused in zip(rows[:4], rows[4:]):  # α = 0: μ-distance = base distance
        assert plain["mAP"] == pytest.approx(fused["mAP"]) and plain["R1"] == fused["R1"]
    strong = evaluate_rows(f, Fusion(s, 0.9, 1.0, 10), standard_rows()[4:5], RERANK)
    assert strong[0]["mAP"] != pytest.approx(rows[4]["mAP"])


def test_section_5_4_4_row_at_alpha_0_1(case):
    """Table 9 on MS+C3+CS→MA also has Baseline + MUSE at α = 0.1 (paper §5.4.4: 63.3 / 84.1),
    evaluated as the μ row at that α, and the assembled table prints it against the paper."""
    assert extra_rows(9, "MS+C3+CS2MA") == (("Baseline + MUSE (α = 0.1)", 0.1),) and extra_rows(9, "MA+MS+CS2C3") == ()
    f, s = case
    ((name, alpha),) = extra_rows(9, "MS+C3+CS2MA")
    rows = evaluate_table(f, Fusion(s, 0.2, 5.0, 10), 9, "MS+C3+CS2MA", RERANK)
    assert [r["row"] for r in rows] == [r for r, _, _ in standard_rows()] + [name]
    row = rows[-1]
    assert (
        row["alpha"] == 0.1
        and row["mAP"] == evaluate_rows(f, Fusion(s, 0.1, 5.0, 10), standard_rows()[4:5], RERANK)[0]["mAP"]
    )
    df = assemble(9, [{"protocol": "MS+C3+CS2MA", **row}])
    line = [x for x in markdown(df, "T9").splitlines() if x.startswith(f"| {name} |")][0]
    assert f"{100 * row['mAP']:.1f} / 63.3" in line and "/ 84.1" in line


def test_ablation_rows_vary_one_thing_each():
    assert [v for _, v in ablation_rows(5, ["m"])] == [Variant(prompt=p) for p in ("void", "task_resp", "dap")]
    assert ablation_rows(6, ["A", "B"]) == [
        ("+ MUSE (A, zero-shot)", Variant(mllm="A", sft=False)),
        ("+ MUSE (B, zero-shot)", Variant(mllm="B", sft=False)),
        ("+ MUSE (A, SFT)", Variant(mllm="A")),
        ("+ MUSE (B, SFT)", Variant(mllm="B")),
    ]
    assert ablation_rows(7, ["m"]) == [("+ MUSE (random)", Variant(strategy="random")), ("+ MUSE (QCHM)", Variant())]
    with pytest.raises(MuseError, match="not an ablation table"):
        ablation_rows(2, ["m"])


def test_ablation_is_krnn_on_each_judges_mu_distance(case):
    f, s = case
    q, g = f.query_gallery()
    same = np.where(g.pids[s.cand] == q.pids[:, None], 5.0, -5.0)
    oracle, flipped = Scores(s.cand, same, -same), Scores(s.cand, -same, same)  # right / always wrong
    fusions = {"+ MUSE (a)": Fusion(oracle, 0.5, 1.0, 10), "+ MUSE (b)": Fusion(flipped, 0.5, 1.0, 10)}
    rows = evaluate_ablation(f, fusions, RERANK)
    assert [r["row"] for r in rows] == ["Baseline + K-RNN", "+ MUSE (a)", "+ MUSE (b)"]
    assert rows[0] == evaluate_rows(f, None, [("Baseline + K-RNN", False, "krnn")], RERANK)[0]
    assert rows[1] == evaluate_rows(f, Fusion(oracle, 0.5, 1.0, 10), [("+ MUSE (a)", True, "krnn")], RERANK)[0]
    assert rows[2]["mAP"] < rows[0]["mAP"] < rows[1]["mAP"]


def test_sweep_reuses_the_stored_logits(case):
    f, s = case
    rows = sweep(f, Fusion(s, 0.2, 5.0, 10), "C", [1, 5, 10], "krnn", RERANK)
    assert [r["value"] for r in rows] == [1, 5, 10] and rows[-1]["C"] == 10
    direct = evaluate_rows(f, Fusion(s, 0.2, 5.0, 5), [("x", True, "krnn")], RERANK)[0]
    assert rows[1]["mAP"] == direct["mAP"]


def test_mu_rows_carry_the_diagnostics_and_the_markdown_footnote_prints_them(case):
    from muse.diagnostics import diagnose
    from muse.experiments import ceiling

    f, s = case
    rows = evaluate_rows(f, Fusion(s, 0.2, 5.0, 10), standard_rows(), RERANK)
    q, g = f.query_gallery()
    d = diagnose(q, g, s, 10)
    assert all("ceiling" not in r and "judge_auc" not in r for r in rows[:4])
    for r in rows[4:]:
        assert {k: r[k] for k in d} == d
        assert r["ceiling"] == ceiling(q, g, Fusion(s, 0.2, 5.0, 10), r["rerank"], RERANK.get(r["rerank"])) > r["mAP"]
    note = diagnostics_footnote([{"protocol": "MA2MS", **r} for r in rows])
    lines = note.splitlines()
    assert lines[0].startswith("What limits MUSE") and lines[2].startswith("| protocol | row | judge AUC")
    m = rows[5]
    assert lines[5] == (
        f"| MA2MS | Baseline + MUSE + K-RNN | {d['judge_auc_query']:.3f} / {d['judge_auc']:.3f} "
        f"| {d['base_auc_query']:.3f} / {d['base_auc']:.3f} | {d['auc_queries']} | 10 "
        f"| {100 * d['recall_C']:.0f} % | {d['gap_median']:.2f} / {d['gap_p90']:.2f} "
        f"| {100 * m['mAP']:.1f} / {100 * m['ceiling']:.1f} |"
    )
    assert len(lines) == 4 + 4 and diagnostics_footnote(rows[:4]) == ""
    md = markdown(assemble(2, []), "caption", note)
    assert md.endswith(note) and "| mAP / ceiling |" in md


def test_assemble_and_markdown():
    df = assemble(13, [{"protocol": "MS+C3+CS2MA", "row": "Baseline", "mAP": 0.5, "R1": 0.25}])
    assert list(df.columns) == ["table", "protocol", "row", "metric", "reproduced", "paper"] + INTERVAL_COLUMNS
    assert df[INTERVAL_COLUMNS].isna().all().all()  # no intervals computed: empty columns
    base = df[df.row == "Baseline"].set_index("metric")
    assert base.loc["mAP", "reproduced"] == 50.0 and base.loc["R1", "reproduced"] == 25.0
    assert (
        base.loc["mAP", "paper"]
        == paper_numbers().query("table == 13 and row == 'Baseline' and metric == 'mAP'").paper.item()
    )
    assert df.paper.notna().all() and df.reproduced.notna().sum() == 2
    md = markdown(df, "Table 13 — caption")
    assert md.startswith("Table 13 — caption") and "| Baseline | 50.0 / " in md


def test_intervals_in_the_long_form_and_beside_each_row_with_a_base_row(case):
    f, s = case
    boot = Bootstrap(resamples=500)
    rows = annotate(evaluate_rows(f, Fusion(s, 0.5, 1.0, 10), standard_rows(), RERANK), boot)
    measured = [{"protocol": "MA2MS", **r} for r in rows]
    df = assemble(2, measured)
    line = df[(df.row == "Baseline + MUSE + ECN") & (df.protocol == "MA2MS") & (df.metric == "R1")].iloc[0]
    r = rows[6]
    assert line.reproduced == round(100 * r["R1"], 2) and line.base_row == "Baseline + ECN"
    assert [line.ci_low, line.ci_high] == [round(100 * v, 2) for v in r["ci"]["R1"]]
    difference = [line.difference, line.difference_low, line.difference_high]
    assert difference == [round(100 * v, 2) for v in r["paired"]["R1"]]
    plain = df[(df.row == "Baseline") & (df.protocol == "MA2MS") & (df.metric == "mAP")].iloc[0]
    assert plain.ci_low < plain.reproduced < plain.ci_high and pd.isna(plain.base_row) and pd.isna(plain.difference)
    other = df[df.protocol != "MA2MS"]  # the paper's columns we did not run: no value, no interval
    assert other.reproduced.isna().all() and other[INTERVAL_COLUMNS].isna().all().all()

    md = markdown(df, "T2", intervals_footnote(measured, boot))
    cells = {ln.split(" | ")[0][2:]: ln.split(" | ")[1:3] for ln in md.splitlines() if ln.startswith("| Baseline")}
    pct = lambda v: round(100 * v, 2)  # noqa: E731  (the long form's value, printed to 0.1)
    assert cells["Baseline"][0] == f"{pct(rows[0]['mAP']):.1f} / 24.7"  # no base row: unchanged
    d, lo, hi = (pct(v) for v in r["paired"]["mAP"])
    mark = " *" if lo > 0 or hi < 0 else ""
    assert cells["Baseline + MUSE + ECN"][0] == f"{pct(r['mAP']):.1f} / 44.7 ({d:+.1f} [{lo:+.1f}, {hi:+.1f}]{mark})"
    assert "paired bootstrap interval" in md and "500 resamples" in md
    assert intervals_footnote([{"protocol": "MA2MS", **r} for r in rows[:4]], boot) == ""
    q, g = f.query_gallery()
    right = np.where(g.pids[s.cand] == q.pids[:, None], 20.0, -20.0)  # a perfect judge: every gain marked
    oracle = annotate(
        evaluate_rows(f, Fusion(Scores(s.cand, right, -right), 0.5, 1.0, 10), standard_rows()[4:5], RERANK), boot
    )
    base = annotate(evaluate_rows(f, None, standard_rows()[:1], RERANK) + oracle, boot)
    md = markdown(assemble(2, [{"protocol": "MA2MS", **r} for r in base]), "T2")
    (line,) = [ln for ln in md.splitlines() if ln.startswith("| Baseline + MUSE |")]
    assert line.count(" *)") == 2 and line.split(" | ")[1].endswith("*)")


def test_rankings_and_figures(case, tmp_path):
    from PIL import Image

    from muse.report.figures import plot_sweep, ranking_figure

    f, s = case
    panels = rankings(f, Fusion(s, 0.5, 1.0, 10), "krnn", RERANK, k=6, queries=3)
    pid = dict(zip(f.paths, f.pids))
    q, g = f.query_gallery()
    for r in panels:
        assert r["query"] in set(f.paths[f.split == "query"]) and [len(x) for x in r["rows"]] == [6, 6]
        for row, first in zip(r["rows"], r["first"]):
            assert all(m == (pid[p] == pid[r["query"]]) for p, m in row)
            matches = [m for _, m in row]
            assert first == matches.index(True) if True in matches else first >= 6
    gains = [r["first"][0] - r["first"][1] for r in panels]
    assert len({r["query"] for r in panels}) == 3 and gains[0] >= gains[1] >= gains[2]  # two most helped, then least
    (one,) = rankings(f, Fusion(s, 0.5, 1.0, 10), "krnn", RERANK, k=6, queries=1)
    assert one == panels[0]
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (8, 16), (i * 60, 0, 0)).save(paths[-1])
    panel = {"query": paths[0], "rows": [[(paths[1], True), (paths[2], False)]] * 2, "first": [0, 0]}
    ranking_figure([panel, panel], ("a", "b"), tmp_path / "fig.png", size=(16, 8))
    img = Image.open(tmp_path / "fig.png").convert("RGB")
    assert img.size[1] == 2 * (16 + 2 * (16 + 2 * 4))  # two panels: a 16-pixel caption and two rows each
    x = 150 + 2 * (8 + 4) + 4  # second candidate's box: red outline
    for top in (0, 64):
        assert img.getpixel((x - 1, top + 16 + 4 + 3)) == (255, 0, 0)
    sweep_rows = [
        {"value": 1, "mAP": 0.1, "R1": 0.2, "ceiling": 0.3},
        {"value": 2, "mAP": 0.2, "R1": 0.3, "ceiling": 0.4},
    ]
    plot_sweep(sweep_rows, "C", tmp_path / "s.png", "t")
    assert Image.open(tmp_path / "s.png").size[0] > 100
    for r in sweep_rows:  # with intervals: a band around each of mAP and R1
        r["ci"] = {"mAP": [r["mAP"] - 0.05, r["mAP"] + 0.05], "R1": [r["R1"] - 0.02, r["R1"] + 0.02]}
    plot_sweep(sweep_rows, "C", tmp_path / "band.png", "t")
    blue = np.array([31, 119, 180])  # matplotlib's first colour at alpha 0.2 over white
    band = np.round(0.2 * blue + 0.8 * 255)
    pixels = np.asarray(Image.open(tmp_path / "band.png").convert("RGB")).reshape(-1, 3)
    plain = np.asarray(Image.open(tmp_path / "s.png").convert("RGB")).reshape(-1, 3)
    near = lambda px: (np.abs(px - band).max(1) <= 2).sum()  # noqa: E731
    assert near(pixels) > 500 > near(plain)
