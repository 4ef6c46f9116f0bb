# Query-candidate pairs for the MLLM, mined with the encoder of the adaptation domains.


rule mine:
    input:
        "results/features/{src}/train.npz",
    output:
        "results/pairs/{src}_{strategy}.jsonl",
        "results/pairs/{src}_{strategy}.val.jsonl",  # held-out identities' pairs (mining.val_ids)
    log:
        "logs/pairs/{src}_{strategy}.log",
    benchmark:
        "benchmarks/pairs/{src}_{strategy}.tsv"
    conda:
        "../envs/muse.yaml"
    params:
        mining=config["mining"],
        seed=config["mllm"]["sft"].get("seed", 0),
    script:
        "../scripts/mine.py"
