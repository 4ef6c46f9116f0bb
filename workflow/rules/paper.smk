# The paper's tables: reproduced values next to the paper's, as CSV (long form) and Markdown.


rule table:
    input:
        lambda w: expand("results/eval/table{table}/{protocol}.json", table=w.table, protocol=TABLES[int(w.table)]),
    output:
        csv=report("results/table{table}.csv", caption="../report/table.rst", category="Tables",
                   labels={"table": "{table}"}),
        md="results/table{table}.md",
    params:
        synthetic=any(d["root"] == "synthetic" for d in config["datasets"].values()),
    log:
        "logs/tables/table{table}.log",
    benchmark:
        "benchmarks/tables/table{table}.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/table.py"


rule sweep:
    input:
        features=features_of(config["sweeps"]["protocol"]),
        scores=scores_of(2, config["sweeps"]["protocol"]),
    output:
        csv="sweeps/{param}.csv",
        png=report("sweeps/{param}.png", caption="../report/sweep.rst", category="Figure 3 (sweeps)",
                   labels={"parameter": "{param}"}),
    wildcard_constraints:
        param="C|alpha|tau",
    params:
        sweeps=config["sweeps"],
        base=lambda w: {"alpha": config["muse"]["alpha"], "tau": config["muse"]["tau"], "C": config["muse"]["C"]},
        rerank=config["rerank"],
    log:
        "logs/sweeps/{param}.log",
    benchmark:
        "benchmarks/sweeps/{param}.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/sweep.py"


rule fig4_timing:
    input:
        model=mllm_dir(JUDGE),
    output:
        png=report("results/figures/fig4_timing.png", caption="../report/fig4.rst", category="Figures"),
        json="results/figures/fig4_timing.json",
    params:
        C=config["muse"]["C"],
        batch=config["mllm"]["score"]["batch"],
    resources:
        gpu=config["gpu"],
    log:
        "logs/figures/fig4_timing.log",
    benchmark:
        "benchmarks/figures/fig4_timing.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/fig4_timing.py"


rule fig5_ranking:
    input:
        features=features_of(config["figure5"]["protocol"]),
        scores=scores_of(2, config["figure5"]["protocol"]),
    output:
        report("results/figures/fig5_ranking.png", caption="../report/fig5.rst", category="Figures"),
    params:
        sweeps=config["sweeps"],
        muse=config["muse"],
        rerank=config["rerank"],
    log:
        "logs/figures/fig5_ranking.log",
    benchmark:
        "benchmarks/figures/fig5_ranking.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/fig5_ranking.py"
