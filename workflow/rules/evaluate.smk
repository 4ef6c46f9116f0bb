# The rows of a table for one protocol. Standard tables: baseline and μ-distance, each without and
# with re-ranking. Ablation tables (5–7): Baseline + K-RNN and one μ-distance + K-RNN row per judge.


rule evaluate_table_protocol:
    input:
        features=lambda w: features_of(w.protocol),
        scores=lambda w: scores_of(w.table, w.protocol),
    output:
        "results/eval/table{table}/{protocol}.json",
    log:
        "logs/eval/table{table}/{protocol}.log",
    benchmark:
        "benchmarks/eval/table{table}/{protocol}.tsv"
    wildcard_constraints:
        table="|".join(str(t) for t in STANDARD_TABLES),
    group:
        "tail"
    conda:
        "../envs/muse.yaml"
    params:
        rerank=config["rerank"],
        fusion=lambda w: fusion_of(w.table),
    script:
        "../scripts/evaluate_table_protocol.py"


rule evaluate_ablation_protocol:
    input:
        unpack(ablation_inputs),
    output:
        "results/eval/table{table}/{protocol}.json",
    log:
        "logs/eval/table{table}/{protocol}.log",
    benchmark:
        "benchmarks/eval/table{table}/{protocol}.tsv"
    wildcard_constraints:
        table="|".join(str(t) for t in ABLATION_TABLES),
    group:
        "tail"
    conda:
        "../envs/muse.yaml"
    params:
        rows=lambda w: [name for name, _ in ablation_rows(int(w.table), MLLMS)],
        rerank=config["rerank"],
        fusion=lambda w: fusion_of(w.table),
    script:
        "../scripts/evaluate_ablation_protocol.py"
