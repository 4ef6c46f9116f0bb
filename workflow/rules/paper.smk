# The paper's tables: reproduced values next to the paper's, as CSV (long form) and Markdown.


rule table:
    input:
        lambda w: expand("results/eval/table{table}/{protocol}.json", table=w.table, protocol=TABLES[int(w.table)]),
    output:
        csv="results/table{table}.csv",
        md="results/table{table}.md",
    params:
        synthetic=any(d["root"] == "synthetic" for d in config["datasets"].values()),
    log:
        "logs/tables/table{table}.log",
    benchmark:
        "benchmarks/tables/table{table}.tsv"
    script:
        "../scripts/table.py"
