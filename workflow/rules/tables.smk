# The paper's tables: reproduced values next to the paper's, as CSV (long form) and Markdown.


rule table:
    input:
        lambda w: expand("results/eval/table{table}/{protocol}.json", table=w.table, protocol=TABLES[int(w.table)]),
    output:
        csv=report(
            "results/table{table}.csv", caption="../report/table.rst", category="Tables", labels={"table": "{table}"}
        ),
        md="results/table{table}.md",
    log:
        "logs/tables/table{table}.log",
    benchmark:
        "benchmarks/tables/table{table}.tsv"
    group:
        "tail"
    conda:
        "../envs/muse.yaml"
    params:
        synthetic=any(d["root"] == "synthetic" for d in config["datasets"].values()),
        intervals=config["intervals"],
    script:
        "../scripts/table.py"
