# The rows of a table for one protocol: baseline and μ-distance, each without and with re-ranking.


rule evaluate_table_protocol:
    input:
        features=lambda w: f"results/features/{encoder_of(w.protocol)}/{target_of(w.protocol)}.npz",
        scores=lambda w: f"results/scores/{adapter_of(w.table, w.protocol)}/{w.protocol}.npz",
    output:
        "results/eval/table{table}/{protocol}.json",
    params:
        rerank=config["rerank"],
        alpha=lambda w: alpha_of(w.table),
        tau=config["muse"]["tau"],
        C=config["muse"]["C"],
    log:
        "logs/eval/table{table}/{protocol}.log",
    benchmark:
        "benchmarks/eval/table{table}/{protocol}.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/evaluate_table_protocol.py"
